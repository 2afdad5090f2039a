#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>

namespace crmsync::drivers::mysql {

// The SOCI connection string for `url`; values are quoted so any password works.
std::string connect_string(const util::DatabaseUrl& url);

// Refuses URL parameters this driver cannot honour, so a request for TLS is never dropped
// silently (Debian's SOCI is built on the MariaDB client, which has no ssl-mode). Accepts
// sslca, sslcert, sslkey (any of them turns TLS on), unix_socket, and dbsync2's useSSL=false.
// TLS is verified against sslca: a client certificate without sslca is refused unless the
// URL says sslverify=false. Throws Error(usage).
void check_params(const util::DatabaseUrl& url);

// Whether the connection `url` describes is encrypted (any of sslca, sslcert, sslkey).
bool encrypts(const util::DatabaseUrl& url);

// Opens the target. Throws crmsync::Error(connection) with a hint when it cannot.
std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url);

// This driver's row in the table of database drivers.
sql::DatabaseDriver driver();

} // namespace crmsync::drivers::mysql
