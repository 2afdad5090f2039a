#pragma once

#include "lib/core/clock.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/pipeline/summary.hpp"
#include "lib/sql/batch_writer.hpp"
#include "lib/sql/database.hpp"
#include "lib/sql/schema_catalog.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::pipeline {

struct JobState {
    std::optional<std::string> checkpoint; // as stored (ISO-8601 UTC)
    std::string progress;                  // JSON text, informational
};

// The SQL Sink: buffers rows per table and commits them in one transaction together with the
// job's state row (crmsync_state: checkpoint and progress) and any rejects (crmsync_rejects).
// Nothing is visible in the target until commit() returns; a kill before that loses only the
// buffer, which the next run fetches again. Rows the database cannot hold exactly (too long
// for a key, out of range) become rejects in the same transaction.
class TargetWriter final : public Sink {
public:
    TargetWriter(sql::Database& db, std::string job_key, RunSummary& summary,
                 const Clock& clock = Clock::real());
    // The same, owning the connection.
    TargetWriter(std::unique_ptr<sql::Database> db, std::string job_key, RunSummary& summary,
                 const Clock& clock = Clock::real());

    sql::Database& database() { return m_db; }
    std::string description() const override { return m_db.description(); }

    // The job's lock in the target (advisory lock, GET_LOCK, sp_getapplock, file lock).
    bool lock() override;
    // Creates crmsync_state and crmsync_rejects and the given tables (adding missing columns
    // and indexes). Call once, after taking the lock.
    void prepare(const std::vector<const sql::Table*>& tables) override;
    std::optional<std::string> load_checkpoint() override { return load_state().checkpoint; }
    JobState load_state();
    std::size_t max_identifier_bytes() const override {
        return m_db.dialect().max_identifier_bytes();
    }

    void add(const sql::Table& table, sql::Row row) override;
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override;

    std::size_t buffered() const override { return m_buffered; }
    std::size_t buffered_rows() const noexcept { return m_buffered; }

    void commit(const std::optional<std::string>& checkpoint, const std::string& progress) override;
    void commit_deferred(const std::optional<std::string>& checkpoint,
                         const std::string& progress) override;

    std::map<std::string, std::vector<std::optional<std::string>>>
    lookup(const sql::Table& table, const std::vector<std::string>& columns,
           const std::vector<std::string>& keys) override;
    std::optional<bool> holds_rows(const sql::Table& table) override;

    // Every key of `table` written by a commit must read back in the same transaction, or
    // the commit rolls back with Error(data): "verification failed: N of M <what()> did not
    // read back from <table> (<key column> k1, k2, ...)". For targets whose rows may vanish
    // under us (triggers, cleanup jobs) where a checkpoint past them would lose them.
    void verify_read_back(const sql::Table& table, std::function<std::string()> what);

private:
    void write(const std::optional<std::string>& checkpoint, const std::string& progress,
               sql::CommitWait wait);
    void check_read_back(const sql::TableRows& written,
                         const std::vector<sql::RejectedRow>& refused);

    std::unique_ptr<sql::Database> m_owned;
    sql::Database& m_db;
    std::string m_job;
    RunSummary& m_summary;
    const Clock& m_clock;
    std::vector<sql::TableSpec> m_own_tables;
    std::map<std::string, sql::TableRows> m_buffers;
    std::vector<sql::Row> m_rejects;
    std::size_t m_buffered = 0;
    std::optional<std::string> m_checkpoint;
    const sql::Table* m_verified = nullptr;
    std::function<std::string()> m_verified_what;
    // One connection: lookups from the fetch thread wait for a commit in flight.
    std::mutex m_db_mutex;
};

} // namespace crmsync::pipeline
