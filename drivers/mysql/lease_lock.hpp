#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace soci {
class session;
}

namespace crmsync::drivers::mysql {

// The job lock on a Galera cluster. GET_LOCK is local to one node, so two runs connected to
// two nodes would both get it; instead the lock is a row in crmsync_locks with a lease:
//   - taken in a transaction: inserted, or taken over only when its lease has expired; a
//     certification conflict at commit (another node took it at the same moment) means "not
//     taken";
//   - renewed every lease/3 by a thread on its own connection, and inside every commit of the
//     run's rows (confirm()), which also fences: a run whose lease was taken over cannot commit;
//   - released (deleted) when the run ends, through another node of the URL if its own died.
// A run killed with -9 leaves the row until its lease runs out.
class LeaseLock {
public:
    // `db` is the run's connection to node `host` of `url`; it must outlive the lock.
    LeaseLock(sql::Database& db, soci::session& session, util::DatabaseUrl url,
              util::HostPort host);
    LeaseLock(const LeaseLock&) = delete;
    LeaseLock& operator=(const LeaseLock&) = delete;
    // Stops renewing and releases the row (errors ignored: the lease then runs out).
    ~LeaseLock();

    // Takes the lock for `job_key` without waiting; false when a live lease of another run
    // holds it or another node took it at the same moment. Throws Error(io) on other errors.
    bool take(const std::string& job_key);
    // Inside the caller's transaction: extends the lease, and throws Error(io) when the row is
    // no longer ours (the lease ran out and another run took the job over).
    void confirm();

    // Lease length: 60 s, or CRMSYNC_LOCK_LEASE_SECONDS (1-3600) for tests that need it short.
    static std::chrono::seconds lease_length();

private:
    void renew_loop();
    void release() noexcept;

    sql::Database& m_db;
    soci::session& m_session;
    util::DatabaseUrl m_url;
    util::HostPort m_host;
    std::chrono::seconds m_lease;
    std::string m_job;   // the row's key
    std::string m_owner; // random token of this run
    bool m_held = false;

    std::thread m_renewer;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stop = false;
};

} // namespace crmsync::drivers::mysql
