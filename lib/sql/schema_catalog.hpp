#pragma once

#include "lib/sql/table.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::sql {

// A table from schemas/<source>.json with, per column, the field of the API record it is read
// from ("" when the source code computes it: ids, parent ids, change stamps, _raw).
struct TableSpec {
    Table table;
    std::vector<std::string> sources; // aligned with table.columns
};

// The text of schemas/<name> compiled into the binary, or nullopt.
std::optional<std::string_view> embedded_schema(std::string_view name);

// Parses a schema document; every table name gets `prefix` in front. Throws
// crmsync::Error(internal) when the document is malformed (it ships with the binary).
std::vector<TableSpec> parse_schema(std::string_view json_text, std::string_view prefix);

// embedded_schema + parse_schema.
std::vector<TableSpec> load_schema(std::string_view name, std::string_view prefix);

const TableSpec& find_spec(const std::vector<TableSpec>& specs, std::string_view unprefixed,
                           std::string_view prefix);

} // namespace crmsync::sql
