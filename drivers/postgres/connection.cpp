#include "drivers/postgres/connection.hpp"

#include "drivers/postgres/bulk_copy.hpp"
#include "drivers/postgres/dialect.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/redact.hpp"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include <memory>
#include <string>
#include <string_view>

namespace crmsync::drivers::postgres {
namespace {

// crmsync's own URL parameter (not libpq's): sslverify=false keeps sslmode=require unverified.
constexpr const char* k_verify_param = "sslverify";

// libpq conninfo values: single-quoted, backslash escapes for ' and \.
std::string quoted(const std::string& value) {
    std::string out = "'";
    for (const char c : value) {
        if (c == '\'' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "'";
}

// libpq prints NOTICEs (e.g. "relation ... already exists, skipping" of CREATE ... IF NOT
// EXISTS) on stderr by default; they are expected and belong in the log at debug level.
void log_notice(void* /*arg*/, const char* message) {
    std::string_view text = message == nullptr ? "" : message;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    log::debug("postgres: {}", text);
}

// Runs a COMMIT (after `before`, if any, a statement of the same transaction, in the same round
// trip) and checks that the server committed: a transaction that had failed answers COMMIT
// with ROLLBACK, which is not an error to libpq.
void run_commit(PGconn* connection, const char* before) {
    const std::string sql = before == nullptr ? "COMMIT" : std::string(before) + "; COMMIT";
    const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(connection, sql.c_str()),
                                                               &PQclear);
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
        throw server_error(connection, "committing a transaction");
    }
    if (std::string_view(PQcmdStatus(result.get())) != "COMMIT") {
        throw Error(ErrorKind::io,
                    "database error while committing a transaction: the server rolled it back",
                    k_uncommitted_hint);
    }
}

class PostgresDatabase final : public sql::Database {
public:
    PostgresDatabase(std::unique_ptr<soci::session> session, std::string description)
        : Database(make_dialect(), std::move(session), std::move(description)) {}

    std::optional<BulkResult>
    bulk_upsert(const sql::Table& table, const std::vector<const sql::Column*>& columns,
                const std::vector<std::vector<const sql::Value*>>& rows) override {
        return copy_upsert(connection(), dialect(), table, columns, rows, m_copy_session);
    }

    void expect_writes(const std::vector<std::string>& table_names) override {
        m_copy_session.expected_tables.assign(table_names.begin(), table_names.end());
        m_copy_session.expected_in = m_copy_session.transaction;
    }

protected:
    void transaction_boundary() noexcept override { ++m_copy_session.transaction; }

    // A deferred commit turns synchronous_commit off for its own transaction, in the COMMIT's
    // round trip. The first durable commit after deferred ones must flush them: it does when
    // it writes its own commit record, which a transaction that wrote nothing does not have;
    // txid_current() gives it one. Other durable commits are a plain COMMIT.
    bool commit_own(sql::CommitWait wait) override {
        const char* before = nullptr;
        if (wait == sql::CommitWait::deferred) {
            before = "SET LOCAL synchronous_commit TO off";
            m_deferred_commits = true;
        } else if (m_deferred_commits) {
            before = "SELECT txid_current()";
        }
        run_commit(connection(), before);
        m_deferred_commits = wait == sql::CommitWait::deferred;
        return true;
    }

private:
    PGconn* connection() {
        return static_cast<soci::postgresql_session_backend*>(session().get_backend())->conn_;
    }

    CopySession m_copy_session;
    bool m_deferred_commits = false; // deferred commits since the last durable one
};

void check_url(util::DatabaseUrl& url) {
    if (url.path.size() > 1) {
        throw Error(ErrorKind::usage, "the database name in the target URL contains '/'");
    }
    if (const auto it = url.params.find(k_verify_param);
        it != url.params.end() && it->second != "true" && it->second != "false") {
        throw Error(ErrorKind::usage, "sslverify must be true or false",
                    "sslverify=false keeps sslmode=require unverified; leave it out to verify");
    }
}

// The sslmode to send: a request for TLS (require, prefer) becomes verify-full, since TLS that
// does not check who answers protects the password from nobody; ?sslverify=false keeps it.
std::string effective_sslmode(const util::DatabaseUrl& url) {
    const auto it = url.params.find("sslmode");
    if (it == url.params.end()) {
        return {};
    }
    const auto verify = url.params.find(k_verify_param);
    const bool unverified = verify != url.params.end() && verify->second == "false";
    if ((it->second == "require" || it->second == "prefer") && !unverified) {
        return "verify-full";
    }
    return it->second;
}

} // namespace

bool encrypts(const util::DatabaseUrl& url) {
    const auto mode = effective_sslmode(url);
    return mode == "require" || mode == "verify-ca" || mode == "verify-full";
}

std::string connect_string(const util::DatabaseUrl& url) {
    std::string conninfo = "host=" + quoted(url.host);
    conninfo += " port=" + std::to_string(url.port.value_or(5432));
    conninfo += " dbname=" + quoted(url.database);
    if (!url.user.empty()) {
        conninfo += " user=" + quoted(url.user);
    }
    if (!url.password.empty()) {
        conninfo += " password=" + quoted(url.password);
    }
    conninfo += " application_name='crmsync' connect_timeout=10";
    for (const auto& [name, value] : url.params) {
        if (name == k_verify_param) {
            continue;
        }
        if (name == "sslmode") {
            conninfo += " sslmode=" + quoted(effective_sslmode(url));
            continue;
        }
        bool plain = !name.empty();
        for (const char c : name) {
            plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
        }
        if (plain) {
            conninfo += " " + name + "=" + quoted(value);
        }
    }
    return conninfo;
}

std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url) {
    auto session = std::make_unique<soci::session>();
    try {
        session->open(soci::postgresql, connect_string(url));
    } catch (const soci::soci_error& e) {
        throw Error(ErrorKind::connection,
                    "cannot connect to PostgreSQL at " + url.host + ": " + util::redact(e.what()),
                    "check host, port, database, user and password (CRMSYNC_DB_PASSWORD)");
    }
    auto* backend = static_cast<soci::postgresql_session_backend*>(session->get_backend());
    PQsetNoticeProcessor(backend->conn_, log_notice, nullptr);
    const std::string description = "postgres://" + url.host + "/" + url.database;
    return std::make_unique<PostgresDatabase>(std::move(session), description);
}

sql::DatabaseDriver driver() {
    return {{"postgres",
             {"postgresql", "pg"},
             util::UrlForm::server,
             "postgres://USER:PASSWORD@HOST:5432/DB"},
            check_url,
            connect};
}

} // namespace crmsync::drivers::postgres
