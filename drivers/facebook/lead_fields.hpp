#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace crmsync::drivers::facebook {

// Turns one Graph lead ({"id", "created_time", "field_data": [{"name", "values"}], "ad_id",
// ...}) into the lead record described in lead_source.hpp. Form questions map by their key,
// case-insensitively: name <- full_name | name, else first_name + last_name; email <- email |
// work_email; phone <- phone_number | phone | mobile_phone | work_phone_number; message <-
// message | comments | comment | question. The first key present wins; a question with
// several values gives them joined by ", ". Every other question goes to details.fields.
// `form_id` is the form the lead was read from (kept when the lead does not say).
// Never throws: a lead without an id or a readable created_time becomes a record with "error"
// and a short "raw" excerpt.
nlohmann::json lead_record(const nlohmann::json& lead, const std::string& form_id);

} // namespace crmsync::drivers::facebook
