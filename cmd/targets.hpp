#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::cli {

// The one table of database drivers, one row each.
const std::vector<sql::DatabaseDriver>& database_drivers();

// Whether connecting to `url` would send a password to a host off this machine over a
// connection not certain to be encrypted.
bool sends_password_in_clear(const util::DatabaseUrl& url);

// Opens the target a URL names, through its driver; first prints one `crmsync: warning:` line
// when sends_password_in_clear(url).
std::unique_ptr<sql::Database> open_target(util::DatabaseUrl url);

// Parses a target URL and applies its driver's rules, without any I/O (throws Error(usage)).
// Reads no environment and registers no secret.
util::DatabaseUrl parse_target_url(std::string_view url);

// parse_target_url(), and the password: it comes from the URL or, when the URL has none, from
// CRMSYNC_DB_PASSWORD; either is registered as a secret.
util::DatabaseUrl parse_target(const std::string& url);

} // namespace crmsync::cli
