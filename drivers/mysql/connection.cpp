#include "drivers/mysql/connection.hpp"

#include "drivers/mysql/dialect.hpp"
#include "drivers/mysql/lease_lock.hpp"
#include "drivers/mysql/load_data.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <fmt/format.h>
#include <soci/mysql/soci-mysql.h>
#include <soci/soci.h>

namespace crmsync::drivers::mysql {
namespace {

// SOCI's MySQL connect string: single-quoted values, backslash escapes.
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

MYSQL* client_connection(soci::session& session) {
    return static_cast<soci::mysql_session_backend*>(session.get_backend())->conn_;
}

// MySQL or MariaDB, by the version the server announced when the connection opened.
Server server_of(soci::session& session) {
    const char* version = mysql_get_server_info(client_connection(session));
    return server_of_version(version == nullptr ? "" : version);
}

std::string host_name(const util::HostPort& host) {
    const bool ipv6 = host.host.find(':') != std::string::npos;
    return (ipv6 ? "[" + host.host + "]" : host.host) + ":" +
           std::to_string(host.port.value_or(3306));
}

// A MySQL connection that knows the URL it came from: on a Galera node the job lock is a
// lease row that a thread renews through the same node and that is released through another
// node when this one dies. Bulk upserts go through LOAD DATA LOCAL INFILE, fed from memory by
// a RowStream that was installed on the connection before its first statement.
class MysqlDatabase final : public sql::Database {
public:
    MysqlDatabase(Server server, std::unique_ptr<soci::session> session, std::string description,
                  std::unique_ptr<RowStream> stream, util::DatabaseUrl url, util::HostPort host)
        : sql::Database(make_dialect(server), std::move(session), std::move(description)),
          m_stream(std::move(stream)), m_url(std::move(url)), m_host(std::move(host)) {}

    ~MysqlDatabase() override { m_lease.reset(); } // releases while the session lives

    std::optional<BulkResult>
    bulk_upsert(const sql::Table& table, const std::vector<const sql::Column*>& columns,
                const std::vector<std::vector<const sql::Value*>>& rows) override {
        if (m_local_infile_refused) {
            return std::nullopt;
        }
        // Not on Galera: rolling back to a savepoint is untested there; keys are counted instead.
        auto result = load_data_upsert(*this, client_connection(session()), *m_stream, table,
                                       columns, rows, m_galera ? nullptr : &m_direct_tables);
        m_local_infile_refused = !result;
        return result;
    }

    // Detects Galera (wsrep_on); returns why this node will not do (not synced), else nullopt.
    std::optional<std::string> check_galera() {
        const auto on = query("SHOW VARIABLES LIKE 'wsrep_on'");
        m_galera = !on.empty() && on[0].size() > 1 && on[0][1] == std::optional<std::string>("ON");
        if (!m_galera) {
            return std::nullopt;
        }
        const auto ready = query("SHOW STATUS LIKE 'wsrep_ready'");
        if (ready.empty() || ready[0].size() < 2 ||
            ready[0][1] != std::optional<std::string>("ON")) {
            const auto state = query("SHOW STATUS LIKE 'wsrep_local_state_comment'");
            return "Galera node not ready (wsrep_ready " +
                   (ready.empty() || ready[0].size() < 2 ? std::string("unknown")
                                                         : ready[0][1].value_or("NULL")) +
                   (state.empty() || state[0].size() < 2 ? std::string()
                                                         : ", state " + state[0][1].value_or("")) +
                   ")";
        }
        // Reads see every write the cluster committed before them (the checkpoint of a run
        // that went through another node).
        execute("SET SESSION wsrep_sync_wait = 1");
        return std::nullopt;
    }

    bool try_lock(const std::string& job_key) override {
        if (!m_galera) {
            return sql::Database::try_lock(job_key);
        }
        if (!m_lease) {
            m_lease = std::make_unique<LeaseLock>(*this, session(), m_url, m_host);
        }
        return m_lease->take(job_key);
    }

