#pragma once

#include "lib/sql/database.hpp"
#include "lib/sql/table.hpp"

#include <set>
#include <string>
#include <vector>

namespace crmsync::sql {

struct SchemaChanges {
    std::vector<std::string> created_tables;
    std::vector<std::string> added_columns; // "table.column"
    std::vector<std::string> created_indexes;
};

// Makes the database hold `table`: creates it if missing, adds missing columns, creates
// missing indexes. Never drops, renames or retypes anything, so columns a user added, columns
// of fields since deleted, and dbsync2's column types all survive. Column lookups are scoped
// to the connection's own schema/database (dbsync2 looked across databases, defect §5.16).
class SchemaManager {
public:
    explicit SchemaManager(Database& db) : m_db(db) {}

    SchemaChanges ensure(const Table& table);

    // Names of the table's columns as the database has them; empty if the table is missing.
    std::set<std::string> existing_columns(const std::string& table);

private:
    Database& m_db;
};

} // namespace crmsync::sql
