#pragma once

#include "lib/core/clock.hpp"
#include "lib/core/log.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/job.hpp"
#include "lib/pipeline/summary.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::cli {

// Options every subcommand that runs a job shares: secrets, logging, summary.
struct CommonOptions {
    std::string token;       // --ct (dbsync2); prefer the ones below
    std::string token_env;   // --token-env VAR
    std::string token_file;  // --token-file PATH
    int log_level = 4;       // --l
    bool log_stdout = false; // --v
    std::string log_dir;     // --log-dir
    std::string summary_json;
    bool insecure = false; // deprecated: every insecure_* below at once
    bool insecure_api = false;
    bool insecure_webhook = false;
    bool insecure_oauth = false;
    bool insecure_notify = false;
    std::string max_runtime = "55m";
    int retry_attempts = 8;
    std::string retry_base = "500ms";
    // Error notifications (lib/notify): one notice per error episode, one when it ends.
    std::string notify_smtp;            // smtp[s]://user@host:port; password CRMSYNC_SMTP_PASSWORD
    std::vector<std::string> notify_to; // repeatable, or comma separated
    std::string notify_from;
    std::string notify_url;   // a JSON POST per notice
    std::string notify_state; // where episodes live; default: the command's state file
};

// Which credential flags a command takes besides the common ones.
enum class TokenFlags {
    api_token, // --ct, --token-env, --token-file (the Dialfire campaign token)
    none,      // the command has credentials of its own (a portal URL, OAuth accounts...)
};
void add_common(CLI::App& app, CommonOptions& options,
                TokenFlags token_flags = TokenFlags::api_token);

// The kinds of endpoint whose TLS verification can be switched off one by one.
enum class Endpoint {
    api,     // the source's API (Dialfire, Bitrix24 portal, call center)
    webhook, // the receiver of deliveries (webhook command, an http(s) --url)
    oauth,   // OAuth token endpoints
    notify,  // --notify-url and --notify-smtp
};

// Declares --insecure-<endpoint> for each of `endpoints` a command talks to (add_common
// declares --insecure-notify and the deprecated --insecure itself).
void add_insecure_flags(CLI::App& app, CommonOptions& options,
                        std::initializer_list<Endpoint> endpoints);

// Whether TLS certificates of `endpoint` are verified. When not (its --insecure-* flag or the
// deprecated --insecure), prints one `crmsync: warning:` line naming what is not verified, once
// per endpoint and process.
bool verify_tls(const CommonOptions& options, Endpoint endpoint);

// Refuses (Error(usage), exit 2) an http:// `url` for an endpoint that receives a credential
// (`what`: "the API URL, which receives the token") unless its host is loopback; `flag` names
// the option in the message. Anything else passes (parse errors are parse_http_url's).
void require_tls_for_credentials(const std::string& url, const std::string& what,
                                 const std::string& flag);

// "2024-02-01" or "2024-02-01T15:04:05" (UTC) for `flag`; empty gives nullopt. Throws
// Error(usage) naming the flag.
std::optional<SystemTime> parse_time_option(const std::string& text, const char* flag);
// "90s", "10m", "2h", "1d"; throws Error(usage) naming the flag.
std::chrono::milliseconds parse_duration_option(const std::string& text, const char* flag);
// The run's end by --max-runtime, counted from now (nullopt for 0 = none). Throws Error(usage).
std::optional<std::chrono::steady_clock::time_point> run_deadline(const CommonOptions& options);
// The HTTP retry policy of --retry-attempts and --retry-base. Throws Error(usage).
http::RetryPolicy retry_policy(const CommonOptions& options);

// Checks a --table-prefix (letters, digits, '_'); throws Error(usage) with `example` as hint.
void check_table_prefix(const std::string& prefix, const std::string& example);
// Checks a Dialfire campaign ID (letters, digits, '_', '-'); throws Error(usage).
void check_campaign(const std::string& campaign);

// The API token from --ct, --token-env, --token-file, CRMSYNC_TOKEN or DBSYNC_CT, registered
// as a secret. Throws Error(config) when none is given.
std::string resolve_token(const CommonOptions& options);

// {dir}/{job}_{mode}_{YYYYMMDDhhmmss}.log under --log-dir, /var/log/crmsync or
// ~/.crmsync/logs, whichever is first usable. Throws Error(io) when none is.
std::string log_file_path(const CommonOptions& options, const std::string& job,
                          const std::string& mode);

void init_logging(const CommonOptions& options, const std::string& job, const std::string& mode);

// What run_job needs from the common flags: the log file ({log_job}_{command}_{ts}.log, see
// log_file_path; none when log_job is empty), --summary-json and the notice channels, whose
// error episodes live in --notify-state, else `state_path` (the command's own state file, ""
// if it has none), else the default state file. Throws Error(io) when no log directory is
// usable.
pipeline::JobSettings job_settings(const CommonOptions& options, const std::string& command,
                                   const std::string& job, const std::string& log_job,
                                   const std::string& notify_job, const std::string& state_path);

// The environment variable holding the password of --notify-smtp's user.
inline constexpr const char* k_smtp_password_env = "CRMSYNC_SMTP_PASSWORD";

} // namespace crmsync::cli
