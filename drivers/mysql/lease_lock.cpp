#include "drivers/mysql/lease_lock.hpp"

#include "drivers/mysql/connection.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"

#include <fmt/format.h>
#include <soci/mysql/soci-mysql.h>
#include <soci/soci.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <unistd.h>

namespace crmsync::drivers::mysql {
namespace {

// MySQL error numbers that mean "someone else got there first", not a broken connection:
// a deadlock (Galera reports a failed certification as one) and a lock wait timeout.
constexpr int k_deadlock = 1213;
constexpr int k_lock_wait_timeout = 1205;

constexpr std::size_t k_max_job_bytes = 255;

std::string random_token() {
    std::random_device device;
    std::mt19937_64 rng{(static_cast<std::uint64_t>(device()) << 32) ^ device()};
    return fmt::format("{:016x}{:016x}", rng(), rng());
}

// Who holds the lock, for a human reading the row: host name and process id.
std::string holder() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
        return fmt::format("localhost:{}", getpid());
    }
    return fmt::format("{}:{}", name, getpid());
}

bool lost_race(const soci::soci_error& e) {
    const auto* mysql = dynamic_cast<const soci::mysql_soci_error*>(&e);
    return mysql != nullptr &&
           (mysql->err_num_ == k_deadlock || mysql->err_num_ == k_lock_wait_timeout);
}

Error lock_error(const std::string& action, const std::exception& e) {
    return Error(ErrorKind::io, "database error while " + action + ": " + sql::database_message(e),
                 "check that the cluster node is synced and the user may create tables");
}

const char* const k_create_table =
    "CREATE TABLE IF NOT EXISTS crmsync_locks ("
    "job varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
    "owner varchar(64) NOT NULL, holder varchar(300) NOT NULL, "
    "expires_at datetime(3) NOT NULL, taken_at datetime(3) NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

// Inserts the row, or takes it over only when its lease has expired. Each assignment sees the
// ones before it, so the expiry test must not read a column already set: `expires_at` is
// assigned last.
const char* const k_take =
    "INSERT INTO crmsync_locks (job, owner, holder, expires_at, taken_at) "
    "VALUES (:job, :owner, :holder, UTC_TIMESTAMP(3) + INTERVAL :lease SECOND, UTC_TIMESTAMP(3)) "
    "ON DUPLICATE KEY UPDATE "
    "owner = IF(expires_at < UTC_TIMESTAMP(3), VALUES(owner), owner), "
    "holder = IF(expires_at < UTC_TIMESTAMP(3), VALUES(holder), holder), "
    "taken_at = IF(expires_at < UTC_TIMESTAMP(3), VALUES(taken_at), taken_at), "
    "expires_at = IF(expires_at < UTC_TIMESTAMP(3), VALUES(expires_at), expires_at)";

const char* const k_renew =
    "UPDATE crmsync_locks SET expires_at = UTC_TIMESTAMP(3) + INTERVAL :lease SECOND "
    "WHERE job = :job AND owner = :owner";

const char* const k_release = "DELETE FROM crmsync_locks WHERE job = :job AND owner = :owner";

} // namespace

std::chrono::seconds LeaseLock::lease_length() {
    constexpr int k_default = 60;
    const char* env = std::getenv("CRMSYNC_LOCK_LEASE_SECONDS");
    if (env == nullptr || *env == '\0') {
        return std::chrono::seconds(k_default);
    }
    int value = 0;
    const std::string_view text(env);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < 1 || value > 3600) {
        throw Error(ErrorKind::config, "CRMSYNC_LOCK_LEASE_SECONDS must be 1-3600 seconds",
                    "unset it to use the default lease of 60 seconds");
    }
    return std::chrono::seconds(value);
}

LeaseLock::LeaseLock(sql::Database& db, soci::session& session, util::DatabaseUrl url,
                     util::HostPort host)
    : m_db(db), m_session(session), m_url(std::move(url)), m_host(std::move(host)),
      m_lease(lease_length()), m_owner(random_token()) {}

