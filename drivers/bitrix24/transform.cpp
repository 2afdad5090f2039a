#include "drivers/bitrix24/transform.hpp"

#include "lib/core/error.hpp"
#include "lib/sql/json_values.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <map>
#include <unordered_map>

namespace crmsync::drivers::bitrix24 {
namespace {

constexpr std::string_view k_deal_stage = "DEAL_STAGE";

std::size_t require(const sql::Table& table, std::string_view column) {
    const auto pos = table.position(column);
    if (pos == std::string::npos) {
        throw Error(ErrorKind::internal,
                    "table " + table.name + " has no column " + std::string(column));
    }
    return pos;
}

bool is_stamp(const sql::Table& table, const sql::Column& column) {
    return column.identity || column.name == table.changed_at_column ||
           column.name == k_inserted_at;
}

} // namespace

Bitrix24Schema Bitrix24Schema::load(std::string_view prefix, std::string_view env) {
    Bitrix24Schema schema;
    schema.specs = sql::load_schema("bitrix24.json", prefix);
    if (schema.specs.size() != 2) {
        throw Error(ErrorKind::internal, "schemas/bitrix24.json must define two tables");
    }
    for (auto& spec : schema.specs) {
        spec.table.name += "_" + std::string(env);
    }
    return schema;
}

std::string stage_entity_id(int category) {
    return category == 0 ? std::string(k_deal_stage)
                         : std::string(k_deal_stage) + "_" + std::to_string(category);
}

std::optional<int> category_of_entity(std::string_view entity_id) {
    if (entity_id == k_deal_stage) {
        return 0;
    }
    if (entity_id.size() <= k_deal_stage.size() + 1 || !entity_id.starts_with(k_deal_stage) ||
        entity_id[k_deal_stage.size()] != '_') {
        return std::nullopt;
    }
    const auto digits = entity_id.substr(k_deal_stage.size() + 1);
    int category = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), category);
    if (ec != std::errc{} || end != digits.data() + digits.size() || category < 0) {
        return std::nullopt;
    }
    return category;
}

bool stage_row(const sql::TableSpec& list, const nlohmann::json& stage, sql::Row& out,
               std::string& problem) {
    std::map<std::string, sql::Value> computed{{"ACTIVE", "Y"}};
    const auto entity = stage.find("ENTITY_ID");
    if (entity != stage.end() && entity->is_string()) {
        if (const auto category = category_of_entity(entity->get<std::string>())) {
            computed["CATEGORY_ID"] = std::to_string(*category);
        }
    }
    if (!sql::row_from_json(list, stage, computed, out, problem)) {
        return false;
    }
    // CATEGORY_ID has no source (the API sends null for the default pipeline), so a value the
    // portal does send wins over the one ENTITY_ID implies.
    const auto category = stage.find("CATEGORY_ID");
    if (category != stage.end() && !category->is_null()) {
        const auto pos = require(list.table, "CATEGORY_ID");
        std::string why;
        if (!sql::to_column_value(*category, list.table.columns[pos].type, out[pos], why)) {
            problem = "CATEGORY_ID: " + why;
            return false;
        }
    }
    if (!out[require(list.table, list.table.key())]) {
        problem = "a stage without ID";
        return false;
    }
    return true;
}

bool history_row(const sql::TableSpec& history, const nlohmann::json& item,
                 const std::optional<std::string>& title, sql::Row& out, std::string& problem) {
    std::map<std::string, sql::Value> computed;
    if (title) {
        computed["NAME"] = *title;
    }
    const auto semantic = item.find("STAGE_SEMANTIC_ID");
    if (semantic != item.end() && semantic->is_string() && !semantic->get<std::string>().empty()) {
        computed["IS_LOST"] = semantic->get<std::string>() == "F" ? "Y" : "N";
    }
    if (!sql::row_from_json(history, item, computed, out, problem)) {
        return false;
    }
    if (!out[require(history.table, history.table.key())]) {
        problem = "a history item without ID";
        return false;
    }
    return true;
}

StageChanges diff_stages(const sql::Table& list, const std::vector<sql::Row>& portal,
                         const std::vector<sql::Row>& stored, std::optional<int> category) {
    const std::size_t key = require(list, list.key());
    const std::size_t active = require(list, "ACTIVE");
    const std::size_t entity = require(list, "ENTITY_ID");
    std::vector<std::size_t> compared;
    for (std::size_t i = 0; i < list.columns.size(); ++i) {
        if (i != key && !is_stamp(list, list.columns[i])) {
            compared.push_back(i);
        }
    }
    std::unordered_map<std::string, const sql::Row*> by_key;
    for (const auto& row : stored) {
        if (row.size() == list.columns.size() && row[key]) {
            by_key.emplace(*row[key], &row);
        }
    }
    StageChanges changes;
    std::unordered_map<std::string, bool> listed;
    for (const auto& row : portal) {
        listed[*row[key]] = true;
        const auto it = by_key.find(*row[key]);
        if (it == by_key.end()) {
            changes.inserts.push_back(row);
            continue;
        }
        bool same = true;
        for (const std::size_t i : compared) {
            same = same && row[i] == (*it->second)[i];
        }
        if (same) {
            ++changes.unchanged;
        } else {
            changes.updates.push_back(row);
        }
    }
    for (const auto& row : stored) {
        if (row.size() != list.columns.size() || !row[key] || listed.contains(*row[key]) ||
            row[active] == sql::Value{"N"} || !row[entity]) {
            continue;
        }
        const auto pipeline = category_of_entity(*row[entity]);
        if (pipeline && (!category || *category == *pipeline)) {
            changes.deactivate.push_back(*row[key]);
        }
    }
    return changes;
}

std::vector<const sql::Column*> stage_update_columns(const sql::Table& list) {
    std::vector<const sql::Column*> columns;
    for (const auto& c : list.columns) {
        if (c.name != list.key() && !is_stamp(list, c)) {
            columns.push_back(&c);
        }
    }
    if (const auto* stamp = list.find(list.changed_at_column)) {
        columns.push_back(stamp);
    }
    return columns;
}

std::string update_by_key_sql(const sql::Dialect& dialect, const sql::Table& table,
                              const std::vector<const sql::Column*>& columns) {
    std::string sql = "UPDATE " + dialect.quote(table.name) + " SET ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        sql +=
            (i ? ", " : "") + dialect.quote(columns[i]->name) + " = " + dialect.placeholder("p", i);
    }
    return sql + " WHERE " + dialect.quote(table.key()) + " = " +
           dialect.placeholder("p", columns.size());
}

} // namespace crmsync::drivers::bitrix24
