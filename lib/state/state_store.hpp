#pragma once

#include <SQLiteCpp/Database.h>

#include <memory>
#include <optional>
#include <string>

namespace crmsync::state {

// $XDG_STATE_HOME/crmsync/state.db, else ~/.local/state/crmsync/state.db.
std::string default_state_path();

// The local state file of the jobs whose target keeps no state (webhook, OAuth accounts):
// checkpoints, the delivery ledger, the outbox, accounts, error episodes. SQLite through
// SQLiteCpp, WAL, created 0600 in a 0700 directory. Throws crmsync::Error(io) when it cannot be
// opened. One StateStore per process; not thread safe.
class StateStore {
public:
    explicit StateStore(const std::string& path);
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    SQLite::Database& db() { return *m_db; }
    const std::string& path() const { return m_path; }

    // Takes the job's lock (an flock beside the file) for the life of this store; false when
    // another process holds it.
    bool try_lock_job(const std::string& job);

    std::optional<std::string> checkpoint(const std::string& job);
    // Call inside the caller's transaction so the checkpoint moves with the work it covers.
    void set_checkpoint(const std::string& job, const std::string& checkpoint);

private:
    friend class Transaction;
    std::string m_path;
    std::unique_ptr<SQLite::Database> m_db;
    int m_lock_fd = -1;
};

// A write transaction on the state file, taken at once (BEGIN IMMEDIATE): a read-then-write
// never fails half-way with SQLITE_BUSY_SNAPSHOT because another job wrote in between; it
// waits for the writer lock (busy timeout) instead. Rolled back unless commit() is called.
// Throws Error(io).
class Transaction {
public:
    explicit Transaction(StateStore& store);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    void commit();

private:
    StateStore& m_store;
    bool m_open = false;
};

} // namespace crmsync::state
