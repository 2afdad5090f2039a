#pragma once

#include "lib/pipeline/sink.hpp"
#include "lib/sql/table.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace crmsync::drivers::leads {

// The sources a lead may come from, as records name them.
inline constexpr const char* k_sources[] = {"callback24", "facebook", "gmail"};

// The `leads` table of schemas/leads.json: the row every lead source's record becomes.
const sql::Table& leads_table();

// Turns one lead record of a source (the shape every lead source returns: source, id,
// created_at, name, email, phone, message, details; or "error" when the source could not
// read it) into a row of leads_table() with `window` as its fetch_window. A record with an
// "error", an unknown source, no id, a created_at that is not ISO-8601, or a field of the
// wrong type becomes Emitter::reject with the reason and a short excerpt. Never throws.
void transform_lead(const nlohmann::json& record, const std::string& window,
                    pipeline::Emitter& out);

// A row of leads_table() back as the lead record (created_at as ISO-8601 UTC).
nlohmann::json lead_from_row(const sql::Table& table, const sql::Row& row);

// The CRM lead's title: "Callback24 <call id>: <phone>", "Facebook <lead id>: <name>",
// "Gmail <message id>: <name>" (the name falls back to the e-mail, then the phone).
std::string lead_title(const nlohmann::json& lead);

// What every title of this source lead starts with ("Callback24 123:"), to find a CRM lead
// created before.
std::string title_marker(const std::string& source, const std::string& lead_id);

} // namespace crmsync::drivers::leads
