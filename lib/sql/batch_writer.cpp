#include "lib/sql/batch_writer.hpp"

#include "lib/core/error.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace crmsync::sql {
namespace {

constexpr std::size_t k_statement_bytes = 4 * 1024 * 1024;
// Below this many rows a multi-row statement is as quick as a bulk load.
constexpr std::size_t k_bulk_threshold = 50;

} // namespace

WriteCounts BatchWriter::upsert(const TableRows& batch, const std::string& changed_at,
                                std::vector<RejectedRow>& rejected) {
    return write(batch, changed_at, rejected, true);
}

void BatchWriter::upsert_uncounted(const TableRows& batch, const std::string& changed_at,
                                   std::vector<RejectedRow>& rejected) {
    write(batch, changed_at, rejected, false);
}

WriteCounts BatchWriter::write(const TableRows& batch, const std::string& changed_at,
                               std::vector<RejectedRow>& rejected, bool counted) {
    WriteCounts counts;
    const Table& table = *batch.table;
    const Dialect& dialect = m_db.dialect();
    const std::size_t key_pos = table.position(table.key());
    const std::size_t changed_pos = table.changed_at_column.empty()
                                        ? std::string::npos
                                        : table.position(table.changed_at_column);
    if (key_pos == std::string::npos) {
        throw Error(ErrorKind::internal, "table " + table.name + " has no primary key column");
    }
    std::vector<std::size_t> bound;
    std::vector<const Column*> columns;
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
        if (!table.columns[i].identity) {
            bound.push_back(i);
            columns.push_back(&table.columns[i]);
        }
    }

    // Last row per key wins; a batch must not touch one row twice (PostgreSQL refuses it).
    // Keys are viewed in place, not copied: the rows outlive the map.
    std::unordered_map<std::string_view, std::size_t> last_by_key;
    last_by_key.reserve(batch.rows.size());
    for (std::size_t r = 0; r < batch.rows.size(); ++r) {
        const auto& key = batch.rows[r][key_pos];
        if (key) {
            last_by_key[*key] = r;
        }
    }
    std::vector<const Row*> rows;
    rows.reserve(last_by_key.size());
    for (std::size_t r = 0; r < batch.rows.size(); ++r) {
        const Row& row = batch.rows[r];
        const auto& key = row[key_pos];
        if (!key) {
            rejected.push_back({table.name, "", "the row has no value for " + table.key()});
            continue;
        }
        if (last_by_key[*key] != r) {
            continue;
        }
        std::optional<std::string> problem;
        for (std::size_t i : bound) {
            if (row[i] && (problem = dialect.value_problem(table.columns[i], *row[i]))) {
                break;
            }
        }
        if (problem) {
            rejected.push_back({table.name, *key, *problem});
            continue;
        }
        rows.push_back(&row);
    }
    if (rows.empty()) {
        return counts;
    }

    if (rows.size() >= k_bulk_threshold) {
        std::vector<std::vector<const Value*>> values;
        values.reserve(rows.size());
        const Value changed{changed_at};
        for (const Row* row : rows) {
            std::vector<const Value*> v;
            v.reserve(bound.size());
            for (std::size_t i : bound) {
                v.push_back(i == changed_pos ? &changed : &(*row)[i]);
            }
            values.push_back(std::move(v));
        }
        if (const auto bulk = m_db.bulk_upsert(table, columns, values)) {
            const long n = static_cast<long>(rows.size());
            const long inserted = n - bulk->existing;
            const long updated = dialect.updated_from_affected(bulk->affected, inserted, n);
            counts.inserted += inserted;
            counts.updated += updated;
            counts.unchanged += n - inserted - updated;
            return counts;
        }
    }
    // Statements stay under the dialect's parameter limit and a few MB of values, so MySQL's
    // max_allowed_packet and SQL Server's 2100 parameters are never hit.
    const std::size_t max_rows = std::max<std::size_t>(
        1, std::min<std::size_t>(1000, dialect.max_parameters() / columns.size()));
    const std::vector<std::string> key_column{table.key()};
    std::size_t start = 0;
    while (start < rows.size()) {
        std::size_t n = 0;
        std::size_t bytes = 0;
        while (start + n < rows.size() && n < max_rows && (n == 0 || bytes < k_statement_bytes)) {
            for (std::size_t i : bound) {
                const auto& value = (*rows[start + n])[i];
                bytes += value ? value->size() : 0;
            }
            ++n;
        }
        long existing = 0;
        if (counted) {
            std::vector<Value> keys;
            keys.reserve(n);
            for (std::size_t r = start; r < start + n; ++r) {
                keys.push_back((*rows[r])[key_pos]);
            }
            existing = static_cast<long>(
                m_db.query(dialect.select_by_keys(table, key_column, n), keys).size());
        }
        std::vector<Value> params;
        params.reserve(n * columns.size());
        for (std::size_t r = start; r < start + n; ++r) {
            for (std::size_t i : bound) {
                params.push_back(i == changed_pos ? Value{changed_at} : (*rows[r])[i]);
            }
        }
        const long affected = m_db.execute(dialect.upsert(table, columns, n), params);
        if (!counted) {
            start += n;
            continue;
        }
        const long inserted = static_cast<long>(n) - existing;
        const long updated =
            dialect.updated_from_affected(affected, inserted, static_cast<long>(n));
        counts.inserted += inserted;
        counts.updated += updated;
        counts.unchanged += static_cast<long>(n) - inserted - updated;
        start += n;
    }
    return counts;
}

} // namespace crmsync::sql
