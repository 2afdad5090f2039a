#include "cmd/sinks.hpp"

#include "cmd/targets.hpp"
#include "lib/core/error.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <cstdlib>
#include <fstream>

namespace crmsync::cli {

void add_http_target_options(CLI::App& app, HttpTargetOptions& o) {
    app.add_option("--state", o.state_path,
                   "State file of an http(s) target's outbox (default "
                   "$XDG_STATE_HOME/crmsync/state.db)");
    app.add_option("--webhook-in-flight", o.in_flight, "http(s) target: deliveries in flight")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    app.add_option("--webhook-rate", o.rate, "http(s) target: deliveries per second (0 = no limit)")
        ->check(CLI::Range(0.0, 100000.0))
        ->capture_default_str();
    app.add_option("--webhook-max-attempts", o.max_attempts,
                   "http(s) target: attempts before a delivery is dead (0 = no limit)")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str();
    app.add_option("--webhook-max-age", o.max_age,
                   "http(s) target: a delivery still failing after this long is dead")
        ->capture_default_str();
    app.add_option("--webhook-timeout", o.timeout, "http(s) target: time one delivery may take")
        ->capture_default_str();
    app.add_option("--webhook-secret-env", o.secret_env,
                   "http(s) target: environment variable with the signing secret");
    app.add_option("--webhook-secret-file", o.secret_file,
                   "http(s) target: file with the signing secret");
}

bool is_http_target(const std::string& url) {
    return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

drivers::webhook::DeliveryRetryRules delivery_retry_rules(const CommonOptions& common,
                                                          const std::string& max_age,
                                                          const char* age_flag, int max_attempts) {
    drivers::webhook::DeliveryRetryRules rules;
    rules.base_delay = parse_duration_option(common.retry_base, "--retry-base");
    rules.max_age = parse_duration_option(max_age, age_flag);
    if (rules.max_age <= std::chrono::milliseconds(0)) {
        throw Error(ErrorKind::usage, std::string(age_flag) + " must be longer than 0",
                    "write e.g. 72h, 30m or 3d");
    }
    rules.max_attempts = max_attempts;
    return rules;
}

Clock delivery_clock(const std::string& now, const char* flag) {
    Clock clock;
    const auto start = parse_time_option(now, flag);
    if (!start) {
        return clock;
    }
    const auto steady_start = std::chrono::steady_clock::now();
    clock.wall_now = [start = *start, steady_start] {
        return start + std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - steady_start);
    };
    return clock;
}

std::string read_signing_secret(const std::string& env, const std::string& file) {
    std::string secret;
    if (!env.empty()) {
        const char* value = std::getenv(env.c_str());
        if (value == nullptr || *value == '\0') {
            throw Error(ErrorKind::config, "environment variable " + env + " is empty",
                        "export the signing secret in it");
        }
        secret = value;
    } else if (!file.empty()) {
        std::ifstream in(file);
        if (!in || !std::getline(in, secret) || secret.empty()) {
            throw Error(ErrorKind::config, "cannot read a secret from " + file,
                        "the file must hold the signing secret on its first line");
        }
    }
    util::register_secret(secret);
    return secret;
}

SinkChoice::SinkChoice(const std::string& url, const CommonOptions& common,
                       const HttpTargetOptions& http)
    : m_url(url) {
    if (!is_http_target(url)) {
        m_database = parse_target(url);
        return;
    }
    util::parse_http_url(url);
    util::register_url_secrets(url);
    drivers::webhook::SenderOptions sender;
    sender.url = url;
    sender.in_flight = http.in_flight;
    sender.rate = http.rate;
    sender.burst = 2 * http.rate;
    sender.retry =
        delivery_retry_rules(common, http.max_age, "--webhook-max-age", http.max_attempts);
    sender.timeout = parse_duration_option(http.timeout, "--webhook-timeout");
    sender.verify_tls = verify_tls(common, Endpoint::webhook);
    sender.secret = read_signing_secret(http.secret_env, http.secret_file);
    if (!sender.secret.empty()) {
        require_tls_for_credentials(url, "signed deliveries", "--url");
    }
    m_http = std::move(sender);
    m_state_path = http.state_path.empty() ? state::default_state_path() : http.state_path;
}

std::string SinkChoice::state_path() const { return m_http ? m_state_path : ""; }

std::unique_ptr<pipeline::Sink>
SinkChoice::open(const std::string& job_key, pipeline::RunSummary& summary,
                 const std::optional<std::chrono::steady_clock::time_point>& deadline,
                 drivers::webhook::MessageFormat format) const {
    if (m_database) {
        auto database = open_target(*m_database);
        // The run's JSON texts (_raw) list members as the target stores them.
        sql::set_json_member_order(database->dialect().json_member_order());
        return std::make_unique<pipeline::TargetWriter>(std::move(database), job_key, summary);
    }
    auto sender = *m_http;
    sender.deadline = deadline;
    return std::make_unique<drivers::webhook::OutboxSink>(
        std::make_unique<state::StateStore>(m_state_path), job_key, std::move(sender), summary,
        std::move(format));
}

} // namespace crmsync::cli
