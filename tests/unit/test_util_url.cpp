#include "cmd/targets.hpp"
#include "lib/core/error.hpp"
#include "lib/util/url.hpp"

#include <catch2/catch.hpp>

#include <string>

using crmsync::Error;
using crmsync::ErrorKind;
namespace util = crmsync::util;

namespace {

// A target URL as crmsync reads it: the generic parser with every driver's schemes, then the
// driver's own rules (SQLite paths, SQL Server instances, one database name elsewhere).
util::DatabaseUrl parse(const std::string& url) { return crmsync::cli::parse_target_url(url); }

// The generic parser alone, with every driver's schemes: no driver rules.
util::DatabaseUrl parse_syntax(const std::string& url) {
    std::vector<util::DatabaseScheme> schemes;
    for (const auto& driver : crmsync::cli::database_drivers()) {
        schemes.push_back(driver.scheme);
    }
    return util::parse_database_url(url, schemes);
}

// The kind of the Error that parse() throws for `url`, after checking it has a hint.
ErrorKind database_url_error(const std::string& url) {
    try {
        parse(url);
    } catch (const Error& e) {
        CHECK_FALSE(e.hint().empty());
        return e.kind();
    }
    FAIL("no error for '" << url << "'");
    return ErrorKind::internal;
}

ErrorKind http_url_error(const std::string& url) {
    try {
        util::parse_http_url(url);
    } catch (const Error& e) {
        return e.kind();
    }
    FAIL("no error for '" << url << "'");
    return ErrorKind::internal;
}

} // namespace

