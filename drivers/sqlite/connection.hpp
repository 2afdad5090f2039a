#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>

namespace crmsync::drivers::sqlite {

// The SOCI connection string for `url`; values are quoted so any password works.
std::string connect_string(const util::DatabaseUrl& url);

// The lock file of the database file `database` (which must exist): "<real path>.lock", the
// same for every path (symlinks included) that reaches the file. Throws Error(io).
std::string lock_file_of(const std::string& database);

// Opens the target. Throws crmsync::Error(connection) with a hint when it cannot.
std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url);

// This driver's row in the table of database drivers.
sql::DatabaseDriver driver();

} // namespace crmsync::drivers::sqlite
