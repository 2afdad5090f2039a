#include "lib/util/url.hpp"

#include "lib/core/error.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/redact.hpp"

#include <cctype>
#include <charconv>

namespace crmsync::util {
namespace {

constexpr const char* k_password_hint =
    "percent-encode '@', ':' and '/' in the password, or put it in CRMSYNC_DB_PASSWORD";

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::optional<int> parse_port(std::string_view text) {
    int port = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc{} || ptr != text.data() + text.size() || port <= 0 || port > 65535) {
        return std::nullopt;
    }
    return port;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
    std::map<std::string, std::string> params;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (!pair.empty()) {
            params[percent_decode(pair.substr(0, eq))] =
                eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1));
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query.remove_prefix(amp + 1);
    }
    return params;
}

// What follows "scheme://" up to '?', and the query.
struct Location {
    std::string_view rest;
    std::map<std::string, std::string> params;
};

Location split_query(std::string_view rest) {
    Location location{rest, {}};
    const auto q = rest.find('?');
    if (q != std::string_view::npos) {
        location.params = parse_query(rest.substr(q + 1));
        location.rest = rest.substr(0, q);
    }
    return location;
}

void parse_file(std::string_view rest, DatabaseUrl& result) {
    auto location = split_query(rest);
    result.database = percent_decode(location.rest);
    result.params = std::move(location.params);
}

template <typename MakeError>
HostPort parse_host_port(std::string_view authority, const MakeError& url_error) {
    HostPort result;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            throw url_error("the target URL has an unterminated IPv6 address");
        }
        result.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':' ||
                !(result.port = parse_port(authority.substr(close + 2)))) {
                throw url_error("the target URL has an invalid port");
            }
        }
    } else {
        const auto colon = authority.rfind(':');
        result.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            result.port = parse_port(authority.substr(colon + 1));
            if (!result.port) {
                throw url_error("the target URL has an invalid port '" +
                                std::string(authority.substr(colon + 1)) + "'");
            }
        }
    }
    if (result.host.empty()) {
        throw url_error("the target URL names no host");
    }
    return result;
}

void parse_server(std::string_view rest, DatabaseUrl& result, const std::string& hint,
                  bool several_hosts) {
    const auto url_error = [&](const std::string& what) {
        return Error(ErrorKind::usage, what, hint);
    };
    auto location = split_query(rest);
    result.params = std::move(location.params);
    rest = location.rest;
    // The userinfo ends at the last '@', so an unencoded '@' in a password still parses.
    const auto at = rest.rfind('@');
    std::string_view hostpart = rest;
    if (at != std::string_view::npos) {
        const auto userinfo = rest.substr(0, at);
        const auto colon = userinfo.find(':');
        result.user = percent_decode(userinfo.substr(0, colon));
        if (colon != std::string_view::npos) {
            result.password = percent_decode(userinfo.substr(colon + 1));
        }
        hostpart = rest.substr(at + 1);
    }
    const auto slash = hostpart.find('/');
    const auto authority = hostpart.substr(0, slash);
    const auto path =
        slash == std::string_view::npos ? std::string_view{} : hostpart.substr(slash + 1);
    // Host names never contain ',', so a list splits there whatever the scheme; only a scheme
    // that takes several hosts may have more than one.
    for (std::string_view left = authority;;) {
        const auto comma = left.find(',');
        result.hosts.push_back(parse_host_port(left.substr(0, comma), url_error));
        if (comma == std::string_view::npos) {
            break;
        }
        left.remove_prefix(comma + 1);
    }
    if (result.hosts.size() > 1 && !several_hosts) {
        throw url_error("the target URL lists several hosts; " + result.scheme + ":// takes one");
    }
    result.host = result.hosts.front().host;
    result.port = result.hosts.front().port;
    std::string_view db_path = path;
    while (!db_path.empty() && db_path.back() == '/') {
        db_path.remove_suffix(1);
    }
    for (std::string_view segments = db_path; !segments.empty();) {
        const auto end = segments.find('/');
        result.path.push_back(percent_decode(segments.substr(0, end)));
        segments.remove_prefix(end == std::string_view::npos ? segments.size() : end + 1);
    }
    result.database = percent_decode(db_path);
    if (result.database.empty()) {
        throw url_error("the target URL names no database");
    }
}

} // namespace

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
            hex_value(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::string percent_encode(std::string_view text) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += k_hex[c >> 4];
            out += k_hex[c & 0x0F];
        }
    }
    return out;
}

std::string database_url_hint(const std::vector<DatabaseScheme>& schemes) {
    if (schemes.empty()) {
        return std::string("write it as SCHEME://USER:PASSWORD@HOST:PORT/DB or SCHEME:///FILE; ") +
               k_password_hint;
    }
    std::string hint = "use ";
    for (std::size_t i = 0; i < schemes.size(); ++i) {
        hint += (i == 0                    ? ""
                 : i + 1 == schemes.size() ? " or "
                                           : ", ") +
                std::string(schemes[i].example);
    }
    return hint + "; " + k_password_hint;
}

