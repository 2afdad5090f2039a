#include "drivers/sqlserver/connection.hpp"

#include "drivers/sqlserver/dialect.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <soci/odbc/soci-odbc.h>
#include <soci/soci.h>

#include <filesystem>

namespace crmsync::drivers::sqlserver {
namespace {

// ODBC attribute values: braced when they hold ; { } or spaces, with } doubled inside.
std::string odbc_value(const std::string& value) {
    if (value.find_first_of(";{} =") == std::string::npos) {
        return value;
    }
    std::string out = "{";
    for (const char c : value) {
        out += c == '}' ? std::string("}}") : std::string(1, c);
    }
    return out + "}";
}

// FreeTDS registered by name when odbcinst knows it, else by the library's path.
std::string freetds_driver() {
    for (const char* path : {"/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so",
                             "/usr/lib/aarch64-linux-gnu/odbc/libtdsodbc.so",
                             "/usr/lib/odbc/libtdsodbc.so", "/usr/local/lib/libtdsodbc.so"}) {
        if (std::filesystem::exists(path)) {
            return path;
        }
    }
    return "{FreeTDS}";
}

bool asks_for_tls(const std::string& encrypt) {
    return encrypt == "strict" || encrypt == "true" || encrypt == "yes" || encrypt == "mandatory";
}

// dbsync2's form HOST:PORT/INSTANCE/DB names an instance before the database.
void check_url(util::DatabaseUrl& url) {
    for (const auto& [name, value] : url.params) {
        const bool known = (name == "encrypt" && (asks_for_tls(value) || value == "false" ||
                                                  value == "no" || value == "optional")) ||
                           name == "password" || name == "pwd";
        if (!known) {
            throw Error(ErrorKind::usage,
                        "the sqlserver URL parameter '" + name + "=" + value + "' is not supported",
                        "for TLS give ?encrypt=strict (see README: SQL Server URL options)");
        }
    }
    if (url.path.size() < 2) {
        return;
    }
    url.instance = url.path.front();
    url.database.clear();
    for (std::size_t i = 1; i < url.path.size(); ++i) {
        url.database += (i > 1 ? "/" : "") + url.path[i];
    }
}

} // namespace

bool encrypts(const util::DatabaseUrl& url) {
    const auto it = url.params.find("encrypt");
    return it != url.params.end() && asks_for_tls(it->second);
}

std::string connect_string(const util::DatabaseUrl& url) {
    std::string server = url.host;
    if (!url.instance.empty() && !url.port) {
        server += "\\" + url.instance; // resolved through the SQL Server Browser
    }
    std::string s = "DRIVER=" + freetds_driver() + ";SERVER=" + odbc_value(server);
    // FreeTDS asks the SQL Server Browser for a named instance's port only when none is set.
    if (url.port || url.instance.empty()) {
        s += ";PORT=" + std::to_string(url.port.value_or(1433));
    }
    s += ";DATABASE=" + odbc_value(url.database);
    if (!url.user.empty()) {
        s += ";UID=" + odbc_value(url.user);
    }
    std::string password = url.password;
    for (const char* key : {"password", "pwd"}) {
        if (const auto it = url.params.find(key); password.empty() && it != url.params.end()) {
            password = it->second;
        }
    }
    if (!password.empty()) {
        s += ";PWD=" + odbc_value(password);
    }
    s += ";TDS_Version=7.4;ClientCharset=UTF-8";
    // FreeTDS's "require" refuses a server without TLS. It checks the certificate only
    // against a "ca file" from freetds.conf (the ODBC string cannot name one): see README.
    if (encrypts(url)) {
        s += ";Encryption=require";
    }
    return s;
}

std::unique_ptr<sql::Database> connect(const util::DatabaseUrl& url) {
    auto session = std::make_unique<soci::session>();
    try {
        session->open(soci::odbc, connect_string(url));
    } catch (const soci::soci_error& e) {
        throw Error(ErrorKind::connection,
                    "cannot connect to SQL Server at " + url.host + ": " + util::redact(e.what()),
                    "check host, port, instance, database, user and password "
                    "(CRMSYNC_DB_PASSWORD); FreeTDS (tdsodbc) must be installed");
    }
    const std::string description = "sqlserver://" + url.host + "/" + url.database;
    return std::make_unique<sql::Database>(make_dialect(), std::move(session), description);
}

sql::DatabaseDriver driver() {
    return {{"sqlserver",
             {"mssql"},
             util::UrlForm::server,
             "sqlserver://USER:PASSWORD@HOST:1433/[INSTANCE/]DB"},
            check_url,
            connect};
}

} // namespace crmsync::drivers::sqlserver
