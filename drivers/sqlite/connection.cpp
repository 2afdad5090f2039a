#include "drivers/sqlite/connection.hpp"

#include "drivers/sqlite/dialect.hpp"
#include "lib/core/error.hpp"

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <unistd.h>

namespace crmsync::drivers::sqlite {
namespace {

// SQLite has no server to hold a lock, so a job's lock is an flock on "<real file>.lock"; the
// kernel drops it when the process dies, so a killed run never blocks the next one. The name
// comes from the file's real path (symlinks resolved), so every path to one database shares
// one lock; for a file reached without symlinks it is the name earlier versions used.
// (Not the database file itself: closing any descriptor of it would drop SQLite's own locks.)
class SqliteDatabase final : public sql::Database {
public:
    SqliteDatabase(std::unique_ptr<soci::session> session, const std::string& path,
                   std::string lock_path)
        : Database(make_dialect(), std::move(session), "sqlite://" + path),
          m_lock_path(std::move(lock_path)) {}

    ~SqliteDatabase() override {
        if (m_lock_fd >= 0) {
            ::close(m_lock_fd);
        }
    }

    bool try_lock(const std::string& /*job_key*/) override {
        if (m_lock_fd < 0) {
            m_lock_fd = ::open(m_lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (m_lock_fd < 0) {
                throw Error(ErrorKind::io,
                            "cannot open lock file " + m_lock_path + ": " + std::strerror(errno),
                            "the directory of the SQLite file must be writable");
            }
        }
        return ::flock(m_lock_fd, LOCK_EX | LOCK_NB) == 0;
    }

private:
    std::string m_lock_path;
    int m_lock_fd = -1;
};

// The SQLite path rules: a file must be named, and without '=' (see connect_string).
void check_url(util::DatabaseUrl& url) {
    if (url.database.empty() || url.database == "/") {
        throw Error(ErrorKind::usage, "the sqlite URL names no file");
    }
    if (url.database.find('=') != std::string::npos) {
        throw Error(ErrorKind::usage, "the SQLite file name must not contain '='",
                    "rename the file or use a directory without '=' in its path");
    }
}

} // namespace

// SOCI takes a connect string without '=' as the file name itself; its key=value parser has
// no escapes, so the bare path is the only form that keeps every file name intact
// (check_url refuses '=' in SQLite paths). The busy timeout is set by session_setup().
std::string connect_string(const util::DatabaseUrl& url) { return url.database; }

std::string lock_file_of(const std::string& database) {
    std::error_code ec;
    const auto real = std::filesystem::canonical(database, ec);
    if (ec) {
        throw Error(ErrorKind::io, "cannot resolve SQLite file " + database + ": " + ec.message(),
                    "check that the file exists and its directory is readable");
    }
    return real.string() + ".lock";
}

std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url) {
    // The file holds personal data: create it private (SQLite would use the umask).
    const int fd = ::open(url.database.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw Error(ErrorKind::io,
                    "cannot open SQLite file " + url.database + ": " + std::strerror(errno),
                    "check that the directory exists and is writable");
    }
    ::close(fd);
    const std::string lock_path = lock_file_of(url.database);
    auto session = std::make_unique<soci::session>();
    try {
        session->open(soci::sqlite3, connect_string(url));
    } catch (const soci::soci_error& e) {
        throw Error(ErrorKind::io, "cannot open SQLite file " + url.database + ": " + e.what(),
                    "check that the file is a SQLite database and is writable");
    }
    return std::make_unique<SqliteDatabase>(std::move(session), url.database, lock_path);
}

sql::DatabaseDriver driver() {
    return {{"sqlite", {"sqlite3"}, util::UrlForm::file, "sqlite://FILE.db"}, check_url, connect};
}

} // namespace crmsync::drivers::sqlite
