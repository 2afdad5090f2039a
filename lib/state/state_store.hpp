#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::state {

namespace detail {
struct OpenFile;
}

// $XDG_STATE_HOME/crmsync/state.db, else ~/.local/state/crmsync/state.db.
std::string default_state_path();

// The local state file of the jobs whose target keeps no state (webhook, OAuth accounts):
// checkpoints, the delivery ledger, the outbox, accounts, error episodes. WAL, created 0600 in
// a 0700 directory. Not thread safe.
//
// A process opens each file once: every StateStore of the same file (same device and inode,
// whatever path or symlink names it) shares one connection and the job locks, which are
// released when the last of them closes.
//
// Every method throws crmsync::Error(io) when the file fails, with a hint for a full disk, a
// file another process holds, and a corrupt file; no SQLite exception leaves lib/state.
class StateStore {
public:
    explicit StateStore(const std::string& path);
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    const std::string& path() const { return m_path; }

    // Takes the job's lock (an flock on a file beside the state file, named by the file's
    // device and inode) until the last store of the file in this process closes; false when
    // another process holds it. True again when this process holds it already.
    bool try_lock_job(const std::string& job);

    std::optional<std::string> checkpoint(const std::string& job);
    // Call inside the caller's transaction so the checkpoint moves with the work it covers.
    void set_checkpoint(const std::string& job, const std::string& checkpoint);

    // Every job with a checkpoint or deliveries in the outbox, sorted.
    std::vector<std::string> jobs();

    // For lib/state's own classes: the shared open file (an opaque type elsewhere).
    detail::OpenFile& file() { return *m_file; }

private:
    std::string m_path;
    detail::OpenFile* m_file = nullptr; // owned by the process-wide registry
};

// A write transaction on the state file, taken at once (BEGIN IMMEDIATE): a read-then-write
// never fails half-way with SQLITE_BUSY_SNAPSHOT because another job wrote in between; it
// waits for the writer lock (busy timeout) instead. Rolled back unless commit() is called.
// Throws Error(io). One at a time per file: transactions do not nest.
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
