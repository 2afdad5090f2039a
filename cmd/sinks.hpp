#pragma once

#include "cmd/common.hpp"
#include "drivers/webhook/outbox_sink.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/util/url.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>

namespace crmsync::cli {

// How deliveries go out when a command's --url is http(s)://: the webhook command's rules.
struct HttpTargetOptions {
    std::string state_path; // the outbox; "" = $XDG_STATE_HOME/crmsync/state.db
    std::size_t in_flight = 4;
    double rate = 0;      // deliveries per second, 0 = no limit
    int max_attempts = 0; // 0: a delivery dies by age, not by count
    std::string max_age = "72h";
    std::string timeout = "30s";
    std::string secret_env; // Standard Webhooks signing secret
    std::string secret_file;
};

// --state, --webhook-in-flight, --webhook-rate, --webhook-max-attempts, --webhook-max-age,
// --webhook-timeout, --webhook-secret-env, --webhook-secret-file: used only when --url is
// http(s)://.
void add_http_target_options(CLI::App& app, HttpTargetOptions& options);

bool is_http_target(const std::string& url);

// The retry rules of deliveries: --retry-base, a --max-age (a duration above zero, for
// `age_flag` in messages) and --max-attempts (0 = none). Throws Error(usage).
drivers::webhook::DeliveryRetryRules delivery_retry_rules(const CommonOptions& common,
                                                          const std::string& max_age,
                                                          const char* age_flag, int max_attempts);

// The wall clock deliveries run by: the real one for "", else one that reads `now` (a
// --now time, UTC) at this call and runs on from there. Tests use it to let a run happen
// "ten minutes later" without waiting. Throws Error(usage) naming `flag`.
Clock delivery_clock(const std::string& now, const char* flag);

// The signing secret from --secret-env VAR or --secret-file PATH ("" when neither is given),
// registered as a secret. Throws Error(config) when the variable is empty or the file
// unreadable.
std::string read_signing_secret(const std::string& env, const std::string& file);

// The sink a --url names, checked before any I/O (Error(usage)): a SQL URL -> the target's
// tables (pipeline::TargetWriter, connected on open), http(s):// -> the durable outbox in the
// state file with these delivery rules.
class SinkChoice {
public:
    SinkChoice(const std::string& url, const CommonOptions& common, const HttpTargetOptions& http);

    bool is_http() const { return m_http.has_value(); }
    // The state file holding the outbox (http) or "" (SQL).
    std::string state_path() const;
    // Connects and returns the sink for `job_key`; `format` makes the outbox's messages.
    std::unique_ptr<pipeline::Sink>
    open(const std::string& job_key, pipeline::RunSummary& summary,
         const std::optional<std::chrono::steady_clock::time_point>& deadline,
         drivers::webhook::MessageFormat format = drivers::webhook::row_message) const;

private:
    std::string m_url;
    std::optional<util::DatabaseUrl> m_database;
    std::optional<drivers::webhook::SenderOptions> m_http;
    std::string m_state_path;
};

} // namespace crmsync::cli
