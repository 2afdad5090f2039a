#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::util {

// A parsed target URL. The parser knows URL syntax, not databases: which schemes exist, their
// aliases and which of the two forms each takes come from a table that the drivers supply
// (cmd/targets.cpp), and each driver applies its own rules afterwards. The forms:
//   file:    SCHEME://relative/file.db   SCHEME:///absolute/file.db   (then ?query)
//   server:  SCHEME://user:pw@host:5432/path?query
//            (a scheme that takes several hosts: SCHEME://user:pw@h1:3306,h2:3307/path)
// User, password and path parts are percent-decoded, so "p%40ss" is the password "p@ss".
struct HostPort {
    std::string host;
    std::optional<int> port;
};

struct DatabaseUrl {
    std::string scheme; // the table's canonical name: sqlite, postgres, mysql, sqlserver
    std::string user;
    std::string password;
    std::string host;
    std::optional<int> port;
    std::vector<HostPort> hosts; // server URLs: every host listed, in order; host/port: the first
    std::string database;        // file URLs: the file; server URLs: the path without trailing '/'
    std::vector<std::string> path; // server URLs: the path's segments, each percent-decoded
    std::string instance;          // filled by a driver that reads one from the path
    std::map<std::string, std::string> params;
};

enum class UrlForm {
    file,   // everything up to '?' is a file path
    server, // [user[:password]@]host[:port]/path
};

// One scheme a database driver answers to.
struct DatabaseScheme {
    std::string_view name;                 // canonical, as DatabaseUrl::scheme
    std::vector<std::string_view> aliases; // also accepted (any case), e.g. "postgresql"
    UrlForm form = UrlForm::server;
    std::string_view example;   // the form to show in hints: "postgres://USER:PASSWORD@HOST/DB"
    bool several_hosts = false; // the authority may list hosts separated by ','
};

// Parses `url` by the form of its scheme's row. Throws crmsync::Error(usage) with a hint naming
// the accepted forms for an empty URL, an unknown scheme, a bad port, or a server URL without
// host or database, or several hosts for a scheme that takes one.
DatabaseUrl parse_database_url(std::string_view url, const std::vector<DatabaseScheme>& schemes);

// The same without a table: any scheme (lowercased, no aliases); `SCHEME:///PATH` (an empty
// authority) is a file URL, anything else a server URL. For callers that hold a URL of a
// known driver; a user's URL goes through the drivers' table.
DatabaseUrl parse_database_url(std::string_view url);

// "use A, B or C; percent-encode ...": the hint of every target URL error.
std::string database_url_hint(const std::vector<DatabaseScheme>& schemes);

// The URL with its password replaced by "***", safe for logs and errors.
std::string redact_url(std::string_view url);

// An http(s) URL as it may be shown (logs, errors, `status`, notices): scheme, host, port and
// the path's shape stay; userinfo, every query value, the fragment and each path segment that
// looks like a token (see looks_like_token) become "***". Not a parser: any text is accepted,
// and text without "://" is masked whole unless it is short.
std::string redact_http_url(std::string_view url);

// Registers with util::register_secret the parts of an http(s) URL that are credentials: the
// userinfo's password, token-like path segments, and query values that look like a token or
// whose name says secret (token, key, sig, auth, pass, code...); "?format=json" is left alone
// so ordinary words stay readable. Logs, errors and notices then never show them, whatever
// form of the URL reaches them.
void register_url_secrets(std::string_view url);

// A path segment that is probably a credential rather than a name: 16+ characters, or 8+
// characters mixing letters and digits ("v1", "api", "2024-01-01", "transactions" are not).
bool looks_like_token(std::string_view segment);

// 127.0.0.0/8, ::1 (also bracketed or as ::ffff:127.x) and "localhost" (any case, trailing dot
// allowed): hosts whose traffic never leaves the machine.
bool is_loopback_host(std::string_view host);

std::string percent_decode(std::string_view text);
std::string percent_encode(std::string_view text);

// An http(s) URL split enough to validate it; throws crmsync::Error(usage), whose message
// shows the URL only in its redact_http_url form.
struct HttpUrl {
    std::string scheme;
    std::string host;
    std::optional<int> port;
    std::string path_and_query;
};
HttpUrl parse_http_url(std::string_view url);

} // namespace crmsync::util
