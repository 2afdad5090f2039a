#pragma once

#include "lib/sql/database.hpp"
#include "lib/sql/table.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace crmsync::sql {

struct SchemaChanges {
    std::vector<std::string> created_tables;
    std::vector<std::string> added_columns; // "table.column"
    std::vector<std::string> created_indexes;
    std::vector<std::string> widened_columns; // "table.column: old type -> new type"
};

// Makes the database hold `table`: creates it if missing, adds missing columns, creates
// missing indexes (and a unique index on the upsert key when a table made elsewhere lacks
// one), and widens columns too narrow for what crmsync writes there (dbsync2's
// varchar(50) keys and texts, MySQL's decimal(10,0)), so values are stored whole instead of
// cut or refused. Never drops, renames, narrows or otherwise retypes anything, so columns a
// user added and columns of fields since deleted survive. Column lookups are scoped to the
// connection's own schema/database (dbsync2 looked across databases, defect §5.16).
class SchemaManager {
public:
    explicit SchemaManager(Database& db) : m_db(db) {}

    SchemaChanges ensure(const Table& table);
    // ensure() of every table, with the catalog read for all of them at once (three queries
    // where the dialect allows it, see Dialect::table_shape_queries) and read again only for
    // the tables it had to create. The changes of all tables together. Runs that prepare the
    // same tables at the same moment all succeed: a failed change is tried again, after
    // reading the tables anew, up to five attempts in about a second.
    SchemaChanges ensure_all(const std::vector<const Table*>& tables);

    // Names of the table's columns as the database has them; empty if the table is missing.
    std::set<std::string> existing_columns(const std::string& table);

private:
    // What the catalog says of one table; no columns when the table is missing.
    struct TableShape {
        std::vector<ExistingColumn> columns;  // only names where the dialect has no types
        std::set<std::string> indexes;        // index names, as util::collision_key()s
        std::set<std::string> unique_columns; // columns unique on their own, collision keys
    };
    // One attempt of ensure_all(): `created` gathers the tables created by any attempt (indexes
    // found on them were made with them), `changes` what every attempt changed.
    void ensure_once(const std::vector<const Table*>& tables, std::set<const Table*>& created,
                     SchemaChanges& changes);
    // The shapes of `tables`, by table name.
    std::map<std::string, TableShape> read_shapes(const std::vector<const Table*>& tables);
    // Everything ensure() does to a table that exists, as read in `shape`. `just_created`:
    // the table was created by this call, so indexes found on it were made with it.
    void complete_table(const Table& table, const TableShape& shape, bool just_created,
                        SchemaChanges& changes);
    void widen_narrow_columns(const Table& table, const TableShape& shape, SchemaChanges& changes);
    // Makes sure the upsert key is unique on its own (a primary key or a unique index), adding
    // a unique index when it is not; throws when that fails (keys already repeated).
    // `existing_indexes` holds the table's index names as util::collision_key()s.
    void ensure_unique_key(const Table& table, const std::set<std::string>& unique_columns,
                           const std::set<std::string>& existing_indexes, SchemaChanges& changes);
    // The name an index of `table` takes when `name` belongs to another relation of the
    // schema: `name` with a short hash of the table name. Deterministic, so the next run finds
    // the index under it.
    std::string elsewhere_name(const Table& table, const std::string& name) const;
    // The first of `names` no relation of the schema has (see Dialect::relation_name_query);
    // nullopt when all are taken.
    std::optional<std::string> first_free_name(const std::vector<std::string>& names);

    Database& m_db;
};

} // namespace crmsync::sql
