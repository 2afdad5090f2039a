#pragma once

#include "lib/core/clock.hpp"
#include "lib/pipeline/summary.hpp"
#include "lib/sql/batch_writer.hpp"
#include "lib/sql/database.hpp"
#include "lib/sql/schema_catalog.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::pipeline {

struct JobState {
    std::optional<std::string> checkpoint; // as stored (ISO-8601 UTC)
    std::string progress;                  // JSON text, informational
};

// The database side of a run: buffers rows per table and commits them in one transaction
// together with the job's state row (checkpoint and progress) and any rejects. Nothing is
// visible in the target until commit() returns; a kill before that loses only the buffer,
// which the next run fetches again.
class TargetWriter {
public:
    TargetWriter(sql::Database& db, std::string job_key, RunSummary& summary,
                 const Clock& clock = Clock::real());

    // Creates crmsync_state and crmsync_rejects and the given tables (adding missing columns
    // and indexes). Call once, after taking the lock.
    void prepare(const std::vector<const sql::Table*>& tables);

    JobState load_state();

    // Buffers one row for `table` (values aligned with table.columns).
    void add(const sql::Table& table, sql::Row row);
    // Records why a record was not stored; `raw` is kept for inspection (may be large).
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw);

    std::size_t buffered_rows() const noexcept { return m_buffered; }

    // Writes everything buffered and the state row in one transaction. The checkpoint is
    // changed only if `checkpoint` is given; otherwise the stored one is kept.
    void commit(const std::optional<std::string>& checkpoint, const std::string& progress);

private:
    sql::Database& m_db;
    std::string m_job;
    RunSummary& m_summary;
    const Clock& m_clock;
    std::vector<sql::TableSpec> m_own_tables;
    std::map<std::string, sql::TableRows> m_buffers;
    std::vector<sql::Row> m_rejects;
    std::size_t m_buffered = 0;
    std::optional<std::string> m_checkpoint;
};

} // namespace crmsync::pipeline
