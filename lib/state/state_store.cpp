#include "lib/state/state_store.hpp"

#include "lib/core/error.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace crmsync::state {
namespace {

constexpr const char* k_schema = R"sql(
CREATE TABLE IF NOT EXISTS checkpoints (
    job TEXT PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    job TEXT NOT NULL,
    record_key TEXT NOT NULL,
    content_md5 TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (job, record_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job TEXT NOT NULL,
    group_key TEXT NOT NULL,
    order_key TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (job, status, next_attempt_ms);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    email TEXT NOT NULL COLLATE NOCASE,
    owner TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    access_token TEXT NOT NULL DEFAULT '',
    expires_at_ms INTEGER,
    zoho_dc TEXT NOT NULL DEFAULT '',
    api_domain TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'ok',
    last_error TEXT NOT NULL DEFAULT '',
    refreshed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (provider, email)
);
CREATE TABLE IF NOT EXISTS token_requests (
    account_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS token_requests_account ON token_requests (account_id, at_ms);
CREATE TABLE IF NOT EXISTS episodes (
    job TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    is_error INTEGER NOT NULL DEFAULT 0,
    error_since TEXT,
    last_failure TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    error_sent TEXT NOT NULL DEFAULT '',
    recovery_unsent TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);
)sql";

Error state_error(const std::string& path, const std::string& what) {
    return Error(ErrorKind::io, "state file " + path + ": " + what,
                 "check --state PATH: its directory must be writable by this user");
}

} // namespace

std::string default_state_path() {
    if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg == '/') {
        return std::string(xdg) + "/crmsync/state.db";
    }
    const char* home = std::getenv("HOME");
    return std::string(home != nullptr && *home != '\0' ? home : ".") +
           "/.local/state/crmsync/state.db";
}

StateStore::StateStore(const std::string& path) : m_path(path) {
    const auto dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            throw state_error(path, "cannot create its directory: " + ec.message());
        }
        ::chmod(dir.c_str(), 0700);
    }
    // Created private before SQLite opens it: it holds payloads with customer data.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw state_error(path, std::strerror(errno));
    }
    ::close(fd);
    try {
        m_db =
            std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        m_db->setBusyTimeout(30000);
        m_db->exec("PRAGMA journal_mode = WAL");
        m_db->exec("PRAGMA synchronous = NORMAL");
        m_db->exec(k_schema);
    } catch (const SQLite::Exception& e) {
        throw state_error(path, e.what());
    }
    // WAL side files inherit the umask; tighten them too.
    for (const char* suffix : {"-wal", "-shm"}) {
        ::chmod((path + suffix).c_str(), 0600);
    }
}

StateStore::~StateStore() {
    m_db.reset();
    if (m_lock_fd >= 0) {
        ::close(m_lock_fd);
    }
}

bool StateStore::try_lock_job(const std::string& job) {
    const std::string lock_path = m_path + "." + util::md5_hex(job).substr(0, 12) + ".lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw state_error(m_path, "cannot open lock file: " + std::string(std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        return false;
    }
    if (m_lock_fd >= 0) {
        ::close(m_lock_fd);
    }
    m_lock_fd = fd;
    return true;
}

std::optional<std::string> StateStore::checkpoint(const std::string& job) {
    SQLite::Statement query(*m_db, "SELECT checkpoint FROM checkpoints WHERE job = ?");
    query.bind(1, job);
    if (query.executeStep()) {
        return query.getColumn(0).getString();
    }
    return std::nullopt;
}

void StateStore::set_checkpoint(const std::string& job, const std::string& checkpoint) {
    SQLite::Statement upsert(
        *m_db, "INSERT INTO checkpoints (job, checkpoint, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT (job) DO UPDATE SET checkpoint = excluded.checkpoint, "
               "updated_at = excluded.updated_at");
    upsert.bind(1, job);
    upsert.bind(2, checkpoint);
    upsert.bind(3, util::format_iso8601(Clock::real().wall_now()));
    upsert.exec();
}

Transaction::Transaction(StateStore& store) : m_store(store) {
    try {
        m_store.m_db->exec("BEGIN IMMEDIATE");
    } catch (const SQLite::Exception& e) {
        throw state_error(m_store.m_path, std::string("cannot start a transaction: ") + e.what());
    }
    m_open = true;
}

Transaction::~Transaction() {
    if (m_open) {
        try {
            m_store.m_db->exec("ROLLBACK");
        } catch (const SQLite::Exception&) {
            // Nothing left to undo: SQLite already rolled back after the failure.
        }
    }
}

void Transaction::commit() {
    try {
        m_store.m_db->exec("COMMIT");
    } catch (const SQLite::Exception& e) {
        throw state_error(m_store.m_path, std::string("cannot commit: ") + e.what());
    }
    m_open = false;
}

} // namespace crmsync::state
