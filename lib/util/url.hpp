#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::util {

// A parsed target URL. Forms (dbsync2's included):
//   sqlite://relative/file.db   sqlite:///absolute/file.db
//   postgres://user:pw@host:5432/db?sslmode=require      (also postgresql://)
//   mysql://user:pw@host:3306/db?sslca=FILE               (also mariadb://)
//   sqlserver://user:pw@host:1433/instance/db             (dbsync2's form)
//   sqlserver://user:pw@host:1433/db
// User, password and path parts are percent-decoded, so "p%40ss" is the password "p@ss".
struct DatabaseUrl {
    std::string scheme; // canonical: sqlite, postgres, mysql, sqlserver
    std::string user;
    std::string password;
    std::string host;
    std::optional<int> port;
    std::string database; // file path for sqlite
    std::string instance; // sqlserver only
    std::map<std::string, std::string> params;
};

// Throws crmsync::Error(usage) with a hint naming the accepted forms.
DatabaseUrl parse_database_url(std::string_view url);

// The URL with its password replaced by "***", safe for logs and errors.
std::string redact_url(std::string_view url);

std::string percent_decode(std::string_view text);
std::string percent_encode(std::string_view text);

// An http(s) URL split enough to validate it; throws crmsync::Error(usage).
struct HttpUrl {
    std::string scheme;
    std::string host;
    std::optional<int> port;
    std::string path_and_query;
};
HttpUrl parse_http_url(std::string_view url);

} // namespace crmsync::util
