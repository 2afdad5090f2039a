#pragma once

#include "lib/sql/database.hpp"
#include "lib/util/url.hpp"

#include <memory>
#include <string>

namespace crmsync::cli {

// The one place that knows every database driver: opens the target a URL names. The password
// comes from the URL or, when the URL has none, from CRMSYNC_DB_PASSWORD.
std::unique_ptr<sql::Database> open_target(util::DatabaseUrl url);

// Parses and checks a target URL without any I/O (throws Error(usage)).
util::DatabaseUrl parse_target(const std::string& url);

} // namespace crmsync::cli
