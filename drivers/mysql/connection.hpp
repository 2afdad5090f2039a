#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>

namespace crmsync::drivers::mysql {

// The SOCI connection string for `url` (its first host, or `host`); values are quoted so any
// password works. `local_infile` only for sessions that install a RowStream before their first
// statement: the server, not the client, names the file a LOCAL INFILE reads, so a session
// without our handler would let a hostile server read local files.
std::string connect_string(const util::DatabaseUrl& url);
std::string connect_string(const util::DatabaseUrl& url, const util::HostPort& host,
                           bool local_infile = true);

// Refuses URL parameters this driver cannot honour, so a request for TLS is never dropped
// silently (Debian's SOCI is built on the MariaDB client, which has no ssl-mode). Accepts
// sslca, sslcert, sslkey (any of them turns TLS on), unix_socket, and dbsync2's useSSL=false.
// TLS is verified against sslca: a client certificate without sslca is refused unless the
// URL says sslverify=false. Throws Error(usage).
void check_params(const util::DatabaseUrl& url);

// Whether the connection `url` describes is encrypted (any of sslca, sslcert, sslkey).
bool encrypts(const util::DatabaseUrl& url);

// Opens the target through the first host of the URL that answers and, on a Galera node
// (wsrep_on), is synced (wsrep_ready). On Galera the job lock is a lease row (LeaseLock)
// instead of GET_LOCK, and reads wait for the cluster's writes (wsrep_sync_wait). Throws
// crmsync::Error(connection) naming each host's failure when none will do.
std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url);

// This driver's row in the table of database drivers.
sql::DatabaseDriver driver();

} // namespace crmsync::drivers::mysql