TEST_CASE("util::parse_database_url", "[unit]") {
    SECTION("sqlite:// takes a relative file") {
        const auto u = parse("sqlite://relative/file.db");
        CHECK(u.scheme == "sqlite");
        CHECK(u.database == "relative/file.db");
        CHECK(u.host.empty());
    }
    SECTION("sqlite:/// takes an absolute file") {
        const auto u = parse("sqlite:///absolute/file.db");
        CHECK(u.scheme == "sqlite");
        CHECK(u.database == "/absolute/file.db");
    }
    SECTION("postgres:// reads user, password, host, port, database and parameters") {
        const auto u = parse("postgres://user:pw@host:5432/db?sslmode=require");
        CHECK(u.scheme == "postgres");
        CHECK(u.user == "user");
        CHECK(u.password == "pw");
        CHECK(u.host == "host");
        CHECK(u.port == 5432);
        CHECK(u.database == "db");
        CHECK(u.instance.empty());
        CHECK(u.params == std::map<std::string, std::string>{{"sslmode", "require"}});
    }
    SECTION("postgresql:// is postgres") {
        CHECK(parse("postgresql://u:p@h/db").scheme == "postgres");
    }
    SECTION("mysql:// and mariadb:// are mysql") {
        // The mysql driver refuses ssl-mode (see test_sql_dialect_golden); the URL parses.
        const auto u = parse_syntax("mysql://user:pw@host:3306/db?ssl-mode=REQUIRED");
        CHECK(u.scheme == "mysql");
        CHECK(u.port == 3306);
        CHECK(u.database == "db");
        CHECK(u.params.at("ssl-mode") == "REQUIRED");
        CHECK(parse("mariadb://u:p@h/db").scheme == "mysql");
    }
    SECTION("sqlserver:// without an instance") {
        const auto u = parse("sqlserver://user:pw@host:1433/db");
        CHECK(u.scheme == "sqlserver");
        CHECK(u.port == 1433);
        CHECK(u.instance.empty());
        CHECK(u.database == "db");
    }
    SECTION("dbsync2's sqlserver form host:port/instance/db names an instance") {
        const auto u = parse("sqlserver://u:pw@host:1433/instance/db");
        CHECK(u.user == "u");
        CHECK(u.password == "pw");
        CHECK(u.host == "host");
        CHECK(u.port == 1433);
        CHECK(u.instance == "instance");
        CHECK(u.database == "db");
    }
    SECTION("dbsync2's documented example parses") {
        const auto u = parse("sqlserver://my_user:my_password@localhost:1433/my_database");
        CHECK(u.user == "my_user");
        CHECK(u.password == "my_password");
        CHECK(u.host == "localhost");
        CHECK(u.database == "my_database");
    }
    SECTION("a percent-encoded password may hold @ : and /") {
        const auto u = parse("postgres://u:p%40ss%3Aw%2Frd@h:5432/db");
        CHECK(u.user == "u");
        CHECK(u.password == "p@ss:w/rd");
        CHECK(u.host == "h");
        CHECK(u.port == 5432);
        CHECK(u.database == "db");
    }
    SECTION("an unencoded @ in the password still parses: the user part ends at the last @") {
        const auto u = parse("mysql://u:p@ss@h:3306/db");
        CHECK(u.user == "u");
        CHECK(u.password == "p@ss");
        CHECK(u.host == "h");
        CHECK(u.port == 3306);
    }
    SECTION("a user and database name are percent-decoded too") {
        const auto u = parse("postgres://us%20er@h/my%2Ddb");
        CHECK(u.user == "us er");
        CHECK(u.password.empty());
        CHECK(u.database == "my-db");
    }
    SECTION("no user info and no port leave them empty") {
        const auto u = parse("postgres://h/db");
        CHECK(u.user.empty());
        CHECK(u.password.empty());
        CHECK_FALSE(u.port.has_value());
    }
    SECTION("an IPv6 host is written in brackets") {
        const auto u = parse("postgres://u:pw@[::1]:5432/db");
        CHECK(u.host == "::1");
        CHECK(u.port == 5432);
        CHECK(u.database == "db");
        const auto v = parse("postgres://u:pw@[2001:db8::1]/db");
        CHECK(v.host == "2001:db8::1");
        CHECK_FALSE(v.port.has_value());
    }
    SECTION("several query parameters are split and decoded") {
        const auto u =
            parse("postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&flag");
        CHECK(u.params.size() == 3);
        CHECK(u.params.at("sslmode") == "verify-full");
        CHECK(u.params.at("sslrootcert") == "/etc/ca.pem");
        CHECK(u.params.at("flag").empty());
        CHECK(u.database == "db");
    }
    SECTION("an empty URL is a usage error") { CHECK(database_url_error("") == ErrorKind::usage); }
    SECTION("a URL without scheme is a usage error") {
        CHECK(database_url_error("localhost/db") == ErrorKind::usage);
        CHECK(database_url_error("://h/db") == ErrorKind::usage);
    }
    SECTION("an unknown scheme is a usage error") {
        CHECK(database_url_error("ftp://x") == ErrorKind::usage);
        CHECK(database_url_error("oracle://u:p@h/db") == ErrorKind::usage);
    }
    SECTION("a bad port is a usage error") {
        CHECK(database_url_error("postgres://u:p@h:99999/db") == ErrorKind::usage);
        CHECK(database_url_error("postgres://u:p@h:0/db") == ErrorKind::usage);
        CHECK(database_url_error("postgres://u:p@h:abc/db") == ErrorKind::usage);
        CHECK(database_url_error("postgres://u:p@h:/db") == ErrorKind::usage);
        CHECK(database_url_error("postgres://u:p@[::1]x/db") == ErrorKind::usage);
    }
    SECTION("a URL without database is a usage error") {
        CHECK(database_url_error("postgres://u:p@h:5432") == ErrorKind::usage);
        CHECK(database_url_error("postgres://u:p@h:5432/") == ErrorKind::usage);
        CHECK(database_url_error("sqlite://") == ErrorKind::usage);
    }
    SECTION("a URL without host is a usage error") {
        CHECK(database_url_error("postgres://u:p@/db") == ErrorKind::usage);
        CHECK(database_url_error("postgres://u:p@[::1/db") == ErrorKind::usage);
    }
    SECTION("a database name with '/' is a usage error outside SQL Server") {
        CHECK(database_url_error("mysql://u:p@h/a/b") == ErrorKind::usage);
    }
    SECTION("mysql:// may list several hosts; host and port are the first") {
        const auto u = parse("mysql://u:p%40w@h1:3306,[::1]:3307,h3/db");
        REQUIRE(u.hosts.size() == 3);
        CHECK(u.host == "h1");
        CHECK(u.port == 3306);
        CHECK(u.hosts[1].host == "::1");
        CHECK(u.hosts[1].port == 3307);
        CHECK(u.hosts[2].host == "h3");
        CHECK_FALSE(u.hosts[2].port);
        CHECK(u.password == "p@w");
        CHECK(u.database == "db");
        CHECK(parse("mysql://u@h:1/db").hosts.size() == 1);
    }
    SECTION("several hosts are a usage error where the driver takes one, or with an empty one") {
        CHECK(database_url_error("postgres://u@h1:5432,h2:5432/db") == ErrorKind::usage);
        CHECK(database_url_error("mysql://u@h1:3306,/db") == ErrorKind::usage);
        CHECK(database_url_error("mysql://u@h1:3306,h2:x/db") == ErrorKind::usage);
    }
    SECTION("a URL with several hosts is redacted like one with one") {
        CHECK(util::redact_url("mysql://u:secret@h1:3306,h2:3307/db") ==
              "mysql://u:***@h1:3306,h2:3307/db");
    }
}

