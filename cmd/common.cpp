#include "cmd/common.hpp"

#include "lib/core/error.hpp"
#include "lib/notify/notifier.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/identifiers.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace crmsync::cli {
namespace {

std::string read_secret_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw Error(ErrorKind::config, "cannot read token file " + path,
                    "check the path and that this user may read it");
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

// CLI11 validators: an empty string means valid. Error texts never carry a password, since
// parse_smtp_url refuses URLs holding one before it quotes them.
std::string check_smtp_option(std::string& value) {
    try {
        const auto url = notify::parse_smtp_url(value);
        const char* password = std::getenv(k_smtp_password_env);
        if (!url.user.empty() && (password == nullptr || *password == '\0')) {
            return std::string("the SMTP user needs a password: export it in ") +
                   k_smtp_password_env;
        }
    } catch (const Error& e) {
        return util::redact(e.what()) + "; " + e.hint();
    }
    return {};
}

std::string check_address(std::string& value) {
    if (!util::is_plain_mail_address(value)) {
        return "'" + value + "' is not a plain mail address (name@example.com)";
    }
    return {};
}

std::string check_url_option(std::string& value) {
    try {
        util::parse_http_url(value);
    } catch (const Error& e) {
        return util::redact(e.what());
    }
    return {};
}

} // namespace

void check_table_prefix(const std::string& prefix, const std::string& example) {
    for (const char c : prefix) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
            throw Error(ErrorKind::usage,
                        "table prefix '" + prefix + "' may hold only letters, digits and '_'",
                        "e.g. --table-prefix " + example);
        }
    }
}

void check_campaign(const std::string& campaign) {
    if (campaign.empty()) {
        throw Error(ErrorKind::usage, "no campaign given", "pass --campaign ID (or --c ID)");
    }
    for (const char c : campaign) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
            throw Error(ErrorKind::usage, "campaign ID '" + campaign + "' has invalid characters",
                        "a Dialfire campaign ID looks like 2FZFB7ZN993KJBR9");
        }
    }
}

std::optional<SystemTime> parse_time_option(const std::string& text, const char* flag) {
    if (text.empty()) {
        return std::nullopt;
    }
    const auto t = util::parse_iso8601(text);
    if (!t) {
        throw Error(ErrorKind::usage, std::string(flag) + " '" + text + "' is not a date or time",
                    "write 2024-02-01 or 2024-02-01T15:04:05 (UTC)");
    }
    return t;
}

std::chrono::milliseconds parse_duration_option(const std::string& text, const char* flag) {
    const auto d = util::parse_duration(text);
    if (!d) {
        throw Error(ErrorKind::usage, std::string(flag) + " '" + text + "' is not a duration",
                    "write e.g. 90s, 10m, 2h or 1d");
    }
    return *d;
}

void add_common(CLI::App& app, CommonOptions& o, TokenFlags token_flags) {
    if (token_flags == TokenFlags::api_token) {
        app.add_option("--ct", o.token,
                       "API token (dbsync2 compatibility; visible in ps: prefer --token-env)")
            ->envname("DBSYNC_CT");
        app.add_option("--token-env", o.token_env,
                       "Name of the environment variable holding the token");
        app.add_option("--token-file", o.token_file, "File holding the token");
    }
    app.add_option("--l,--log-level", o.log_level, "Log level 0 (critical) .. 5 (debug)")
        ->check(CLI::Range(0, 5))
        ->envname("DBSYNC_L");
    app.add_flag("--v,--verbose", o.log_stdout, "Also print log lines on stdout")
        ->envname("DBSYNC_V");
    app.add_option("--log-dir", o.log_dir,
                   "Directory for log files (default /var/log/crmsync, else ~/.crmsync/logs)");
    app.add_option("--summary-json", o.summary_json, "Write the run summary as JSON to FILE");
    app.add_flag("--insecure", o.insecure,
                 "Deprecated: do not verify TLS certificates of any endpoint (use --insecure-*)");
    add_insecure_flags(app, o, {Endpoint::notify});
    app.add_option(
           "--max-runtime", o.max_runtime,
           "Time budget of the run (e.g. 55m, 0 = none); what is left waits for the next run")
        ->capture_default_str();
    app.add_option("--retry-attempts", o.retry_attempts, "Attempts per HTTP request")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    app.add_option("--retry-base", o.retry_base, "First backoff ceiling (doubles per attempt)")
        ->capture_default_str();

    auto* smtp = app.add_option("--notify-smtp", o.notify_smtp,
                                "Mail a notice when the job starts failing and when it recovers: "
                                "smtp://user@host:587 (STARTTLS) or smtps://user@host:465; "
                                "password in CRMSYNC_SMTP_PASSWORD")
                     ->check(CLI::Validator(check_smtp_option, "SMTP-URL"));
    auto* to = app.add_option("--notify-to", o.notify_to,
                              "Recipient of the notices (repeat, or separate with commas)")
                   ->delimiter(',')
                   ->check(CLI::Validator(check_address, "ADDR"));
    smtp->needs(to);
    to->needs(smtp);
    app.add_option("--notify-from", o.notify_from,
                   "Sender of the notices (default: the SMTP user if it is an address)")
        ->check(CLI::Validator(check_address, "ADDR"))
        ->needs(smtp);
    app.add_option("--notify-url", o.notify_url,
                   "POST a JSON notice here when the job starts failing and when it recovers")
        ->check(CLI::Validator(check_url_option, "URL"));
    app.add_option("--notify-state", o.notify_state,
                   "State file keeping the error episodes (default: the command's state file, "
                   "else $XDG_STATE_HOME/crmsync/state.db)");
}

