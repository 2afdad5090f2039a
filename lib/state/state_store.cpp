#include "lib/state/state_store.hpp"

#include "lib/state/open_file.hpp"

#include "lib/core/error.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <mutex>
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
    revision INTEGER NOT NULL DEFAULT 0,
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
-- Pages of pending deliveries in seq order (Outbox::pending) and the earliest retry
-- (Outbox::next_due), both from the index alone. It replaces outbox_due (job, status,
-- next_attempt_ms), ordered by due time, on which every page scanned and sorted all pending.
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (job, status, seq, next_attempt_ms);
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

constexpr int k_busy_timeout_ms = 30000;
// Page size of a state file this process creates (see open_file).
constexpr int k_page_size = 16384;

Error state_error(const std::string& path, const std::string& what) {
    return Error(ErrorKind::io, "state file " + path + ": " + what,
                 "check --state PATH: its directory must be writable by this user");
}

// The files this process has open, by device and inode. A map of owners: an OpenFile lives
// until the last StateStore of its file closes.
struct Registry {
    std::mutex mutex;
    std::map<std::pair<dev_t, ino_t>, std::unique_ptr<detail::OpenFile>> files;
    pid_t pid = ::getpid();
};

Registry& registry() {
    static Registry r;
    return r;
}

void close_file(detail::OpenFile& file) {
    file.statements.clear();
    file.db.reset();
    // The locks go with their fds; closing one fd never touches another's flock.
    for (const auto& [job, fd] : file.job_locks) {
        ::close(fd);
    }
    file.job_locks.clear();
}

std::unique_ptr<detail::OpenFile> open_file(const std::string& path, const struct stat& st) {
    auto file = std::make_unique<detail::OpenFile>();
    file->device = st.st_dev;
    file->inode = st.st_ino;
    file->path = path;
    std::error_code ec;
    const auto real = std::filesystem::canonical(path, ec);
    if (ec) {
        throw state_error(path, "cannot resolve its path: " + ec.message());
    }
    file->lock_prefix =
        real.string() + fmt::format(".{:x}-{:x}.", static_cast<unsigned long long>(st.st_dev),
                                    static_cast<unsigned long long>(st.st_ino));
    try {
        file->db =
            std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        file->db->setBusyTimeout(k_busy_timeout_ms);
        // WAL with synchronous=NORMAL: a commit is atomic but reaches the disk only at the
        // next checkpoint, so a power cut may undo the last commits, never half of one. That
        // keeps every promise: an undone enqueue goes with the checkpoint that covered it (the
        // source fetches it again), an undone "delivered" mark only sends that delivery again
        // under the same webhook-id, which receivers drop. A crash of the process alone loses
        // nothing committed.
        // 16 KB pages for a new file (an existing one keeps its size): an outbox row holds a
        // whole request body, so a group of deliveries marked together shares a few pages
        // instead of one or two each. A webhook run of 12,000 deliveries made 185,000 system
        // calls with 4 KB pages and 85,000 with these, most of them WAL writes and page reads.
        file->db->exec("PRAGMA page_size = " + std::to_string(k_page_size));
        file->db->exec("PRAGMA journal_mode = WAL");
        file->db->exec("PRAGMA synchronous = NORMAL");
        // Statement journals and sorts in memory: an outbox UPDATE otherwise writes a temp file.
        file->db->exec("PRAGMA temp_store = MEMORY");
        file->db->exec(k_schema);
        detail::upgrade_outbox_schema(*file->db);
    } catch (const SQLite::Exception& e) {
        throw detail::translate(path, e, "cannot open it");
    }
    return file;
}

} // namespace

