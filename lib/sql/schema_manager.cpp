#include "lib/sql/schema_manager.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

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

// Attempts of ensure_all() and the pauses between them: full jitter up to 50, 100, 200 and
// 400 ms, so runs that raced once do not race again in step (the same backoff HTTP retries use).
const http::RetryPolicy k_schema_retry{5, std::chrono::milliseconds(50),
                                       std::chrono::milliseconds(400)};

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

void SchemaManager::widen_narrow_columns(const Table& table, const TableShape& shape,
                                         SchemaChanges& changes) {
    const Dialect& dialect = m_db.dialect();
    if (!dialect.column_types_query()) {
        return;
    }
    std::map<std::string, const ExistingColumn*> existing;
    for (const auto& c : shape.columns) {
        existing.emplace(util::collision_key(c.name), &c);
    }
    for (const auto& column : table.columns) {
        const auto found = existing.find(util::collision_key(column.name));
        if (found == existing.end()) {
            continue;
        }
        const ExistingColumn& old = *found->second;
        if (const auto sql = dialect.widen_column(table, column, old)) {
            // A column the database will not widen (a view depends on it, no ALTER right)
            // stays as it is: values that do not fit fail their batch as they did before.
            try {
                m_db.execute(*sql);
            } catch (const Error& e) {
                log::warn("cannot widen column {}.{} ({}): {}", table.name, column.name,
                          describe(old), e.describe());
                continue;
            }
            changes.widened_columns.push_back(fmt::format("{}.{}: {} -> {}", table.name,
                                                          column.name, describe(old),
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
                                      const std::set<std::string>& unique_columns,
                                      const std::set<std::string>& existing_indexes,
                                      SchemaChanges& changes) {
    const Dialect& dialect = m_db.dialect();
    if (unique_columns.count(util::collision_key(table.key())) != 0) {
        return;
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

SchemaChanges SchemaManager::ensure(const Table& table) { return ensure_all({&table}); }

SchemaChanges SchemaManager::ensure_all(const std::vector<const Table*>& listed) {
    std::vector<const Table*> tables;
    std::set<std::string> seen;
    for (const auto* table : listed) {
        if (seen.insert(table->name).second) {
            tables.push_back(table);
        }
    }
    SchemaChanges changes;
    std::set<const Table*> created;
    // cron starts every job of a minute at once, so on a fresh database several runs find the
    // same tables missing together, and PostgreSQL refuses the second CREATE TABLE (or INDEX)
    // IF NOT EXISTS of a name with a duplicate key in its catalog. What another run made is
    // found by reading the tables again, and an attempt leaves alone what is already there:
    // each failed attempt of a race ends with more done, and one that keeps failing is a real
    // error (no right to create, a lost connection), reported after the last attempt.
    for (int attempt = 1;; ++attempt) {
        try {
            ensure_once(tables, created, changes);
            return changes;
        } catch (const Error& e) {
            if (attempt >= k_schema_retry.max_attempts) {
                throw;
            }
            log::info("preparing tables failed ({}); another run may be preparing them too, "
                      "reading them again (attempt {} of {})",
                      e.what(), attempt + 1, k_schema_retry.max_attempts);
            std::this_thread::sleep_for(k_schema_retry.backoff(attempt));
        }
    }
}

void SchemaManager::ensure_once(const std::vector<const Table*>& tables,
                                std::set<const Table*>& created, SchemaChanges& changes) {
    const auto with_context = [](Error& e, const std::vector<const Table*>& which) {
        std::vector<std::string> names;
        for (const auto* t : which) {
            names.push_back(t->name);
        }
        e.add_context(fmt::format("preparing table{} {}", names.size() == 1 ? "" : "s",
                                  fmt::join(names, ", ")));
    };
    std::map<std::string, TableShape> shapes;
    try {
        shapes = read_shapes(tables);
    } catch (Error& e) {
        with_context(e, tables);
        throw;
    }
    std::vector<const Table*> created_now;
    for (const auto* table : tables) {
        if (!shapes[table->name].columns.empty()) {
            continue;
        }
        try {
            m_db.execute(m_db.dialect().create_table(*table));
        } catch (Error& e) {
            with_context(e, {table});
            throw;
        }
        changes.created_tables.push_back(table->name);
        created.insert(table);
        created_now.push_back(table);
    }
    // Read back what was created: another process may have created a table first (CREATE
    // TABLE IF NOT EXISTS then leaves its shape), and a created table has indexes to add.
    if (!created_now.empty()) {
        try {
            for (auto& [name, shape] : read_shapes(created_now)) {
                shapes[name] = std::move(shape);
            }
        } catch (Error& e) {
            with_context(e, created_now);
            throw;
        }
    }
    for (const auto* table : tables) {
        try {
            complete_table(*table, shapes[table->name], created.count(table) != 0, changes);
        } catch (Error& e) {
            with_context(e, {table});
            throw;
        }
    }
}

std::map<std::string, SchemaManager::TableShape>
SchemaManager::read_shapes(const std::vector<const Table*>& tables) {
    const Dialect& dialect = m_db.dialect();
    std::map<std::string, TableShape> shapes;
    for (const auto* table : tables) {
        shapes[table->name];
    }
    // name, data_type, character_maximum_length, numeric_precision, numeric_scale from `at`.
    // A column whose type the catalog leaves out is still there (it is never widened).
    const auto column_at = [](const Row& row, std::size_t at) -> std::optional<ExistingColumn> {
        if (row.size() < at + 5 || !row[at]) {
            return std::nullopt;
        }
        return ExistingColumn{*row[at], util::ascii_lower(row[at + 1].value_or("")),
                              as_number(row[at + 2]), as_number(row[at + 3]),
                              as_number(row[at + 4])};
    };
    const auto queries = dialect.table_shape_queries(tables.size());
    if (!queries) {
        for (const auto* table : tables) {
            auto& shape = shapes[table->name];
            if (const auto types = dialect.column_types_query()) {
                for (const auto& row : m_db.query(*types, {table->name})) {
                    if (auto c = column_at(row, 0)) {
                        shape.columns.push_back(std::move(*c));
                    }
                }
            } else {
                for (const auto& name : existing_columns(table->name)) {
                    shape.columns.push_back(ExistingColumn{name, "", {}, {}, {}});
                }
            }
            if (shape.columns.empty()) {
                continue; // missing: nothing else to read
            }
            for (const auto& row : m_db.query(dialect.list_indexes_query(), {table->name})) {
                if (!row.empty() && row[0]) {
                    shape.indexes.insert(util::collision_key(*row[0]));
                }
            }
            for (const auto& row : m_db.query(dialect.unique_columns_query(), {table->name})) {
                if (!row.empty() && row[0]) {
                    shape.unique_columns.insert(util::collision_key(*row[0]));
                }
            }
        }
        return shapes;
    }
    // A catalog may spell a table's name in another case than asked (MySQL with
    // lower_case_table_names); crmsync's tables never share a collision key.
    std::vector<Value> names;
    std::map<std::string, TableShape*> by_key;
    for (const auto* table : tables) {
        names.emplace_back(table->name);
        by_key[util::collision_key(table->name)] = &shapes[table->name];
    }
    const auto shape_of = [&](const Row& row) -> TableShape* {
        if (row.size() < 2 || !row[0] || !row[1]) {
            return nullptr;
        }
        if (const auto exact = shapes.find(*row[0]); exact != shapes.end()) {
            return &exact->second;
        }
        const auto folded = by_key.find(util::collision_key(*row[0]));
        return folded == by_key.end() ? nullptr : folded->second;
    };
    for (const auto& row : m_db.query(queries->column_types, names)) {
        if (auto* shape = shape_of(row)) {
            if (auto c = column_at(row, 1)) {
                shape->columns.push_back(std::move(*c));
            }
        }
    }
    for (const auto& row : m_db.query(queries->indexes, names)) {
        if (auto* shape = shape_of(row)) {
            shape->indexes.insert(util::collision_key(*row[1]));
        }
    }
    for (const auto& row : m_db.query(queries->unique_columns, names)) {
        if (auto* shape = shape_of(row)) {
            shape->unique_columns.insert(util::collision_key(*row[1]));
        }
    }
    return shapes;
}

void SchemaManager::complete_table(const Table& table, const TableShape& shape, bool just_created,
                                   SchemaChanges& changes) {
    const Dialect& dialect = m_db.dialect();
    // Databases differ in how they fold case; compare the way the strictest one does.
    std::set<std::string> present;
    for (const auto& column : shape.columns) {
        present.insert(util::collision_key(column.name));
    }
    for (const auto& column : table.columns) {
        if (present.count(util::collision_key(column.name)) == 0) {
            m_db.execute(dialect.add_column(table, column));
            changes.added_columns.push_back(table.name + "." + column.name);
        }
    }
    widen_narrow_columns(table, shape, changes);
    std::set<std::string> unique_columns = shape.unique_columns;
    for (const auto& index : table.indexes) {
        const std::string name = index_name(dialect, table, index);
        const std::string other = elsewhere_name(table, name);
        if (shape.indexes.count(util::collision_key(name)) != 0 ||
            shape.indexes.count(util::collision_key(other)) != 0) {
            if (just_created && shape.indexes.count(util::collision_key(name)) != 0) {
                changes.created_indexes.push_back(name); // made with the table (MySQL)
            }
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
        if (index.unique && index.columns.size() == 1) {
            unique_columns.insert(util::collision_key(index.columns.front()));
        }
    }
    ensure_unique_key(table, unique_columns, shape.indexes, changes);
}

} // namespace crmsync::sql
