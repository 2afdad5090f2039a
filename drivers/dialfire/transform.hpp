#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "lib/core/clock.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/sql/schema_catalog.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::dialfire {

// dbsync2's client-side transaction filter (reference §4.3), with its defects fixed: prefixes
// are trimmed, and it applies per transaction in every mode.
struct TransactionFilter {
    bool updates_only = false; // --fm updates_only: skip type present and != "update"
    bool human_only = false;   // --fm hi_updates_only: also skip user null or "$assigned"
    std::vector<std::string> task_prefixes; // --fp: skip task present and matching none
    std::optional<SystemTime> until;        // --until: skip fired after it

    // Throws Error(usage) for an unknown mode.
    static TransactionFilter parse(const std::string& mode, const std::string& prefixes);
    bool accepts(const nlohmann::json& transaction) const;
    template <sql::SimdjsonElement E> bool accepts(const E& transaction) const;
};

// The five Dialfire tables for one run: schemas/dialfire.json with the table prefix, plus one
// contacts column per custom field of the campaign (names sanitised, collision-free).
struct DialfireSchema {
    std::vector<sql::TableSpec> specs;
    std::size_t contacts = 0, transactions = 1, connections = 2, recordings = 3, inbound_calls = 4;
    std::vector<std::string> custom_fields; // in column order, original names

    // `max_custom_fields` 0 means all. Fields beyond the limit still live in _raw.
    static DialfireSchema build(const std::string& prefix, const std::vector<CampaignField>& fields,
                                std::size_t max_custom_fields, std::size_t max_identifier_bytes);
    std::vector<const sql::Table*> tables() const;
};

struct TransformCounters {
    long filtered = 0;
    long in_progress = 0;
};

// Splits one contact into rows of contacts, transactions, connections and recordings
// (dbsync2's ids: md5($id + fired), md5(connection id + location|started), connections
// flattened with parent_connection_id) and hands them to `writer`. Records that cannot be
// stored (no id, wrong types) go to writer.reject(). Never throws for bad data.
// The contact may come from nlohmann's document or from simdjson's (the same rows either way).
void transform_contact(const nlohmann::json& contact, const DialfireSchema& schema,
                       const TransactionFilter& filter, pipeline::Emitter& writer,
                       TransformCounters& counters);
template <sql::SimdjsonElement E>
void transform_contact(const E& contact, const DialfireSchema& schema,
                       const TransactionFilter& filter, pipeline::Emitter& writer,
                       TransformCounters& counters);

void transform_inbound_call(const nlohmann::json& call, const DialfireSchema& schema,
                            pipeline::Emitter& writer);

} // namespace crmsync::drivers::dialfire