namespace detail {

SQLite::Database& connection(StateStore& store) { return *store.file().db; }

CachedStatement::CachedStatement(StateStore& store, std::string_view sql) : m_file(store.file()) {
    {
        const std::lock_guard<std::mutex> lock(m_file.statements_mutex);
        auto it = m_file.statements.find(sql);
        if (it == m_file.statements.end()) {
            it = m_file.statements.emplace(std::string(sql), OpenFile::CachedEntry{}).first;
        }
        if (!it->second.in_use) {
            it->second.in_use = true;
            m_entry = &it->second;
        }
    }
    try {
        if (m_entry == nullptr) {
            m_own = std::make_unique<SQLite::Statement>(*m_file.db, std::string(sql));
            m_statement = m_own.get();
            return;
        }
        if (!m_entry->statement) {
            m_entry->statement = std::make_unique<SQLite::Statement>(*m_file.db, std::string(sql));
        }
        m_statement = m_entry->statement.get();
        m_statement->reset();
        m_statement->clearBindings();
    } catch (...) {
        if (m_entry != nullptr) {
            const std::lock_guard<std::mutex> lock(m_file.statements_mutex);
            m_entry->in_use = false;
        }
        throw;
    }
}

CachedStatement::~CachedStatement() {
    if (m_entry == nullptr) {
        return;
    }
    try {
        // reset() reports the last step's error again; it was reported when it happened.
        m_statement->reset();
    } catch (const SQLite::Exception&) {
    }
    const std::lock_guard<std::mutex> lock(m_file.statements_mutex);
    m_entry->in_use = false;
}

Error translate(const std::string& path, const SQLite::Exception& e, std::string_view doing) {
    const std::string what = std::string(doing) + ": " + e.what();
    switch (e.getErrorCode() & 0xff) { // the primary result code
    case SQLITE_FULL:
        return Error(ErrorKind::io,
                     "state file " + path + ": no space left on its disk (" + what + ")",
                     "free disk space or move --state to a disk with room");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return Error(ErrorKind::io,
                     "state file " + path + ": another process holds it (" + what + ")",
                     "wait for the other crmsync run to finish, or stop the process that has "
                     "the file open");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return Error(ErrorKind::io,
                     "state file " + path + ": the file is corrupt or not a state file (" + what +
                         ")",
                     "move the file aside (crmsync starts a new one, without the old "
                     "checkpoints, outbox and accounts) or restore it from a backup");
    default:
        return state_error(path, what);
    }
}

WriteScope::WriteScope(StateStore& store) {
    // In autocommit mode no transaction is open: take one so the statements land together.
    if (sqlite3_get_autocommit(connection(store).getHandle()) != 0) {
        m_transaction = std::make_unique<Transaction>(store);
    }
}

void WriteScope::commit() {
    if (m_transaction) {
        m_transaction->commit();
    }
}

} // namespace detail

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
    struct stat st {};
    const int stat_result = ::fstat(fd, &st);
    const int stat_errno = errno;
    ::close(fd);
    if (stat_result != 0) {
        throw state_error(path, std::strerror(stat_errno));
    }
    auto& r = registry();
    const std::lock_guard<std::mutex> lock(r.mutex);
    if (r.pid != ::getpid()) {
        // A forked child must not use its parent's connection or release its parent's locks:
        // it forgets them (leaking them on purpose) and opens its own.
        for (auto& [key, file] : r.files) {
            static_cast<void>(file.release());
        }
        r.files.clear();
        r.pid = ::getpid();
    }
    auto& slot = r.files[{st.st_dev, st.st_ino}];
    if (!slot) {
        try {
            slot = open_file(path, st);
        } catch (...) {
            r.files.erase({st.st_dev, st.st_ino});
            throw;
        }
        // WAL side files inherit the umask; tighten them too.
        for (const char* suffix : {"-wal", "-shm"}) {
            ::chmod((path + suffix).c_str(), 0600);
        }
    }
    ++slot->stores;
    m_file = slot.get();
}

StateStore::~StateStore() {
    auto& r = registry();
    const std::lock_guard<std::mutex> lock(r.mutex);
    const auto it = r.files.find({m_file->device, m_file->inode});
    if (it == r.files.end() || it->second.get() != m_file) {
        return; // opened before a fork: the parent's, left alone
    }
    if (--m_file->stores == 0) {
        close_file(*m_file);
        r.files.erase(it);
    }
}

bool StateStore::try_lock_job(const std::string& job) {
    if (m_file->job_locks.count(job) != 0) {
        return true;
    }
    const std::string lock_path = m_file->lock_prefix + util::md5_hex(job).substr(0, 12) + ".lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw state_error(m_path, "cannot open lock file: " + std::string(std::strerror(errno)));
    }
    // flock, not fcntl: an flock belongs to this open file description, so no other fd of the
    // file (SQLite's, another store's) can drop it by closing.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        return false;
    }
    m_file->job_locks.emplace(job, fd);
    return true;
}

std::optional<std::string> StateStore::checkpoint(const std::string& job) {
    return detail::guarded(*this, "cannot read a checkpoint", [&]() -> std::optional<std::string> {
        SQLite::Statement query(*m_file->db, "SELECT checkpoint FROM checkpoints WHERE job = ?");
        query.bind(1, job);
        if (query.executeStep()) {
            return query.getColumn(0).getString();
        }
        return std::nullopt;
    });
}

void StateStore::set_checkpoint(const std::string& job, const std::string& checkpoint) {
    detail::guarded(*this, "cannot write a checkpoint", [&] {
        SQLite::Statement upsert(
            *m_file->db, "INSERT INTO checkpoints (job, checkpoint, updated_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (job) DO UPDATE SET checkpoint = excluded.checkpoint, "
                         "updated_at = excluded.updated_at");
        upsert.bind(1, job);
        upsert.bind(2, checkpoint);
        upsert.bind(3, util::format_iso8601(Clock::real().wall_now()));
        upsert.exec();
    });
}

std::vector<std::string> StateStore::jobs() {
    return detail::guarded(*this, "cannot list the jobs", [&] {
        SQLite::Statement st(*m_file->db,
                             "SELECT job FROM checkpoints UNION SELECT job FROM outbox ORDER BY 1");
        std::vector<std::string> out;
        while (st.executeStep()) {
            out.push_back(st.getColumn(0).getString());
        }
        return out;
    });
}

Transaction::Transaction(StateStore& store) : m_store(store) {
    detail::guarded(m_store, "cannot start a transaction",
                    [&] { detail::connection(m_store).exec("BEGIN IMMEDIATE"); });
    m_open = true;
}

Transaction::~Transaction() {
    if (m_open) {
        try {
            detail::connection(m_store).exec("ROLLBACK");
        } catch (const SQLite::Exception&) {
            // Nothing left to undo: SQLite already rolled back after the failure.
        }
    }
}

void Transaction::commit() {
    detail::guarded(m_store, "cannot commit", [&] { detail::connection(m_store).exec("COMMIT"); });
    m_open = false;
}

} // namespace crmsync::state