DatabaseUrl parse_database_url(std::string_view url, const std::vector<DatabaseScheme>& schemes) {
    const std::string hint = database_url_hint(schemes);
    if (url.empty()) {
        throw Error(ErrorKind::usage, "the target URL is empty", hint);
    }
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) {
        throw Error(ErrorKind::usage, "the target URL has no scheme", hint);
    }
    const std::string written = util::ascii_lower(url.substr(0, scheme_end));
    const std::string_view rest = url.substr(scheme_end + 3);
    DatabaseUrl result;
    if (schemes.empty()) {
        result.scheme = written;
        if (!rest.empty() && rest.front() == '/') {
            parse_file(rest, result);
        } else {
            parse_server(rest, result, hint, true);
        }
        return result;
    }
    for (const auto& scheme : schemes) {
        bool match = written == scheme.name;
        for (const auto alias : scheme.aliases) {
            match = match || written == alias;
        }
        if (match) {
            result.scheme = std::string(scheme.name);
            if (scheme.form == UrlForm::file) {
                parse_file(rest, result);
            } else {
                parse_server(rest, result, hint, scheme.several_hosts);
            }
            return result;
        }
    }
    throw Error(ErrorKind::usage,
                "unsupported database scheme '" + std::string(url.substr(0, scheme_end)) + "'",
                hint);
}

DatabaseUrl parse_database_url(std::string_view url) { return parse_database_url(url, {}); }

std::string redact_url(std::string_view url) {
    std::string out(url);
    const auto scheme_end = out.find("://");
    if (scheme_end == std::string::npos) {
        return out;
    }
    const auto start = scheme_end + 3;
    // The same split as parse_database_url: userinfo ends at the last '@' before the query.
    const auto query = out.find('?', start);
    const auto at = out.substr(0, query).rfind('@');
    if (at != std::string::npos && at >= start) {
        const auto colon = out.find(':', start);
        if (colon != std::string::npos && colon < at) {
            out.replace(colon + 1, at - colon - 1, "***");
        }
    }
    // Passwords can also ride in the query (libpq's password=, ODBC's pwd=).
    for (auto q = out.find('?'); q != std::string::npos && q < out.size();) {
        const auto amp = out.find('&', q + 1);
        const auto eq = out.find('=', q + 1);
        if (eq != std::string::npos && (amp == std::string::npos || eq < amp)) {
            const std::string key = ascii_lower(out.substr(q + 1, eq - q - 1));
            if (key == "password" || key == "pwd" || key == "pass" || key == "passwd") {
                const auto value_end = amp == std::string::npos ? out.size() : amp;
                out.replace(eq + 1, value_end - eq - 1, "***");
            }
        }
        q = out.find('&', q + 1);
    }
    return out;
}

bool looks_like_token(std::string_view segment) {
    if (segment.size() >= 16) {
        return true;
    }
    bool letter = false;
    bool digit = false;
    for (const char ch : segment) {
        const auto c = static_cast<unsigned char>(ch);
        letter = letter || std::isalpha(c) != 0;
        digit = digit || std::isdigit(c) != 0;
    }
    return segment.size() >= 8 && letter && digit;
}

bool is_loopback_host(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (!host.empty() && host.back() == '.') {
        host.remove_suffix(1);
    }
    const std::string lower = util::ascii_lower(host);
    if (lower == "localhost" || lower == "::1" || lower == "0:0:0:0:0:0:0:1") {
        return true;
    }
    std::string_view v4 = lower;
    if (v4.starts_with("::ffff:")) {
        v4.remove_prefix(7);
    }
    // A dotted quad whose first octet is 127; inet_pton's strict form, written out.
    int octets = 0;
    int first = -1;
    while (!v4.empty()) {
        const auto dot = v4.find('.');
        const auto part = v4.substr(0, dot);
        int value = -1;
        const auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
        if (part.empty() || part.size() > 3 || ec != std::errc{} ||
            ptr != part.data() + part.size() || value < 0 || value > 255) {
            return false;
        }
        first = octets == 0 ? value : first;
        ++octets;
        if (dot == std::string_view::npos) {
            break;
        }
        v4.remove_prefix(dot + 1);
        if (v4.empty()) {
            return false;
        }
    }
    return octets == 4 && first == 127;
}

