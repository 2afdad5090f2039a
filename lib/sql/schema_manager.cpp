#include "lib/sql/schema_manager.hpp"

#include "lib/core/error.hpp"
#include "lib/util/identifiers.hpp"

namespace crmsync::sql {

std::set<std::string> SchemaManager::existing_columns(const std::string& table) {
    std::set<std::string> names;
    for (const auto& row : m_db.query(m_db.dialect().list_columns_query(), {table})) {
        if (!row.empty() && row[0]) {
            names.insert(*row[0]);
        }
    }
    return names;
}

SchemaChanges SchemaManager::ensure(const Table& table) {
    SchemaChanges changes;
    try {
        const Dialect& dialect = m_db.dialect();
        auto columns = existing_columns(table.name);
        if (columns.empty()) {
            m_db.execute(dialect.create_table(table));
            changes.created_tables.push_back(table.name);
            columns = existing_columns(table.name);
        }
        // Databases differ in how they fold case; compare the way the strictest one does.
        std::set<std::string> present;
        for (const auto& name : columns) {
            present.insert(util::collision_key(name));
        }
        for (const auto& column : table.columns) {
            if (present.count(util::collision_key(column.name)) == 0) {
                m_db.execute(dialect.add_column(table, column));
                changes.added_columns.push_back(table.name + "." + column.name);
            }
        }
        std::set<std::string> indexes;
        for (const auto& row : m_db.query(dialect.list_indexes_query(), {table.name})) {
            if (!row.empty() && row[0]) {
                indexes.insert(util::collision_key(*row[0]));
            }
        }
        for (const auto& index : table.indexes) {
            const std::string name = index_name(dialect, table, index);
            if (indexes.count(util::collision_key(name)) == 0) {
                m_db.execute(dialect.create_index(table, index));
                changes.created_indexes.push_back(name);
            }
        }
    } catch (Error& e) {
        e.add_context("preparing table " + table.name);
        throw;
    }
    return changes;
}

} // namespace crmsync::sql
