#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>

namespace crmsync::drivers::postgres {

// The SOCI connection string for `url`; values are quoted so any password works. URL
// parameters pass to libpq, except that sslmode=require or prefer becomes verify-full unless
// the URL adds sslverify=false (crmsync's own parameter, not passed on).
std::string connect_string(const util::DatabaseUrl& url);

// Whether the connection `url` describes is certain to be encrypted (sslmode require,
// verify-ca or verify-full after the rule above); libpq's default (prefer) is not.
bool encrypts(const util::DatabaseUrl& url);

// Opens the target; the server's NOTICEs go to the log at debug level, not to stderr. Throws
// crmsync::Error(connection) with a hint when it cannot.
std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url);

// This driver's row in the table of database drivers.
sql::DatabaseDriver driver();

} // namespace crmsync::drivers::postgres
