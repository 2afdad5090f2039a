#include "cmd/targets.hpp"

#include "drivers/mysql/connection.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/sqlite/connection.hpp"
#include "drivers/sqlserver/connection.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <cstdlib>
#include <map>

namespace crmsync::cli {
namespace {

using Connect = std::unique_ptr<sql::Database> (*)(const util::DatabaseUrl&);

const std::map<std::string, Connect>& drivers() {
    static const std::map<std::string, Connect> table = {
        {"sqlite", drivers::sqlite::connect},
        {"postgres", drivers::postgres::connect},
        {"mysql", drivers::mysql::connect},
        {"sqlserver", drivers::sqlserver::connect},
    };
    return table;
}

} // namespace

util::DatabaseUrl parse_target(const std::string& url) {
    auto parsed = util::parse_database_url(url);
    if (drivers().count(parsed.scheme) == 0) {
        throw Error(ErrorKind::usage, "unsupported target '" + parsed.scheme + "'");
    }
    if (parsed.scheme == "sqlite" && parsed.database.find('=') != std::string::npos) {
        throw Error(ErrorKind::usage, "the SQLite file name must not contain '='",
                    "rename the file or use a directory without '=' in its path");
    }
    if (parsed.scheme == "mysql") {
        drivers::mysql::check_params(parsed);
    }
    for (const char* key : {"password", "pwd"}) {
        if (const auto it = parsed.params.find(key); it != parsed.params.end()) {
            util::register_secret(it->second);
        }
    }
    if (parsed.password.empty()) {
        if (const char* env = std::getenv("CRMSYNC_DB_PASSWORD"); env != nullptr) {
            parsed.password = env;
        }
    }
    util::register_secret(parsed.password);
    return parsed;
}

std::unique_ptr<sql::Database> open_target(util::DatabaseUrl url) {
    return drivers().at(url.scheme)(url);
}

} // namespace crmsync::cli
