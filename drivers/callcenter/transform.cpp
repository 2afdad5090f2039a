#include "drivers/callcenter/transform.hpp"

#include "lib/core/clock.hpp"
#include "lib/core/error.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/util/time.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <set>

namespace crmsync::drivers::callcenter {
namespace {

using nlohmann::json;
using sql::Value;

// The table each stream writes (the members table is written with contact_groups).
const std::map<std::string, std::string>& stream_tables() {
    static const std::map<std::string, std::string> tables{
        {"contacts", "contacts"},     {"contact_groups", "contact_groups"},
        {"activities", "activities"}, {"agents", "agents"},
        {"roles", "roles"},           {"sip_accounts", "sip_accounts"}};
    return tables;
}

// A ms-epoch time as a timestamp column value. false when the value is not a whole number of
// milliseconds (a string or a fraction is not guessed at).
bool ms_time(const json& value, Value& out) {
    out.reset();
    if (value.is_null()) {
        return true;
    }
    if (!value.is_number_integer()) {
        return false;
    }
    const auto ms = value.get<std::int64_t>();
    out = util::format_sql_timestamp(SystemTime(std::chrono::milliseconds(ms)));
    return true;
}

struct Computed {
    std::map<std::string, Value> values;
    std::string problem;

    // Reads record[field] as a ms time into `column`; false (with problem) when it is not one.
    bool time(const json& record, const char* field, const std::string& column) {
        const auto it = record.find(field);
        if (it == record.end()) {
            return true;
        }
        Value v;
        if (!ms_time(*it, v)) {
            problem = column + ": expected a time in ms since the epoch, got " + it->dump();
            return false;
        }
        values[column] = std::move(v);
        return true;
    }

    // Reads record[field] as a value of `type` into `column`.
    bool field(const json& record, const char* name, sql::ColumnType type,
               const std::string& column) {
        const auto it = record.find(name);
        if (it == record.end()) {
            return true;
        }
        Value v;
        std::string why;
        if (!sql::to_column_value(*it, type, v, why)) {
            problem = column + ": " + why;
            return false;
        }
        values[column] = std::move(v);
        return true;
    }
};

// calllog: body.{idCalllog,status,duration,direction,source,destination,start,end,recordUrl};
// reminder: body.{remindedAgent,duedate,status}. Other types keep their body in _raw only.
bool flatten_body(const json& record, Computed& c) {
    const auto body = record.find("body");
    if (body == record.end() || body->is_null()) {
        return true;
    }
    const std::string type =
        record.value("type", json()).is_string() ? record["type"].get<std::string>() : "";
    if (type != "calllog" && type != "reminder") {
        return true;
    }
    if (!body->is_object()) {
        c.problem = "body: expected an object, got " + body->dump();
        return false;
    }
    using sql::ColumnType;
    if (type == "calllog") {
        return c.field(*body, "idCalllog", ColumnType::key, "call_id") &&
               c.field(*body, "status", ColumnType::key, "call_status") &&
               c.field(*body, "duration", ColumnType::number, "duration_s") &&
               c.field(*body, "direction", ColumnType::key, "direction") &&
               c.field(*body, "source", ColumnType::key, "source") &&
               c.field(*body, "destination", ColumnType::key, "destination") &&
               c.time(*body, "start", "started_at") && c.time(*body, "end", "ended_at") &&
               c.field(*body, "recordUrl", ColumnType::text, "record_url");
    }
    return c.field(*body, "remindedAgent", ColumnType::key, "reminded_agent") &&
           c.time(*body, "duedate", "due_at") &&
           c.field(*body, "status", ColumnType::key, "reminder_status");
}

std::set<std::string> string_ids(const json& list) {
    std::set<std::string> ids;
    if (list.is_array()) {
        for (const auto& item : list) {
            if (item.is_string() && !item.get_ref<const std::string&>().empty()) {
                ids.insert(item.get<std::string>());
            }
        }
    }
    return ids;
}

void members(const json& record, const std::string& call_center, const std::string& group_id,
             const CallcenterSchema& schema, const json& previous, pipeline::Emitter& out) {
    const auto& spec = schema.spec("contact_group_members");
    const bool group_deleted = record.value("deleted", json(false)) == json(true);
    const auto now = string_ids(record.value("contactList", json::array()));
    auto emit = [&](const std::string& contact, bool deleted) {
        sql::Row row;
        std::string problem;
        const std::map<std::string, Value> computed{
            {"id", call_center + "/" + group_id + "/" + contact},
            {"call_center_id", call_center},
            {"group_id", group_id},
            {"contact_id", contact},
            {"deleted", deleted ? "1" : "0"}};
        sql::row_from_json(spec, json::object(), computed, row, problem);
        out.add(spec.table, std::move(row));
    };
    for (const auto& contact : now) {
        emit(contact, group_deleted);
    }
    for (const auto& contact : string_ids(previous)) {
        if (!now.contains(contact)) {
            emit(contact, true);
        }
    }
}

} // namespace

const std::vector<std::string>& all_streams() {
    static const std::vector<std::string> streams{"contacts", "contact_groups", "activities",
                                                  "agents",   "roles",          "sip_accounts"};
    return streams;
}

CallcenterSchema::CallcenterSchema(const std::string& prefix)
    : specs(sql::load_schema("callcenter.json", prefix)), m_prefix(prefix) {}

const sql::TableSpec& CallcenterSchema::spec(const std::string& name) const {
    return sql::find_spec(specs, name, m_prefix);
}

std::vector<const sql::Table*> CallcenterSchema::tables() const {
    std::vector<const sql::Table*> out;
    for (const auto& s : specs) {
        out.push_back(&s.table);
    }
    return out;
}

std::string row_key(const std::string& call_center, const std::string& id) {
    return call_center + "/" + id;
}

json without_secrets(const std::string& stream, const json& record) {
    if (stream != "sip_accounts" || !record.is_object() || !record.contains("password")) {
        return record;
    }
    json copy = record;
    copy.erase("password");
    return copy;
}

void transform_record(const std::string& stream, const json& record, const std::string& call_center,
                      const CallcenterSchema& schema, const json& previous_members,
                      pipeline::Emitter& out) {
    const auto table = stream_tables().find(stream);
    if (table == stream_tables().end()) {
        return;
    }
    const auto& spec = schema.spec(table->second);
    const json clean = without_secrets(stream, record);
    const std::string raw = sql::to_json_text(clean);
    const auto id_field = clean.is_object() ? clean.find("_id") : clean.end();
    if (!clean.is_object() || id_field == clean.end() || !id_field->is_string() ||
        id_field->get_ref<const std::string&>().empty()) {
        out.reject(spec.table.name, "",
                   clean.is_object() ? "record without a string _id" : "record is not an object",
                   raw);
        return;
    }
    const std::string id = id_field->get<std::string>();
    const std::string key = row_key(call_center, id);
    Computed c;
    c.values = {{"id", key}, {"call_center_id", call_center}, {"_id", id}, {"_raw", raw}};
    if (!c.time(clean, "createdAt", "created_at") || !c.time(clean, "updatedAt", "updated_at") ||
        (stream == "activities" && !flatten_body(clean, c))) {
        out.reject(spec.table.name, key, c.problem, raw);
        return;
    }
    sql::Row row;
    std::string problem;
    if (!sql::row_from_json(spec, clean, c.values, row, problem)) {
        out.reject(spec.table.name, key, problem, raw);
        return;
    }
    out.add(spec.table, std::move(row));
    if (stream == "contact_groups") {
        members(clean, call_center, id, schema, previous_members, out);
    }
}

} // namespace crmsync::drivers::callcenter