TEST_CASE("util::parse_database_url knows forms, not databases", "[unit]") {
    const std::vector<util::DatabaseScheme> table = {
        {"files", {"f"}, util::UrlForm::file, "files://FILE"},
        {"srv", {"server", "s2"}, util::UrlForm::server, "srv://HOST/DB"},
    };
    SECTION("a file scheme takes everything up to the query as the file") {
        const auto u = util::parse_database_url("F://dir/a%20b.db?mode=x", table);
        CHECK(u.scheme == "files");
        CHECK(u.database == "dir/a b.db");
        CHECK(u.params.at("mode") == "x");
    }
    SECTION("a server scheme splits the path into decoded segments and leaves rules to drivers") {
        const auto u = util::parse_database_url("server://u:pw@h:1/a%2Fb/c/", table);
        CHECK(u.scheme == "srv");
        CHECK(u.database == "a/b/c");
        CHECK(u.path == std::vector<std::string>{"a/b", "c"});
        CHECK(u.instance.empty());
    }
    SECTION("the hint lists the table's forms") {
        try {
            util::parse_database_url("oracle://h/db", table);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::usage);
            CHECK(std::string(e.what()) == "unsupported database scheme 'oracle'");
            CHECK(e.hint().rfind("use files://FILE or srv://HOST/DB; percent-encode", 0) == 0);
        }
    }
    SECTION("without a table, an empty authority makes a file URL") {
        const auto file = util::parse_database_url("anything:///tmp/x.db");
        CHECK(file.scheme == "anything");
        CHECK(file.database == "/tmp/x.db");
        const auto server = util::parse_database_url("Other://u@h/db");
        CHECK(server.scheme == "other");
        CHECK(server.host == "h");
        CHECK(server.database == "db");
    }
}

TEST_CASE("cli::database_drivers", "[unit]") {
    SECTION("every driver's scheme and aliases parse to that driver") {
        const auto& drivers = crmsync::cli::database_drivers();
        REQUIRE(drivers.size() == 4);
        for (const auto& driver : drivers) {
            CHECK(driver.check_url != nullptr);
            CHECK(driver.connect != nullptr);
            const std::string rest = driver.scheme.form == util::UrlForm::file
                                         ? std::string(":///tmp/x.db")
                                         : std::string("://u:pw@h/db");
            CHECK(parse(std::string(driver.scheme.name) + rest).scheme == driver.scheme.name);
            for (const auto alias : driver.scheme.aliases) {
                CHECK(parse(std::string(alias) + rest).scheme == driver.scheme.name);
            }
        }
    }
}

TEST_CASE("cli::parse_target_url hints", "[unit]") {
    SECTION("every URL error names the accepted forms, driver rules included") {
        const std::string forms =
            "use sqlite://FILE.db, postgres://USER:PASSWORD@HOST:5432/DB, "
            "mysql://USER:PASSWORD@HOST:3306/DB or "
            "sqlserver://USER:PASSWORD@HOST:1433/[INSTANCE/]DB; percent-encode '@', ':' and '/' "
            "in the password, or put it in CRMSYNC_DB_PASSWORD";
        for (const char* url : {"", "ftp://x", "postgres://h:0/db", "sqlite://", "mysql://h/a/b"}) {
            try {
                parse(url);
                FAIL("no error for " << url);
            } catch (const Error& e) {
                CHECK(e.hint() == forms);
            }
        }
    }
    SECTION("the SQLite rule on '=' keeps its own hint") {
        try {
            parse("sqlite:///tmp/a=b.db");
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::usage);
            CHECK(std::string(e.what()) == "the SQLite file name must not contain '='");
        }
    }
}

