#include "cmd/targets.hpp"

#include "drivers/mysql/connection.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/sqlite/connection.hpp"
#include "drivers/sqlserver/connection.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <cstdlib>
#include <iostream>

namespace crmsync::cli {
namespace {

// The URL schemes of every driver, in table order (the order hints list them in).
const std::vector<util::DatabaseScheme>& schemes() {
    static const std::vector<util::DatabaseScheme> list = [] {
        std::vector<util::DatabaseScheme> out;
        for (const auto& driver : database_drivers()) {
            out.push_back(driver.scheme);
        }
        return out;
    }();
    return list;
}

const sql::DatabaseDriver& driver_of(const std::string& scheme) {
    for (const auto& driver : database_drivers()) {
        if (driver.scheme.name == scheme) {
            return driver;
        }
    }
    throw Error(ErrorKind::usage, "unsupported target '" + scheme + "'");
}

} // namespace

const std::vector<sql::DatabaseDriver>& database_drivers() {
    static const std::vector<sql::DatabaseDriver> table = {
        drivers::sqlite::driver(),
        drivers::postgres::driver(),
        drivers::mysql::driver(),
        drivers::sqlserver::driver(),
    };
    return table;
}

util::DatabaseUrl parse_target_url(std::string_view url) {
    auto parsed = util::parse_database_url(url, schemes());
    try {
        driver_of(parsed.scheme).check_url(parsed);
    } catch (Error& e) {
        if (e.hint().empty()) {
            e.set_hint(util::database_url_hint(schemes()));
        }
        throw;
    }
    return parsed;
}

util::DatabaseUrl parse_target(const std::string& url) {
    auto parsed = parse_target_url(url);
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

bool sends_password_in_clear(const util::DatabaseUrl& url) {
    bool encrypted = false;
    if (url.scheme == "postgres") {
        // A host starting with '/' is a Unix socket directory: nothing leaves the machine.
        encrypted = drivers::postgres::encrypts(url) || url.host.starts_with("/");
    } else if (url.scheme == "mysql") {
        encrypted = drivers::mysql::encrypts(url) || url.params.count("unix_socket") != 0;
    } else if (url.scheme == "sqlserver") {
        encrypted = drivers::sqlserver::encrypts(url);
    } else {
        return false; // a file: no network
    }
    const bool password =
        !url.password.empty() || url.params.count("password") != 0 || url.params.count("pwd") != 0;
    bool loopback = util::is_loopback_host(url.host);
    for (const auto& host : url.hosts) {
        loopback = loopback && util::is_loopback_host(host.host);
    }
    return password && !encrypted && !loopback;
}

std::unique_ptr<sql::Database> open_target(util::DatabaseUrl url) {
    if (sends_password_in_clear(url)) {
        std::cerr << "crmsync: warning: the password for " << url.scheme << "://" << url.host
                  << " may travel unencrypted; ask for verified TLS in the URL (see README, "
                     "\"Database URL options\")"
                  << std::endl;
    }
    return driver_of(url.scheme).connect(url);
}

} // namespace crmsync::cli
