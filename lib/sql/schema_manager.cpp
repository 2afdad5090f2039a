#include "lib/sql/schema_manager.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <map>

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

namespace {

std::optional<long long> as_number(const Value& value) {
    if (!value || value->empty()) {
        return std::nullopt;
    }
    try {
        return std::stoll(*value);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string describe(const ExistingColumn& c) {
    if (c.char_length && *c.char_length > 0) {
        return fmt::format("{}({})", c.data_type, *c.char_length);
    }
    if (c.numeric_precision) {
        return fmt::format("{}({},{})", c.data_type, *c.numeric_precision,
                           c.numeric_scale.value_or(0));
    }
    return c.data_type;
}

} // namespace

void SchemaManager::widen_narrow_columns(const Table& table, SchemaChanges& changes) {
    const Dialect& dialect = m_db.dialect();
    const auto query = dialect.column_types_query();
    if (!query) {
        return;
    }
    std::map<std::string, ExistingColumn> existing;
    for (const auto& row : m_db.query(*query, {table.name})) {
        if (row.size() < 5 || !row[0] || !row[1]) {
            continue;
        }
        ExistingColumn c{*row[0], *row[1], as_number(row[2]), as_number(row[3]), as_number(row[4])};
        std::transform(c.data_type.begin(), c.data_type.end(), c.data_type.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        existing.emplace(util::collision_key(c.name), std::move(c));
    }
    for (const auto& column : table.columns) {
        const auto found = existing.find(util::collision_key(column.name));
        if (found == existing.end()) {
            continue;
        }
        if (const auto sql = dialect.widen_column(table, column, found->second)) {
            // A column the database will not widen (a view depends on it, no ALTER right)
            // stays as it is: values that do not fit fail their batch as they did before.
            try {
                m_db.execute(*sql);
            } catch (const Error& e) {
                log::warn("cannot widen column {}.{} ({}): {}", table.name, column.name,
                          describe(found->second), e.describe());
                continue;
            }
            changes.widened_columns.push_back(fmt::format("{}.{}: {} -> {}", table.name,
                                                          column.name, describe(found->second),
                                                          dialect.column_type(column)));
        }
    }
}

std::string SchemaManager::elsewhere_name(const Table& table, const std::string& name) const {
    return util::sanitize_identifier(name + "_" + util::md5_hex(table.name).substr(0, 8),
                                     m_db.dialect().max_identifier_bytes());
}

std::optional<std::string> SchemaManager::first_free_name(const std::vector<std::string>& names) {
    const auto query = m_db.dialect().relation_name_query();
    for (const auto& name : names) {
        if (!query || m_db.query(*query, {name}).empty()) {
            return name;
        }
    }
    return std::nullopt;
}

void SchemaManager::ensure_unique_key(const Table& table,
                                      const std::set<std::string>& existing_indexes,
                                      SchemaChanges& changes) {
    const Dialect& dialect = m_db.dialect();
    const std::string wanted = util::collision_key(table.key());
    for (const auto& row : m_db.query(dialect.unique_columns_query(), {table.name})) {
        if (!row.empty() && row[0] && util::collision_key(*row[0]) == wanted) {
            return;
        }
    }
    // A table made by a user or another tool without a key: upserts would add a second row
    // for every key seen again (MySQL) or fail (PostgreSQL, SQLite). Adding the index is what
    // crmsync would have created; it fails when the table already holds one key twice.
    // crmsync's own name for it, unless an index (a plain one, or one over more columns)
    // already has that name.
    std::vector<std::string> candidates;
    if (const auto own = index_name(dialect, table, Index{{table.key()}, true});
        existing_indexes.count(util::collision_key(own)) == 0) {
        candidates.push_back(own);
    }
    candidates.push_back(util::sanitize_identifier("ux_" + table.name + "_" + table.key(),
                                                   dialect.max_identifier_bytes()));
    candidates.push_back(elsewhere_name(table, candidates.back()));
    const auto cannot_add = [&](const std::string& why) {
        return Error(ErrorKind::io,
                     fmt::format("table {} has no primary key or unique index on {}, and one "
                                 "cannot be added: {}",
                                 table.name, table.key(), why),
                     fmt::format("crmsync updates rows by {0}, so it must be unique: remove the "
                                 "rows that share a value of {0}, then add a primary key or unique "
                                 "index on it, or let crmsync create the table under another "
                                 "name (--table-prefix)",
                                 table.key()));
    };
    const auto name = first_free_name(candidates);
    if (!name) {
        throw cannot_add(
            fmt::format("the index names {} are all taken", fmt::join(candidates, ", ")));
    }
    try {
        m_db.execute(dialect.create_index(table, Index{{table.key()}, true}, *name));
    } catch (const Error& e) {
        throw cannot_add(e.what());
    }
    log::warn("table {} had no unique index on {}; created {} so rows are updated, not repeated",
              table.name, table.key(), *name);
    changes.created_indexes.push_back(*name);
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
        widen_narrow_columns(table, changes);
        std::set<std::string> indexes;
        for (const auto& row : m_db.query(dialect.list_indexes_query(), {table.name})) {
            if (!row.empty() && row[0]) {
                indexes.insert(util::collision_key(*row[0]));
            }
        }
        for (const auto& index : table.indexes) {
            const std::string name = index_name(dialect, table, index);
            const std::string other = elsewhere_name(table, name);
            if (indexes.count(util::collision_key(name)) != 0 ||
                indexes.count(util::collision_key(other)) != 0) {
                continue;
            }
            const auto chosen = first_free_name({name, other});
            if (!chosen) {
                log::warn("table {}: index {} not created: that name and {} belong to other "
                          "relations (indexes kept by a renamed table?); rename or drop one",
                          table.name, name, other);
                continue;
            }
            m_db.execute(dialect.create_index(table, index, *chosen));
            changes.created_indexes.push_back(*chosen);
        }
        ensure_unique_key(table, indexes, changes);
    } catch (Error& e) {
        e.add_context("preparing table " + table.name);
        throw;
    }
    return changes;
}

} // namespace crmsync::sql
