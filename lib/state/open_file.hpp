#pragma once

// Internal to lib/state: the SQLite side of a StateStore. Nothing outside lib/state includes
// this header (tests of lib/state may, to reach the connection).

#include "lib/core/error.hpp"
#include "lib/state/state_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace crmsync::state::detail {

// One state file as this process has it open: one connection and the job locks taken on it,
// shared by every StateStore of the file (same device and inode, whatever the path).
struct OpenFile {
    dev_t device = 0;
    ino_t inode = 0;
    std::string path;        // the path it was first opened by, for messages
    std::string lock_prefix; // "<real dir>/<name>.<dev>-<ino>.": job lock files start so
    std::unique_ptr<SQLite::Database> db;
    std::map<std::string, int> job_locks; // job -> fd holding its flock
    int stores = 0;                       // StateStores sharing this file

    // Prepared statements by SQL text, compiled once per connection (CachedStatement).
    // Cleared before `db` closes: a statement must not outlive its connection.
    struct CachedEntry {
        std::unique_ptr<SQLite::Statement> statement;
        bool in_use = false;
    };
    std::mutex statements_mutex; // the map only; SQLite serialises the connection itself
    std::map<std::string, CachedEntry, std::less<>> statements;
};

// A statement of `store`'s connection, prepared once per file and reused: fresh (reset, no
// bindings) when taken, reset again when this object ends, so a SELECT left half-read never
// holds a read transaction open. When the same SQL is already taken (a nested use), this one
// is prepared on its own instead.
class CachedStatement {
public:
    CachedStatement(StateStore& store, std::string_view sql);
    ~CachedStatement();
    CachedStatement(const CachedStatement&) = delete;
    CachedStatement& operator=(const CachedStatement&) = delete;

    SQLite::Statement& operator*() { return *m_statement; }
    SQLite::Statement* operator->() { return m_statement; }

private:
    OpenFile& m_file;
    OpenFile::CachedEntry* m_entry = nullptr; // the cache's, while taken
    std::unique_ptr<SQLite::Statement> m_own; // a nested use's own statement
    SQLite::Statement* m_statement = nullptr;
};

// The connection of `store`'s file.
SQLite::Database& connection(StateStore& store);

// `e` as the crmsync::Error a user can act on: a full disk, a busy or a corrupt file each say
// so and how to fix it; `doing` is what failed ("cannot read the outbox").
Error translate(const std::string& path, const SQLite::Exception& e, std::string_view doing);

// Runs `body`, turning a SQLite::Exception into translate()'s Error(io).
template <typename Body>
auto guarded(StateStore& store, std::string_view doing, Body&& body) -> decltype(body()) {
    try {
        return body();
    } catch (const SQLite::Exception& e) {
        throw translate(store.path(), e, doing);
    }
}

// Brings the outbox and ledger tables of a file made by an older crmsync up to date (adds
// ledger.revision). Idempotent; called on every open, after the schema is created.
void upgrade_outbox_schema(SQLite::Database& db);

// A write of several statements: its own IMMEDIATE transaction unless the caller has one open,
// whose commit then covers it.
class WriteScope {
public:
    explicit WriteScope(StateStore& store);
    WriteScope(const WriteScope&) = delete;
    WriteScope& operator=(const WriteScope&) = delete;
    void commit();

private:
    std::unique_ptr<Transaction> m_transaction;
};

} // namespace crmsync::state::detail