TEST_CASE("util::redact_url", "[unit]") {
    SECTION("replaces the password and keeps the rest") {
        CHECK(util::redact_url("postgres://u:secret@h:5432/db?sslmode=require") ==
              "postgres://u:***@h:5432/db?sslmode=require");
    }
    SECTION("hides a percent-encoded password") {
        const auto r = util::redact_url("postgres://u:p%40ss%3Aw%2Frd@h:5432/db");
        CHECK(r == "postgres://u:***@h:5432/db");
    }
    SECTION("hides a password holding an unencoded @") {
        const auto r = util::redact_url("mysql://u:p@ss@h:3306/db");
        CHECK(r.find("p@ss") == std::string::npos);
        CHECK(r.find("ss@") == std::string::npos);
        CHECK(r == "mysql://u:***@h:3306/db");
    }
    SECTION("hides the password in dbsync2's sqlserver instance form") {
        const auto r =
            util::redact_url("sqlserver://my_user:my_password@localhost:1433/inst/my_database");
        CHECK(r.find("my_password") == std::string::npos);
        CHECK(r == "sqlserver://my_user:***@localhost:1433/inst/my_database");
    }
    SECTION("hides a password holding an unencoded / that parse_database_url accepts") {
        const std::string url = "postgres://u:pa/ss@h:5432/db";
        REQUIRE(util::parse_database_url(url).password == "pa/ss");
        CHECK(util::redact_url(url).find("pa/ss") == std::string::npos);
    }
    SECTION("hides a password given as a query parameter") {
        const auto r = util::redact_url("postgres://u@h/db?password=s3cretpw&sslmode=require");
        CHECK(r.find("s3cretpw") == std::string::npos);
    }
    SECTION("leaves URLs without password unchanged") {
        CHECK(util::redact_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db");
        CHECK(util::redact_url("postgres://u@h/db") == "postgres://u@h/db");
        CHECK(util::redact_url("not a url") == "not a url");
    }
}

TEST_CASE("util::percent_decode and percent_encode", "[unit]") {
    SECTION("encode then decode gives the original") {
        const std::string s = "p@ss:w/rd ;{}%\xC3\xA4";
        CHECK(util::percent_decode(util::percent_encode(s)) == s);
        CHECK(util::percent_encode("p@ss:w/rd") == "p%40ss%3Aw%2Frd");
    }
    SECTION("decoding leaves a stray % alone") {
        CHECK(util::percent_decode("100%") == "100%");
        CHECK(util::percent_decode("%4") == "%4");
        CHECK(util::percent_decode("%zz") == "%zz");
        CHECK(util::percent_decode("%41") == "A");
    }
}

TEST_CASE("util::parse_http_url", "[unit]") {
    SECTION("reads scheme and host; the path defaults to /") {
        const auto u = util::parse_http_url("https://api.dialfire.com");
        CHECK(u.scheme == "https");
        CHECK(u.host == "api.dialfire.com");
        CHECK_FALSE(u.port.has_value());
        CHECK(u.path_and_query == "/");
    }
    SECTION("reads port, path and query") {
        const auto u = util::parse_http_url("http://127.0.0.1:8080/api/x?a=1");
        CHECK(u.scheme == "http");
        CHECK(u.host == "127.0.0.1");
        CHECK(u.port == 8080);
        CHECK(u.path_and_query == "/api/x?a=1");
    }
    SECTION("reads an IPv6 host with a port") {
        const auto u = util::parse_http_url("http://[::1]:8080/api");
        CHECK(u.port == 8080);
        CHECK(u.path_and_query == "/api");
    }
    SECTION("rejects other schemes, missing hosts, bad ports and user info as usage errors") {
        for (const char* bad : {"ftp://x", "api.dialfire.com", "http://", "http://h:99999/",
                                "http://h:abc/", "http://u:p@h/", "https://:443/"}) {
            INFO(bad);
            CHECK(http_url_error(bad) == ErrorKind::usage);
        }
    }
}

TEST_CASE("util::redact_http_url", "[unit]") {
    SECTION("keeps scheme, host, port and plain path segments") {
        CHECK(util::redact_http_url("https://hooks.example.com:8443/api/v1/transactions") ==
              "https://hooks.example.com:8443/api/v1/transactions");
    }
    SECTION("masks userinfo, query values and the fragment") {
        CHECK(util::redact_http_url("https://user:pw@h.example/x?token=abc&mode=1#frag") ==
              "https://***@h.example/x?token=***&mode=***#***");
    }
    SECTION("masks path segments that look like tokens") {
        CHECK(util::redact_http_url("https://hooks.slack.com/services/T0001/B0002/"
                                    "XXXXXXXXXXXXXXXXXXXXXXXX") ==
              "https://hooks.slack.com/services/T0001/B0002/***");
        CHECK(util::redact_http_url("http://127.0.0.1:9/hook/ab12cd34") ==
              "http://127.0.0.1:9/hook/***");
    }
    SECTION("text that is no URL is masked unless short and plain") {
        CHECK(util::redact_http_url("nonsense") == "nonsense");
        CHECK(util::redact_http_url("s3cr3t-t0ken-value") == "***");
    }
}

TEST_CASE("util::is_loopback_host", "[unit]") {
    for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST.", "::1", "[::1]",
                             "::ffff:127.0.0.1"}) {
        INFO(host);
        CHECK(util::is_loopback_host(host));
    }
    for (const char* host : {"10.0.0.1", "127.0.0.1.example.com", "localhost.example.com",
                             "128.0.0.1", "127.0.0", "db.example.com", "", "::2"}) {
        INFO(host);
        CHECK_FALSE(util::is_loopback_host(host));
    }
}

TEST_CASE("util::parse_http_url errors never quote a token", "[unit]") {
    const std::string url = "ftp://hooks.example.com/hook/0123456789abcdef0123?key=supersecret";
    try {
        util::parse_http_url(url);
        FAIL("no error");
    } catch (const crmsync::Error& e) {
        const std::string what = e.what();
        CHECK(what.find("0123456789abcdef0123") == std::string::npos);
        CHECK(what.find("supersecret") == std::string::npos);
        CHECK(what.find("ftp://hooks.example.com/hook/***?key=***") != std::string::npos);
    }
}
