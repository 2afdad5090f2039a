#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::sql {

// Logical column types; each Dialect maps them to its own DDL (see README "Column types").
enum class ColumnType {
    key,     // bounded identifier text, indexable, compared byte-exactly
    text,    // unbounded text
    number,  // decimal with its fraction
    integer, // 64-bit integer
    boolean,
    timestamp, // UTC with milliseconds
    json,      // a JSON document (the record as received)
};

std::optional<ColumnType> column_type_from_string(std::string_view name);
std::string_view to_string(ColumnType type);

struct Column {
    std::string name;
    ColumnType type = ColumnType::text;
    bool nullable = true;
    // Identity/auto-increment primary keys (bulk-history's ID columns); never bound on insert.
    bool identity = false;
};

struct Index {
    std::vector<std::string> columns;
    bool unique = false;
};

// A table as crmsync wants it. The schema manager makes the database match it by adding what
// is missing; it never drops or narrows what is there.
struct Table {
    std::string name;
    std::vector<Column> columns;
    std::string primary_key; // one column
    // The column upserts match on when it is not the primary key (an identity ID with a
    // unique EXTERNAL_ID); created with a UNIQUE constraint.
    std::string upsert_key;
    std::vector<Index> indexes;
    // Stamped with the write time on insert and whenever the row's content changes; left alone
    // when an upsert finds identical content (dbsync2's "$changed").
    std::string changed_at_column;

    const std::string& key() const { return upsert_key.empty() ? primary_key : upsert_key; }
    const Column* find(std::string_view column) const;
    std::size_t position(std::string_view column) const; // npos if absent
};

} // namespace crmsync::sql
