#pragma once

#include "lib/sql/database.hpp"
#include "lib/sql/table.hpp"

#include <string>
#include <vector>

namespace crmsync::sql {

struct WriteCounts {
    long inserted = 0;
    long updated = 0;
    long unchanged = 0;

    WriteCounts& operator+=(const WriteCounts& other) {
        inserted += other.inserted;
        updated += other.updated;
        unchanged += other.unchanged;
        return *this;
    }
};

// A row the database could not take without loss, with the reason.
struct RejectedRow {
    std::string table;
    std::string key;
    std::string reason;
};

// Rows for one table: values aligned with table.columns (identity columns are left out by the
// writer; give them nullopt). The changed_at column is filled by the writer.
struct TableRows {
    const Table* table = nullptr;
    std::vector<Row> rows;
};

// Multi-row upserts on the table's primary key, as few statements as the dialect's parameter
// limit allows. Call inside an open transaction; the caller commits (with its checkpoint).
class BatchWriter {
public:
    explicit BatchWriter(Database& db) : m_db(db) {}

    // Writes `batch`. Rows sharing a key are collapsed to the last one. Rows holding a value
    // the dialect cannot store exactly are not written: they are appended to `rejected`.
    // `changed_at` is the canonical timestamp written into the table's changed_at column.
    WriteCounts upsert(const TableRows& batch, const std::string& changed_at,
                       std::vector<RejectedRow>& rejected);

    // The same, for a caller that has no use for the counts (crmsync's own state rows): small
    // batches then skip the query that counts stored keys, a round trip per statement.
    void upsert_uncounted(const TableRows& batch, const std::string& changed_at,
                          std::vector<RejectedRow>& rejected);

private:
    WriteCounts write(const TableRows& batch, const std::string& changed_at,
                      std::vector<RejectedRow>& rejected, bool counted);

    Database& m_db;
};

} // namespace crmsync::sql