LeaseLock::~LeaseLock() {
    {
        std::lock_guard guard(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    if (m_renewer.joinable()) {
        m_renewer.join();
    }
    release();
}

bool LeaseLock::take(const std::string& job_key) {
    if (m_held) {
        return true;
    }
    m_job = job_key.size() <= k_max_job_bytes ? job_key : m_db.dialect().lock_parameter(job_key);
    const std::string lease = std::to_string(m_lease.count());
    const std::string who = holder();
    try {
        // DDL replicates to every node (total order), so only when the table is missing.
        int exists = 0;
        m_session << "SELECT COUNT(*) FROM information_schema.tables "
                     "WHERE table_schema = DATABASE() AND table_name = 'crmsync_locks'",
            soci::into(exists);
        if (exists == 0) {
            m_session << k_create_table;
        }
    } catch (const soci::soci_error& e) {
        throw lock_error("creating crmsync_locks", e);
    }
    std::string owner;
    try {
        soci::transaction transaction(m_session);
        m_session << k_take, soci::use(m_job), soci::use(m_owner), soci::use(who), soci::use(lease);
        m_session << "SELECT owner FROM crmsync_locks WHERE job = :job", soci::use(m_job),
            soci::into(owner);
        if (owner != m_owner) {
            transaction.rollback();
            return false;
        }
        // Galera certifies here: another node's write to the row since our read fails us.
        transaction.commit();
    } catch (const soci::soci_error& e) {
        if (lost_race(e)) {
            log::info("lock of {} taken by a run on another node at the same moment", m_job);
            return false;
        }
        throw lock_error("taking the job's lock row in crmsync_locks", e);
    }
    m_held = true;
    log::info("holding the lock row of {} in crmsync_locks (lease {}s)", m_job, m_lease.count());
    m_renewer = std::thread([this] { renew_loop(); });
    return true;
}

void LeaseLock::confirm() {
    if (!m_held) {
        return;
    }
    const long matched = m_db.execute(k_renew, {std::to_string(m_lease.count()), m_job, m_owner});
    if (matched < 1) {
        throw Error(ErrorKind::io,
                    "the job's lock in crmsync_locks was taken over by another run (its lease "
                    "expired while this run was stalled)",
                    "this batch was rolled back and the checkpoint kept; the other run continues "
                    "the job");
    }
}

void LeaseLock::renew_loop() {
    const std::string lease = std::to_string(m_lease.count());
    const auto period =
        std::max<std::chrono::milliseconds>(m_lease / 3, std::chrono::milliseconds(200));
    std::unique_ptr<soci::session> session;
    std::unique_lock guard(m_mutex);
    while (!m_wake.wait_for(guard, period, [this] { return m_stop; })) {
        guard.unlock();
        try {
            if (!session) {
                session = std::make_unique<soci::session>(soci::mysql,
                                                          connect_string(m_url, m_host, false) +
                                                              " read_timeout=30 write_timeout=30");
            }
            soci::statement st = (session->prepare << k_renew, soci::use(lease), soci::use(m_job),
                                  soci::use(m_owner));
            st.execute(true);
            if (st.get_affected_rows() < 1) {
                // The next commit's confirm() fails the run; nothing more to renew.
                log::warn("the job's lock row was taken over by another run");
                return;
            }
        } catch (const soci::soci_error& e) {
            // A broken connection is opened again at the next turn; the commits renew too.
            if (!lost_race(e)) {
                log::warn("renewing the job's lock failed: {}", sql::database_message(e));
                session.reset();
            }
        }
        guard.lock();
    }
}

void LeaseLock::release() noexcept {
    if (!m_held) {
        return;
    }
    const auto remove = [this](soci::session& session) {
        session << k_release, soci::use(m_job), soci::use(m_owner);
    };
    try {
        remove(m_session);
        return;
    } catch (const std::exception& e) {
        log::info("releasing the job's lock through {} failed: {}", m_host.host,
                  sql::database_message(e));
    }
    // Our node died mid-run: delete the row through another, so the next run need not wait
    // for the lease to run out.
    for (const auto& other : m_url.hosts) {
        if (other.host == m_host.host && other.port == m_host.port) {
            continue;
        }
        try {
            soci::session session(soci::mysql, connect_string(m_url, other, false));
            remove(session);
            log::info("released the job's lock through {}", other.host);
            return;
        } catch (const std::exception& e) {
            log::info("releasing the job's lock through {} failed: {}", other.host,
                      sql::database_message(e));
        }
    }
}

} // namespace crmsync::drivers::mysql
