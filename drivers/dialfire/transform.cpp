#include "drivers/dialfire/transform.hpp"

#include "lib/core/error.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"
#include "lib/util/json_doc.hpp"
#include "lib/util/time.hpp"

#include <map>
#include <set>

namespace crmsync::drivers::dialfire {
namespace {

using nlohmann::json;
using sql::Value;
using util::json_doc::Kind;

template <typename Doc> bool is(typename Doc::Arg value, Kind kind) {
    return Doc::kind(value) == kind;
}

template <typename Doc>
std::optional<std::string> string_field(typename Doc::Arg record, std::string_view name) {
    const auto field = Doc::find(record, name); // none for a record that is not an object
    if (!field || !is<Doc>(*field, Kind::string) || Doc::string(*field).empty()) {
        return std::nullopt;
    }
    // Ids become keys, computed keys and reject keys: a NUL becomes U+FFFD there exactly as in
    // the columns filled from the record, so nothing is cut where a value is bound.
    std::string text(Doc::string(*field));
    for (auto pos = text.find('\0'); pos != std::string::npos; pos = text.find('\0', pos)) {
        text.replace(pos, 1, "\xEF\xBF\xBD");
    }
    return text;
}

// The record without the nested arrays that get rows of their own, so _raw holds every field
// exactly once across the tables.
template <typename Doc>
std::string raw_without(typename Doc::Arg record, std::initializer_list<const char*> nested) {
    return sql::to_json_text_without(record, nested);
}

template <typename Doc> bool accepts(const TransactionFilter& filter, typename Doc::Arg tx) {
    if (filter.updates_only) {
        const auto type = Doc::find(tx, "type");
        if (type && !is<Doc>(*type, Kind::null) &&
            !(is<Doc>(*type, Kind::string) && Doc::string(*type) == "update")) {
            return false;
        }
    }
    if (filter.human_only) {
        const auto user = Doc::find(tx, "user");
        if (!user || is<Doc>(*user, Kind::null)) {
            return false;
        }
        const auto detail = Doc::find(tx, "status_detail");
        if (detail && is<Doc>(*detail, Kind::string) && Doc::string(*detail) == "$assigned") {
            return false;
        }
    }
    if (!filter.task_prefixes.empty()) {
        const auto task = Doc::find(tx, "task");
        if (task && is<Doc>(*task, Kind::string)) {
            const auto name = Doc::string(*task);
            bool matched = false;
            for (const auto& prefix : filter.task_prefixes) {
                matched = matched || name.starts_with(prefix);
            }
            if (!matched) {
                return false;
            }
        }
    }
    if (filter.until) {
        if (const auto fired = Doc::find(tx, "fired"); fired && is<Doc>(*fired, Kind::string)) {
            const auto t = util::parse_iso8601(Doc::string(*fired));
            if (t && *t > *filter.until) {
                return false;
            }
        }
    }
    return true;
}

template <typename Doc> struct ContactRows {
    using Arg = typename Doc::Arg;

    const DialfireSchema& schema;
    const TransactionFilter& filter;
    pipeline::Emitter& writer;
    TransformCounters& counters;
    std::string contact_id;

    const sql::TableSpec& spec(std::size_t index) const { return schema.specs[index]; }

    bool emit(std::size_t table, Arg record, std::map<std::string, Value> computed,
              const std::string& key, const std::string& raw) {
        computed["_raw"] = raw;
        sql::Row row;
        std::string problem;
        if (!sql::row_from_json(spec(table), record, std::move(computed), row, problem)) {
            writer.reject(spec(table).table.name, key, problem, raw);
            return false;
        }
        writer.add(spec(table).table, std::move(row));
        return true;
    }

    void recording(Arg rec, const std::string& connection_id) {
        const std::string raw = sql::to_json_text(rec);
        auto basis = string_field<Doc>(rec, "location");
        if (!basis) {
            basis = string_field<Doc>(rec, "started");
        }
        if (!basis) {
            writer.reject(spec(schema.recordings).table.name, connection_id,
                          "recording has neither location nor started, so no stable id", raw);
            return;
        }
        const std::string id = util::md5_hex(connection_id + *basis);
        emit(schema.recordings, rec,
             {{"id", id}, {"contact_id", contact_id}, {"connection_id", connection_id}}, id, raw);
    }

    void connection(Arg conn, const std::string& transaction_id,
                    const std::optional<std::string>& parent_id) {
        const std::string raw = raw_without<Doc>(conn, {"recordings", "third_party_connections"});
        const auto id = string_field<Doc>(conn, "id");
        if (!id) {
            writer.reject(spec(schema.connections).table.name, transaction_id,
                          "connection without id", raw);
            return;
        }
        if (const auto ended = Doc::find(conn, "disconnected");
            !ended || is<Doc>(*ended, Kind::null)) {
            // The call is still running; the contact changes again when it ends.
            ++counters.in_progress;
            return;
        }
        std::map<std::string, Value> computed{{"contact_id", contact_id},
                                              {"transaction_id", transaction_id}};
        if (parent_id) {
            computed["parent_connection_id"] = *parent_id;
        }
        if (!emit(schema.connections, conn, computed, *id, raw)) {
            return;
        }
        if (const auto recs = Doc::find(conn, "recordings"); recs && is<Doc>(*recs, Kind::array)) {
            Doc::items(*recs, [&](Arg rec) { recording(rec, *id); });
        }
        if (const auto legs = Doc::find(conn, "third_party_connections")) {
            connections(*legs, transaction_id, *id);
        }
    }

    // A transfer's parent is the connection before it; third-party legs hang off their owner.
    void connections(Arg list, const std::string& transaction_id,
                     const std::optional<std::string>& owner) {
        if (!is<Doc>(list, Kind::array)) {
            return;
        }
        std::optional<std::string> previous;
        Doc::items(list, [&](Arg conn) {
            std::optional<std::string> parent = owner;
            if (!owner &&
                string_field<Doc>(conn, "technology") == std::optional<std::string>("transfer")) {
                parent = previous;
            }
            connection(conn, transaction_id, parent);
            previous = string_field<Doc>(conn, "id");
        });
    }

    void transaction(Arg tx, std::map<std::string, int>& fired_seen) {
        const std::string raw = raw_without<Doc>(tx, {"connections"});
        const auto fired = string_field<Doc>(tx, "fired");
        if (!fired) {
            writer.reject(spec(schema.transactions).table.name, contact_id,
                          "transaction without fired, so no stable id", raw);
            return;
        }
        if (!accepts<Doc>(filter, tx)) {
            ++counters.filtered;
            return;
        }
        // dbsync2's id; a second transaction fired in the same millisecond would overwrite
        // the first (defect §5.12), so later ones get a counter.
        const int seen = fired_seen[*fired]++;
        const std::string id =
            util::md5_hex(contact_id + *fired + (seen == 0 ? "" : "#" + std::to_string(seen)));
        if (!emit(schema.transactions, tx, {{"id", id}, {"contact_id", contact_id}}, id, raw)) {
            return;
        }
        if (const auto list = Doc::find(tx, "connections")) {
            connections(*list, id, std::nullopt);
        }
    }
};

template <typename Doc>
void contact_rows(typename Doc::Arg contact, const DialfireSchema& schema,
                  const TransactionFilter& filter, pipeline::Emitter& writer,
                  TransformCounters& counters) {
    using Arg = typename Doc::Arg;
    const auto& contacts_table = schema.specs[schema.contacts].table.name;
    const auto id = string_field<Doc>(contact, "$id");
    if (!is<Doc>(contact, Kind::object) || !id) {
        writer.reject(contacts_table, "", "contact without $id", sql::to_json_text(contact));
        return;
    }
    ContactRows<Doc> emitter{schema, filter, writer, counters, *id};
    // The contact's _raw keeps its $task_log entries minus the transactions, which are stored
    // (with their own _raw) in the transactions table.
    static const sql::JsonPrune k_task_log_without_transactions{
        {}, {{"$task_log", sql::JsonPrune{{"transactions"}, {}}}}};
    const std::string raw = sql::to_json_text_pruned(contact, k_task_log_without_transactions);
    if (!emitter.emit(schema.contacts, contact, {}, *id, raw)) {
        return;
    }
    const auto log = Doc::find(contact, "$task_log");
    if (!log || !is<Doc>(*log, Kind::array)) {
        return;
    }
    std::map<std::string, int> fired_seen;
    Doc::items(*log, [&](Arg entry) {
        if (!is<Doc>(entry, Kind::object)) {
            return;
        }
        const auto txs = Doc::find(entry, "transactions");
        if (!txs || !is<Doc>(*txs, Kind::array)) {
            return;
        }
        Doc::items(*txs, [&](Arg tx) { emitter.transaction(tx, fired_seen); });
    });
}

} // namespace

TransactionFilter TransactionFilter::parse(const std::string& mode, const std::string& prefixes) {
    TransactionFilter filter;
    if (mode == "updates_only") {
        filter.updates_only = true;
    } else if (mode == "hi_updates_only") {
        filter.updates_only = true;
        filter.human_only = true;
    } else if (!mode.empty()) {
        throw Error(ErrorKind::usage, "unknown filter mode '" + mode + "'",
                    "use --fm updates_only or --fm hi_updates_only");
    }
    std::size_t start = 0;
    while (start <= prefixes.size()) {
        const auto comma = prefixes.find(',', start);
        std::string prefix =
            prefixes.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        const auto first = prefix.find_first_not_of(" \t");
        const auto last = prefix.find_last_not_of(" \t");
        if (first != std::string::npos) {
            filter.task_prefixes.push_back(prefix.substr(first, last - first + 1));
        }
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return filter;
}

bool TransactionFilter::accepts(const json& tx) const {
    return dialfire::accepts<util::json_doc::Nlohmann>(*this, tx);
}

template <sql::SimdjsonElement E> bool TransactionFilter::accepts(const E& tx) const {
    return dialfire::accepts<util::json_doc::Simdjson>(*this, tx);
}
template bool TransactionFilter::accepts(const simdjson::dom::element&) const;

DialfireSchema DialfireSchema::build(const std::string& prefix,
                                     const std::vector<CampaignField>& fields,
                                     std::size_t max_custom_fields,
                                     std::size_t max_identifier_bytes) {
    DialfireSchema schema;
    schema.specs = sql::load_schema("dialfire.json", prefix);
    const auto name_of = [&](std::size_t i) { return schema.specs[i].table.name; };
    const std::vector<std::pair<std::size_t*, const char*>> slots = {
        {&schema.contacts, "contacts"},
        {&schema.transactions, "transactions"},
        {&schema.connections, "connections"},
        {&schema.recordings, "recordings"},
        {&schema.inbound_calls, "inbound_calls"}};
    for (const auto& [slot, name] : slots) {
        for (std::size_t i = 0; i < schema.specs.size(); ++i) {
            if (name_of(i) == prefix + name) {
                *slot = i;
            }
        }
    }
    auto& contacts = schema.specs[schema.contacts];
    util::IdentifierAllocator names(max_identifier_bytes);
    std::set<std::string> fixed_sources;
    for (const auto& column : contacts.table.columns) {
        names.reserve(column.name);
    }
    for (const auto& source : contacts.sources) {
        fixed_sources.insert(source);
    }
    std::size_t added = 0;
    std::set<std::string> seen;
    for (const auto& field : fields) {
        if (max_custom_fields != 0 && added >= max_custom_fields) {
            break;
        }
        // "$"-fields already have their columns; a repeated name is one field.
        if (fixed_sources.count(field.name) != 0 || !seen.insert(field.name).second) {
            continue;
        }
        sql::Column column;
        column.name = names.allocate(field.name);
        column.type =
            field.field_type == "number" ? sql::ColumnType::number : sql::ColumnType::text;
        contacts.table.columns.push_back(column);
        contacts.sources.push_back(field.name);
        schema.custom_fields.push_back(field.name);
        ++added;
    }
    return schema;
}

std::vector<const sql::Table*> DialfireSchema::tables() const {
    std::vector<const sql::Table*> out;
    for (const auto& spec : specs) {
        out.push_back(&spec.table);
    }
    return out;
}

void transform_contact(const json& contact, const DialfireSchema& schema,
                       const TransactionFilter& filter, pipeline::Emitter& writer,
                       TransformCounters& counters) {
    contact_rows<util::json_doc::Nlohmann>(contact, schema, filter, writer, counters);
}

template <sql::SimdjsonElement E>
void transform_contact(const E& contact, const DialfireSchema& schema,
                       const TransactionFilter& filter, pipeline::Emitter& writer,
                       TransformCounters& counters) {
    contact_rows<util::json_doc::Simdjson>(contact, schema, filter, writer, counters);
}
template void transform_contact(const simdjson::dom::element&, const DialfireSchema&,
                                const TransactionFilter&, pipeline::Emitter&, TransformCounters&);

void transform_inbound_call(const json& call, const DialfireSchema& schema,
                            pipeline::Emitter& writer) {
    const auto& spec = schema.specs[schema.inbound_calls];
    const std::string raw = sql::to_json_text(call);
    const auto id = string_field<util::json_doc::Nlohmann>(call, "id");
    if (!id) {
        writer.reject(spec.table.name, "", "inbound call without id", raw);
        return;
    }
    sql::Row row;
    std::string problem;
    if (!sql::row_from_json(spec, call, {{"_raw", raw}}, row, problem)) {
        writer.reject(spec.table.name, *id, problem, raw);
        return;
    }
    writer.add(spec.table, std::move(row));
}

} // namespace crmsync::drivers::dialfire
