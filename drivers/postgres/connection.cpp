#include "drivers/postgres/connection.hpp"

#include "drivers/postgres/bulk_copy.hpp"
#include "drivers/postgres/dialect.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

namespace crmsync::drivers::postgres {
namespace {

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

class PostgresDatabase final : public sql::Database {
public:
    PostgresDatabase(std::unique_ptr<soci::session> session, std::string description)
        : Database(make_dialect(), std::move(session), std::move(description)) {}

    std::optional<BulkResult>
    bulk_upsert(const sql::Table& table, const std::vector<const sql::Column*>& columns,
                const std::vector<std::vector<const sql::Value*>>& rows) override {
        auto* backend = static_cast<soci::postgresql_session_backend*>(session().get_backend());
        return copy_upsert(backend->conn_, dialect(), table, columns, rows);
    }
};

void check_url(util::DatabaseUrl& url) {
    if (url.path.size() > 1) {
        throw Error(ErrorKind::usage, "the database name in the target URL contains '/'");
    }
}

} // namespace

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
