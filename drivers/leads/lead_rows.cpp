#include "drivers/leads/lead_rows.hpp"

#include "lib/sql/schema_catalog.hpp"
#include "lib/util/time.hpp"
#include "lib/util/utf8.hpp"

#include <algorithm>

namespace crmsync::drivers::leads {
namespace {

using nlohmann::json;

constexpr std::size_t k_excerpt_bytes = 500;
constexpr const char* k_table = "leads";

std::string excerpt(const json& record) {
    if (record.is_object() && record.contains("raw") && record["raw"].is_string()) {
        return std::string(util::utf8_prefix(record["raw"].get<std::string>(), k_excerpt_bytes));
    }
    const auto text = record.dump(-1, ' ', false, json::error_handler_t::replace);
    return std::string(util::utf8_prefix(text, k_excerpt_bytes));
}

std::string id_text(const json& value) {
    if (value.is_string()) {
        return value.get<std::string>();
    }
    if (value.is_number_integer()) {
        return value.dump();
    }
    return {};
}

std::string trimmed(std::string text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string display_source(const std::string& source) {
    if (source == "callback24") {
        return "Callback24";
    }
    if (source == "facebook") {
        return "Facebook";
    }
    if (source == "gmail") {
        return "Gmail";
    }
    return source;
}

std::string text_of(const json& lead, const char* field) {
    const auto it = lead.find(field);
    return it != lead.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

const sql::Table& leads_table() {
    static const sql::Table table = sql::load_schema("leads.json", "").at(0).table;
    return table;
}

void transform_lead(const json& record, const std::string& window, pipeline::Emitter& out) {
    if (!record.is_object()) {
        out.reject(k_table, "", "a lead record is not a JSON object", excerpt(record));
        return;
    }
    const std::string source = record.contains("source") ? id_text(record["source"]) : "";
    const std::string id = record.contains("id") ? id_text(record["id"]) : "";
    const std::string key = source.empty() || id.empty() ? std::string() : source + "/" + id;
    if (const auto error = record.find("error"); error != record.end()) {
        out.reject(k_table, key,
                   error->is_string() ? error->get<std::string>() : std::string("unreadable lead"),
                   excerpt(record));
        return;
    }
    if (std::find(std::begin(k_sources), std::end(k_sources), source) == std::end(k_sources)) {
        out.reject(k_table, key, "unknown lead source '" + source + "'", excerpt(record));
        return;
    }
    if (id.empty()) {
        out.reject(k_table, key, "the lead has no id", excerpt(record));
        return;
    }
    const auto& table = leads_table();
    sql::Row row(table.columns.size());
    const auto set = [&](const char* column, std::optional<std::string> value) {
        row[table.position(column)] = std::move(value);
    };
    set("lead_key", key);
    set("source", source);
    set("id", id);
    const auto created = record.find("created_at");
    if (created != record.end() && !created->is_null()) {
        const auto when =
            created->is_string() ? util::parse_iso8601(created->get<std::string>()) : std::nullopt;
        if (!when) {
            out.reject(k_table, key, "created_at is not an ISO-8601 time", excerpt(record));
            return;
        }
        set("created_at", util::format_sql_timestamp(*when));
    }
    for (const char* field : {"name", "email", "phone", "message"}) {
        const auto it = record.find(field);
        if (it == record.end() || it->is_null()) {
            continue;
        }
        if (!it->is_string()) {
            out.reject(k_table, key, std::string(field) + " is not a string", excerpt(record));
            return;
        }
        auto value = trimmed(it->get<std::string>());
        util::repair_utf8(value);
        if (!value.empty()) {
            set(field, std::move(value));
        }
    }
    if (const auto details = record.find("details"); details != record.end()) {
        if (details->is_object()) {
            set("details", details->dump(-1, ' ', false, json::error_handler_t::replace));
        } else if (!details->is_null()) {
            out.reject(k_table, key, "details is not a JSON object", excerpt(record));
            return;
        }
    }
    if (!window.empty()) {
        set("fetch_window", window);
    }
    out.add(table, std::move(row));
}

json lead_from_row(const sql::Table& table, const sql::Row& row) {
    json lead = json::object();
    for (std::size_t i = 0; i < table.columns.size() && i < row.size(); ++i) {
        const auto& name = table.columns[i].name;
        if (name == "lead_key" || name == "fetch_window") {
            continue;
        }
        if (!row[i]) {
            lead[name] = nullptr;
        } else if (name == "details") {
            lead[name] = json::parse(*row[i], nullptr, false);
        } else if (name == "created_at") {
            const auto when = util::parse_iso8601(*row[i]);
            lead[name] = when ? util::format_iso8601(*when) : *row[i];
        } else {
            lead[name] = *row[i];
        }
    }
    return lead;
}

std::string lead_title(const json& lead) {
    const std::string source = text_of(lead, "source");
    std::string who;
    if (source == "callback24") {
        who = text_of(lead, "phone");
    }
    for (const char* field : {"name", "email", "phone"}) {
        if (who.empty()) {
            who = text_of(lead, field);
        }
    }
    if (who.empty()) {
        who = "(no name)";
    }
    return title_marker(source, text_of(lead, "id")) + " " + who;
}

std::string title_marker(const std::string& source, const std::string& lead_id) {
    return display_source(source) + " " + lead_id + ":";
}

} // namespace crmsync::drivers::leads
