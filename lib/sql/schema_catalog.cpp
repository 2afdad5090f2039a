#include "lib/sql/schema_catalog.hpp"

#include "lib/core/error.hpp"

#include <nlohmann/json.hpp>

namespace crmsync::sql {

std::vector<TableSpec> parse_schema(std::string_view json_text, std::string_view prefix) {
    std::vector<TableSpec> specs;
    try {
        const auto doc = nlohmann::json::parse(json_text);
        for (const auto& t : doc.at("tables")) {
            TableSpec spec;
            spec.table.name = std::string(prefix) + t.at("name").get<std::string>();
            spec.table.primary_key = t.at("primary_key").get<std::string>();
            spec.table.changed_at_column = t.value("changed_at", std::string{});
            spec.table.upsert_key = t.value("upsert_key", std::string{});
            for (const auto& c : t.at("columns")) {
                Column column;
                column.name = c.at("name").get<std::string>();
                const auto type = column_type_from_string(c.at("type").get<std::string>());
                if (!type) {
                    throw Error(ErrorKind::internal, "unknown column type in schema: " + c.dump());
                }
                column.type = *type;
                column.identity = c.value("identity", false);
                column.nullable = c.value("nullable", true);
                spec.table.columns.push_back(column);
                spec.sources.push_back(c.value("source", std::string{}));
            }
            for (const auto& i : t.value("indexes", nlohmann::json::array())) {
                Index index;
                index.columns = i.at("columns").get<std::vector<std::string>>();
                index.unique = i.value("unique", false);
                for (const auto& name : index.columns) {
                    const Column* column = spec.table.find(name);
                    // MySQL cannot index unbounded text and PostgreSQL fails on long values.
                    if (column == nullptr || column->type == ColumnType::text ||
                        column->type == ColumnType::json) {
                        throw Error(ErrorKind::internal, "schema table " + spec.table.name +
                                                             " indexes " + name +
                                                             ", which is missing or unbounded");
                    }
                }
                spec.table.indexes.push_back(index);
            }
            if (spec.table.find(spec.table.primary_key) == nullptr ||
                spec.table.find(spec.table.key()) == nullptr) {
                throw Error(ErrorKind::internal,
                            "schema table " + spec.table.name + " lacks its primary key column");
            }
            specs.push_back(std::move(spec));
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::internal, std::string("malformed schema document: ") + e.what());
    }
    return specs;
}

std::vector<TableSpec> load_schema(std::string_view name, std::string_view prefix) {
    const auto text = embedded_schema(name);
    if (!text) {
        throw Error(ErrorKind::internal, "no schema named " + std::string(name));
    }
    return parse_schema(*text, prefix);
}

const TableSpec& find_spec(const std::vector<TableSpec>& specs, std::string_view unprefixed,
                           std::string_view prefix) {
    const std::string name = std::string(prefix) + std::string(unprefixed);
    for (const auto& spec : specs) {
        if (spec.table.name == name) {
            return spec;
        }
    }
    throw Error(ErrorKind::internal, "schema has no table " + name);
}

} // namespace crmsync::sql