std::string redact_http_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        // Not a URL at all: it may still be a token pasted in the wrong place.
        return url.size() <= 12 && !looks_like_token(url) ? std::string(url) : "***";
    }
    std::string out(url.substr(0, scheme_end + 3));
    std::string_view rest = url.substr(scheme_end + 3);
    const auto fragment = rest.find('#');
    const bool has_fragment = fragment != std::string_view::npos;
    rest = rest.substr(0, fragment);
    const auto path_start = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, path_start);
    rest = path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        out += "***@";
        authority.remove_prefix(at + 1);
    }
    out += authority;
    const auto query_start = rest.find('?');
    std::string_view path = rest.substr(0, query_start);
    while (!path.empty()) {
        // path starts with '/'
        path.remove_prefix(1);
        const auto end = path.find('/');
        const auto segment = path.substr(0, end);
        out += '/';
        out +=
            looks_like_token(percent_decode(segment)) ? std::string("***") : std::string(segment);
        path = end == std::string_view::npos ? std::string_view{} : path.substr(end);
    }
    if (query_start != std::string_view::npos) {
        std::string_view query = rest.substr(query_start + 1);
        out += '?';
        for (bool first = true; !query.empty() || first; first = false) {
            const auto amp = query.find('&');
            const auto pair = query.substr(0, amp);
            const auto eq = pair.find('=');
            out += first ? "" : "&";
            out += pair.substr(0, eq);
            if (eq != std::string_view::npos) {
                out += "=***";
            }
            if (amp == std::string_view::npos) {
                break;
            }
            query.remove_prefix(amp + 1);
        }
    }
    if (has_fragment) {
        out += "#***";
    }
    return out;
}

void register_url_secrets(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        return;
    }
    std::string_view rest = url.substr(scheme_end + 3);
    rest = rest.substr(0, rest.find('#'));
    const auto path_start = rest.find_first_of("/?");
    const auto authority = rest.substr(0, path_start);
    rest = path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
    std::vector<std::string> secrets;
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        const auto userinfo = authority.substr(0, at);
        const auto colon = userinfo.find(':');
        if (colon != std::string_view::npos) {
            secrets.push_back(percent_decode(userinfo.substr(colon + 1)));
        }
    }
    const auto query_start = rest.find('?');
    for (std::string_view path = rest.substr(0, query_start); !path.empty();) {
        path.remove_prefix(1);
        const auto end = path.find('/');
        const auto segment = percent_decode(path.substr(0, end));
        if (looks_like_token(segment)) {
            secrets.push_back(segment);
        }
        path = end == std::string_view::npos ? std::string_view{} : path.substr(end);
    }
    if (query_start != std::string_view::npos) {
        for (const auto& [name, value] : parse_query(rest.substr(query_start + 1))) {
            // "?format=json" must not blank out every "json" in the log.
            const std::string key = util::ascii_lower(name);
            bool named_secret = false;
            for (const char* word :
                 {"token", "key", "secret", "sig", "auth", "pass", "pwd", "code", "hash"}) {
                named_secret = named_secret || key.find(word) != std::string::npos;
            }
            if (named_secret || looks_like_token(value)) {
                secrets.push_back(value);
            }
        }
    }
    for (const auto& secret : secrets) {
        register_secret(secret);
    }
}

HttpUrl parse_http_url(std::string_view url) {
    // Errors quote the URL redacted: a webhook URL often carries its token.
    const std::string shown = redact_http_url(url);
    HttpUrl result;
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        throw Error(ErrorKind::usage, "'" + shown + "' is not an http(s) URL",
                    "write it as https://host[:port]/path");
    }
    result.scheme = util::ascii_lower(url.substr(0, scheme_end));
    if (result.scheme != "http" && result.scheme != "https") {
        throw Error(ErrorKind::usage, "'" + shown + "' is not an http(s) URL",
                    "write it as https://host[:port]/path");
    }
    std::string_view rest = url.substr(scheme_end + 3);
    const auto slash = rest.find_first_of("/?");
    const auto authority = rest.substr(0, slash);
    result.path_and_query = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    const auto bracket = authority.find(']');
    const auto colon = authority.rfind(':');
    if (!authority.empty() && authority.front() == '[' && bracket != std::string_view::npos) {
        result.host = std::string(authority.substr(1, bracket - 1));
        if (bracket + 1 < authority.size()) {
            result.port = authority[bracket + 1] == ':' ? parse_port(authority.substr(bracket + 2))
                                                        : std::nullopt;
            if (!result.port) {
                throw Error(ErrorKind::usage, "'" + shown + "' has an invalid port",
                            "write it as https://host[:port]/path");
            }
        }
    } else if (colon != std::string_view::npos && bracket == std::string_view::npos) {
        result.host = std::string(authority.substr(0, colon));
        result.port = parse_port(authority.substr(colon + 1));
        if (!result.port) {
            throw Error(ErrorKind::usage, "'" + shown + "' has an invalid port",
                        "write it as https://host[:port]/path");
        }
    } else {
        result.host = std::string(authority);
    }
    if (result.host.empty() || result.host.find('@') != std::string::npos) {
        throw Error(ErrorKind::usage, "'" + shown + "' names no valid host",
                    "write it as https://host[:port]/path");
    }
    return result;
}

} // namespace crmsync::util