    void confirm_lock() override {
        if (m_lease) {
            m_lease->confirm();
        }
    }

private:
    std::unique_ptr<RowStream> m_stream;
    // Asked once per connection: a server that refused will refuse again.
    bool m_local_infile_refused = false;
    DirectLoadTables m_direct_tables;
    util::DatabaseUrl m_url;
    util::HostPort m_host;
    bool m_galera = false;
    std::unique_ptr<LeaseLock> m_lease;
};

void check_url(util::DatabaseUrl& url) {
    if (url.path.size() > 1) {
        throw Error(ErrorKind::usage, "the database name in the target URL contains '/'");
    }
    check_params(url);
}

} // namespace

void check_params(const util::DatabaseUrl& url) {
    for (const auto& [name, value] : url.params) {
        if (name == "sslca" || name == "sslcert" || name == "sslkey" || name == "unix_socket" ||
            (name == "useSSL" && value == "false") ||
            (name == "sslverify" && (value == "true" || value == "false"))) {
            continue;
        }
        throw Error(ErrorKind::usage, "the mysql URL parameter '" + name + "' is not supported",
                    "for TLS give ?sslca=FILE (and sslcert/sslkey for client certificates)");
    }
    // The MariaDB client checks the server's certificate only against a CA it is given: TLS
    // asked for without one would look safe and verify nothing.
    const bool tls = url.params.count("sslcert") != 0 || url.params.count("sslkey") != 0;
    const auto verify = url.params.find("sslverify");
    const bool unverified = verify != url.params.end() && verify->second == "false";
    if (tls && url.params.count("sslca") == 0 && !unverified) {
        throw Error(ErrorKind::usage,
                    "TLS to MySQL without ?sslca=FILE cannot verify the server's certificate",
                    "add ?sslca=/etc/ssl/certs/ca-certificates.crt (or your CA), or "
                    "sslverify=false to accept any certificate");
    }
}

bool encrypts(const util::DatabaseUrl& url) {
    return url.params.count("sslca") != 0 || url.params.count("sslcert") != 0 ||
           url.params.count("sslkey") != 0;
}

std::string connect_string(const util::DatabaseUrl& url) {
    return connect_string(url, {url.host, url.port});
}

std::string connect_string(const util::DatabaseUrl& url, const util::HostPort& host,
                           bool local_infile) {
    std::string s = "host=" + quoted(host.host);
    s += " port=" + std::to_string(host.port.value_or(3306));
    s += " db=" + quoted(url.database);
    if (!url.user.empty()) {
        s += " user=" + quoted(url.user);
    }
    if (!url.password.empty()) {
        s += " password=" + quoted(url.password);
    }
    // dbsync2 appended "?charset=..." to whatever query the user wrote (defect §5.25); the
    // character set is ours to choose and the user's parameters are read as documented here.
    // local_infile=1 lets bulk upserts use LOAD DATA LOCAL INFILE; the rows come from memory
    // and no file is ever read (see RowStream).
    s += " charset=utf8mb4 connect_timeout=10";
    if (local_infile) {
        s += " local_infile=1";
    }
    for (const char* name : {"sslca", "sslcert", "sslkey", "unix_socket"}) {
        if (const auto it = url.params.find(name); it != url.params.end()) {
            s += std::string(" ") + name + "=" + quoted(it->second);
        }
    }
    return s;
}

std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url) {
    std::vector<util::HostPort> hosts = url.hosts;
    if (hosts.empty()) {
        hosts.push_back({url.host, url.port});
    }
    std::vector<std::string> failures;
    for (const auto& host : hosts) {
        const std::string name = host_name(host);
        auto session = std::make_unique<soci::session>();
        try {
            session->open(soci::mysql, connect_string(url, host));
        } catch (const soci::soci_error& e) {
            failures.push_back(name + ": " + util::redact(e.what()));
            continue;
        }
        try {
            // Before any statement: from now on a LOCAL INFILE request can only get the rows
            // of a running load, never a file.
            auto stream = std::make_unique<RowStream>();
            stream->install(client_connection(*session));
            const Server server = server_of(*session);
            auto db = std::make_unique<MysqlDatabase>(server, std::move(session),
                                                      "mysql://" + name + "/" + url.database,
                                                      std::move(stream), url, host);
            if (const auto problem = db->check_galera()) {
                failures.push_back(name + ": " + *problem);
                continue;
            }
            return db;
        } catch (const Error& e) {
            failures.push_back(name + ": " + e.what());
        }
    }
    if (hosts.size() == 1) {
        throw Error(ErrorKind::connection, "cannot connect to MySQL at " + failures.front(),
                    "check host, port, database, user and password (CRMSYNC_DB_PASSWORD)");
    }
    std::string message = fmt::format("cannot connect to MySQL at any of {} hosts", hosts.size());
    for (const auto& f : failures) {
        message += "; " + f;
    }
    throw Error(ErrorKind::connection, message,
                "check the hosts, ports, database, user and password (CRMSYNC_DB_PASSWORD); a "
                "Galera node that is not synced is passed over");
}

sql::DatabaseDriver driver() {
    return {
        {"mysql", {"mariadb"}, util::UrlForm::server, "mysql://USER:PASSWORD@HOST:3306/DB", true},
        check_url,
        connect};
}

} // namespace crmsync::drivers::mysql
