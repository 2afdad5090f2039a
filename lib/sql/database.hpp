#pragma once

#include "lib/sql/dialect.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace crmsync::sql {

using Value = std::optional<std::string>; // nullopt is SQL NULL
using Row = std::vector<Value>;

// What a commit waits for before it returns.
// - durable: the commit is on the database's disk (as the server's own settings make it).
// - deferred: the server may answer first and write the commit to disk a moment later
//   (PostgreSQL: synchronous_commit off for that transaction). A crash of the database server
//   in that moment loses the commit, but only together with every commit after it, never one
//   without the ones before, so rows and the checkpoint committed with them stay together.
//   The connection's next durable commit makes it durable as well. A driver that cannot defer
//   a commit makes it durable.
enum class CommitWait { durable, deferred };

// A database client's error message fit for an error line, a log or an alert: secrets
// redacted, at most a few hundred bytes, and without the statement and the bound values that
// SOCI appends (` while executing "..." with :p0="..."`). Those values are the records' own
// data (names, phone numbers); the caller names the statement.
std::string database_message(const std::exception& e);

// One connection to a target database through SOCI, with its Dialect. Every statement binds
// its values; SOCI and driver exceptions become crmsync::Error(io) with the statement's
// purpose as context. Not thread safe: one writer owns it.
class Database {
public:
    Database(std::unique_ptr<Dialect> dialect, std::unique_ptr<soci::session> session,
             std::string description);
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    virtual ~Database();

    const Dialect& dialect() const noexcept { return *m_dialect; }
    // The target as the user may see it (no password).
    const std::string& description() const noexcept { return m_description; }

    // Runs `sql`, binding params[i] to the i-th placeholder in order; returns affected rows.
    long execute(const std::string& sql, const std::vector<Value>& params = {});
    // Runs a query and returns every row as text (numbers and dates formatted, NULL as nullopt).
    std::vector<Row> query(const std::string& sql, const std::vector<Value>& params = {});
    // Whether `table` holds any row (dialect().holds_rows_query()).
    bool holds_rows(const Table& table);

    void begin();
    void commit(CommitWait wait = CommitWait::durable);
    void rollback() noexcept;

    // Takes the job's lock for the lifetime of this connection without waiting; false when
    // another session holds it. The default runs dialect().try_lock_query().
    virtual bool try_lock(const std::string& job_key);
    // Called inside each transaction that commits rows with a checkpoint, after try_lock()
    // succeeded: throws Error when the lock is no longer this run's (a lease that ran out and
    // was taken over), so the transaction rolls back. The default does nothing: session locks
    // cannot be lost while the connection lives.
    virtual void confirm_lock() {}

    // An optional fast path for upserting many rows at once (PostgreSQL: COPY into a staging
    // table, then one INSERT ... SELECT ... ON CONFLICT). `rows` are deduplicated and checked;
    // `values(row, i)` gives the i-th bound column's value. Returns {existing, affected} rows,
    // or nullopt when this database has no fast path (the writer then uses multi-row
    // statements). Runs inside the caller's transaction.
    struct BulkResult {
        long existing = 0;
        long affected = 0;
    };
    virtual std::optional<BulkResult>
    bulk_upsert(const Table& table, const std::vector<const Column*>& columns,
                const std::vector<std::vector<const Value*>>& rows) {
        (void)table;
        (void)columns;
        (void)rows;
        return std::nullopt;
    }

    // Tells, after begin(), which tables the open transaction is about to bulk-write, so that a
    // driver may prepare them together (PostgreSQL locks and looks up a first load's tables in
    // one round trip) and leave the others alone. Until the transaction ends; the default
    // ignores it.
    virtual void expect_writes(const std::vector<std::string>& table_names) { (void)table_names; }

protected:
    soci::session& session() { return *m_session; }
    // Called as begin(), commit() and rollback() start, whatever their outcome: state a driver
    // keeps for the open transaction ends there.
    virtual void transaction_boundary() noexcept {}
    // A driver's own COMMIT for `wait`; false lets the session's plain COMMIT run instead. Throws
    // crmsync::Error when the commit fails (the transaction is then rolled back).
    virtual bool commit_own(CommitWait wait) {
        (void)wait;
        return false;
    }

private:
    std::unique_ptr<Dialect> m_dialect;
    std::unique_ptr<soci::session> m_session;
    std::string m_description;
};

// A database driver as the one table of drivers in cmd/ lists it; each driver exports its row.
struct DatabaseDriver {
    util::DatabaseScheme scheme; // its URL scheme, aliases and form
    // The driver's own rules on a parsed URL, before any I/O: throws Error(usage) for what it
    // cannot honour (without a hint of its own the caller adds the accepted URL forms), and
    // fills what only it reads from the URL (SQL Server's instance).
    void (*check_url)(util::DatabaseUrl& url) = nullptr;
    // Opens the target; throws crmsync::Error(connection or io) with a hint when it cannot.
    std::unique_ptr<Database> (*connect)(const util::DatabaseUrl& url) = nullptr;
};

// Rolls back on scope exit unless commit() was called.
class Transaction {
public:
    explicit Transaction(Database& db) : m_db(db) { m_db.begin(); }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
        if (!m_done) {
            m_db.rollback();
        }
    }
    void commit(CommitWait wait = CommitWait::durable) {
        m_db.commit(wait);
        m_done = true;
    }

private:
    Database& m_db;
    bool m_done = false;
};

} // namespace crmsync::sql
