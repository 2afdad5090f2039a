#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>

namespace crmsync::drivers::sqlserver {

// The SOCI connection string for `url`; values are quoted so any password works.
// ?encrypt=strict (or true, yes, mandatory) asks FreeTDS for Encryption=require; ?password=
// or ?pwd= give the password when the userinfo has none.
std::string connect_string(const util::DatabaseUrl& url);

// Whether the connection `url` describes is encrypted (?encrypt=strict or an alias).
bool encrypts(const util::DatabaseUrl& url);

// Opens the target. Throws crmsync::Error(connection) with a hint when it cannot.
std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url);

// This driver's row in the table of database drivers.
sql::DatabaseDriver driver();

} // namespace crmsync::drivers::sqlserver
