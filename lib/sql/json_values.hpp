#pragma once

#include "lib/sql/database.hpp"
#include "lib/sql/table.hpp"

#include <nlohmann/json_fwd.hpp>

#include <concepts>

namespace simdjson::dom {
class element;
}

namespace crmsync::sql {
// simdjson's dom::element and nothing else: the overloads below for it are templates bound to
// it, so that overload resolution for a nlohmann::json (which would try to convert itself to
// any type) never looks into simdjson's type, which is incomplete here.
template <typename T>
concept SimdjsonElement = std::same_as<T, simdjson::dom::element>;
} // namespace crmsync::sql

#include <initializer_list>
#include <string>
#include <vector>

namespace crmsync::sql {

// Converts one JSON value from an API record into the canonical text of a column type
// (see Dialect). Returns false and sets `problem` when the value does not fit the type
// ("expected a number, got \"abc\""); the caller rejects the record rather than guess.
// null, and "" for non-text types, become SQL NULL. NUL characters, which PostgreSQL cannot
// store, become U+FFFD.
bool to_column_value(const nlohmann::json& value, ColumnType type, Value& out,
                     std::string& problem);

// Sets the order in which the JSON texts written here list an object's members, for the whole
// process (see Dialect::json_member_order). Call before threads write JSON texts; texts in
// either order are the same JSON.
void set_json_member_order(JsonMemberOrder order);

// The record as JSON text for a json column: NUL characters scrubbed, invalid UTF-8 replaced.
// Each function here that reads a record takes it from nlohmann's document or from simdjson's,
// with the same result for the same JSON text (see util/json_doc.hpp).
std::string to_json_text(const nlohmann::json& record);
template <SimdjsonElement E> std::string to_json_text(const E& record);

// Which parts of a JSON value to leave out when writing it: members of an object by name, and
// in the object items of an array member, what `items_of` says for that member.
struct JsonPrune {
    std::vector<std::string> drop;
    std::map<std::string, JsonPrune> items_of;
};

// to_json_text of a copy of `value` with `prune` applied, byte for byte, written without
// copying the value (records are large and this runs for every one).
std::string to_json_text_pruned(const nlohmann::json& value, const JsonPrune& prune);
template <SimdjsonElement E>
std::string to_json_text_pruned(const E& value, const JsonPrune& prune);

// to_json_text of `object` without the members named in `left_out` (see to_json_text_pruned).
std::string to_json_text_without(const nlohmann::json& object,
                                 std::initializer_list<const char*> left_out);
template <SimdjsonElement E>
std::string to_json_text_without(const E& object, std::initializer_list<const char*> left_out);

// "1.5e3" -> "1500", "1e-2" -> "0.01"; plain decimals unchanged; nullopt if not a number.
std::optional<std::string> normalize_decimal(std::string_view text);

} // namespace crmsync::sql

#include "lib/sql/schema_catalog.hpp"

#include <map>

namespace crmsync::sql {

// Builds a row of `spec` from an API record: columns with a source read record[source]
// through to_column_value; the others take `computed[column]` (NULL when absent). Returns
// false with `problem` naming the column when a value does not fit its type.
bool row_from_json(const TableSpec& spec, const nlohmann::json& record,
                   const std::map<std::string, Value>& computed, Row& out, std::string& problem);
// The same, moving the computed values into the row instead of copying them (a record's _raw
// text is the longest value of its row). `computed` is left in a valid but unspecified state.
bool row_from_json(const TableSpec& spec, const nlohmann::json& record,
                   std::map<std::string, Value>&& computed, Row& out, std::string& problem);
template <SimdjsonElement E>
bool row_from_json(const TableSpec& spec, const E& record, std::map<std::string, Value>&& computed,
                   Row& out, std::string& problem);

} // namespace crmsync::sql