namespace {

struct EndpointRow {
    Endpoint endpoint;
    bool CommonOptions::*insecure; // the --insecure-* flag's value
    const char* flag;
    const char* what; // what is not verified, for the flag's help and the warning
};

constexpr EndpointRow k_endpoints[] = {
    {Endpoint::api, &CommonOptions::insecure_api, "--insecure-api", "the source API"},
    {Endpoint::webhook, &CommonOptions::insecure_webhook, "--insecure-webhook",
     "the webhook receiver"},
    {Endpoint::oauth, &CommonOptions::insecure_oauth, "--insecure-oauth",
     "the OAuth token endpoints"},
    {Endpoint::notify, &CommonOptions::insecure_notify, "--insecure-notify",
     "the notification URL and SMTP server"},
};

const EndpointRow& row_of(Endpoint endpoint) {
    for (const auto& row : k_endpoints) {
        if (row.endpoint == endpoint) {
            return row;
        }
    }
    return k_endpoints[0];
}

} // namespace

void add_insecure_flags(CLI::App& app, CommonOptions& o,
                        std::initializer_list<Endpoint> endpoints) {
    for (const Endpoint endpoint : endpoints) {
        const auto& row = row_of(endpoint);
        app.add_flag(row.flag, o.*row.insecure,
                     std::string("Do not verify TLS certificates of ") + row.what);
    }
}

bool verify_tls(const CommonOptions& o, Endpoint endpoint) {
    const auto& row = row_of(endpoint);
    if (!o.insecure && !(o.*row.insecure)) {
        return true;
    }
    // One line per endpoint and process, however often a command asks.
    static std::mutex mutex;
    static std::set<Endpoint> warned;
    const std::lock_guard lock(mutex);
    if (warned.insert(endpoint).second) {
        std::cerr << "crmsync: warning: TLS certificates of " << row.what << " are not verified ("
                  << (o.insecure ? std::string("--insecure is deprecated: use ") + row.flag
                                 : std::string(row.flag))
                  << ")" << std::endl;
    }
    return false;
}

void require_tls_for_credentials(const std::string& url, const std::string& what,
                                 const std::string& flag) {
    if (!util::ascii_istarts_with(url, "http://")) {
        return;
    }
    const auto parsed = util::parse_http_url(url);
    if (util::is_loopback_host(parsed.host)) {
        return;
    }
    throw Error(ErrorKind::usage,
                flag + " '" + util::redact_http_url(url) + "' is plain http: " + what +
                    " would cross the network unencrypted",
                "use https:// (http:// is accepted only for 127.0.0.1, ::1 and localhost)");
}

std::string resolve_token(const CommonOptions& o) {
    std::string token;
    if (!o.token_env.empty()) {
        const char* value = std::getenv(o.token_env.c_str());
        if (value == nullptr || *value == '\0') {
            throw Error(ErrorKind::config, "environment variable " + o.token_env + " is empty",
                        "export the campaign token in it");
        }
        token = value;
    } else if (!o.token_file.empty()) {
        token = read_secret_file(o.token_file);
    } else if (!o.token.empty()) {
        token = o.token;
    } else if (const char* env = std::getenv("CRMSYNC_TOKEN"); env != nullptr && *env != '\0') {
        token = env;
    }
    if (token.empty()) {
        throw Error(ErrorKind::config, "no API token given",
                    "set CRMSYNC_TOKEN, or use --token-env VAR or --token-file PATH");
    }
    util::register_secret(token);
    return token;
}

} // namespace crmsync::cli
