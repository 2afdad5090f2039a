#pragma once

#include "lib/pipeline/sink.hpp"
#include "lib/sql/schema_catalog.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace crmsync::drivers::callcenter {

// The streams of the call-center service, in the order a run reads them.
const std::vector<std::string>& all_streams();

// schemas/callcenter.json with the table prefix: one table per stream, plus the group members.
struct CallcenterSchema {
    std::vector<sql::TableSpec> specs;

    explicit CallcenterSchema(const std::string& prefix);
    // The table of `name` without the prefix ("contacts", "contact_group_members").
    const sql::TableSpec& spec(const std::string& name) const;
    std::vector<const sql::Table*> tables() const;

private:
    std::string m_prefix;
};

// The stored primary key of a record: call_center_id + '/' + _id.
std::string row_key(const std::string& call_center, const std::string& id);

// Turns one record of `stream` into rows (Emitter::add): ms-epoch times to UTC timestamps,
// an activity's body flattened by its type, `_raw` = the record without any SIP password.
// A contact group also writes one member row per contactList entry, and a tombstone member
// row (deleted = true) for each id in `previous_members` (the group's stored contactList)
// that is no longer listed, so membership is replaced whenever the group changes.
// A record without a string `_id`, or with a value of the wrong type, goes to
// Emitter::reject with its reason. Never throws for bad data.
void transform_record(const std::string& stream, const nlohmann::json& record,
                      const std::string& call_center, const CallcenterSchema& schema,
                      const nlohmann::json& previous_members, pipeline::Emitter& out);

// The record with every secret removed (a SIP account's password), for _raw and rejects.
nlohmann::json without_secrets(const std::string& stream, const nlohmann::json& record);

} // namespace crmsync::drivers::callcenter
