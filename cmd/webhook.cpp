#include "cmd/webhook.hpp"

#include "drivers/dialfire/webhook_source.hpp"
#include "drivers/webhook/sender.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/state/outbox.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

namespace crmsync::cli {
namespace {

std::string read_secret(const WebhookOptions& o) {
    if (!o.secret_env.empty()) {
        const char* value = std::getenv(o.secret_env.c_str());
        if (value == nullptr || *value == '\0') {
            throw Error(ErrorKind::config, "environment variable " + o.secret_env + " is empty",
                        "export the signing secret in it");
        }
        return value;
    }
    if (!o.secret_file.empty()) {
        std::ifstream in(o.secret_file);
        std::string secret;
        if (!in || !std::getline(in, secret) || secret.empty()) {
            throw Error(ErrorKind::config, "cannot read a secret from " + o.secret_file,
                        "the file must hold the signing secret on its first line");
        }
        return secret;
    }
    return {};
}

} // namespace

std::string webhook_job_key(const std::string& campaign, const std::string& url) {
    return "webhook:" + campaign + ":" + util::redact_url(url);
}

void add_webhook(CLI::App& app, WebhookOptions& o) {
    o.common.max_runtime = "50s";
    add_common(app, o.common);
    app.add_option("--campaign,--c", o.campaign, "Dialfire campaign ID")->envname("DBSYNC_C");
    app.add_option("--url", o.url, "The web service receiving one POST per transaction")
        ->envname("DBSYNC_URL");
    app.add_option("--api-url", o.api_url, "Dialfire API base URL")
        ->envname("CRMSYNC_API_URL")
        ->capture_default_str();
    app.add_option("--since,--s", o.since, "Start at this UTC date/time instead of the checkpoint")
        ->envname("DBSYNC_S");
    app.add_option("--lookback", o.lookback, "Overlap with the previous run")
        ->capture_default_str();
    app.add_option("--fm", o.filter_mode, "Filter: updates_only or hi_updates_only")
        ->check(CLI::IsMember({"", "updates_only", "hi_updates_only"}))
        ->envname("DBSYNC_FM");
    app.add_option("--fp", o.filter_prefixes, "Task prefixes, comma separated")
        ->envname("DBSYNC_FP");
    app.add_option("--w,--in-flight", o.in_flight, "Deliveries in flight")
        ->check(CLI::Range(1, 256))
        ->envname("DBSYNC_W")
        ->capture_default_str();
    app.add_option("--wr", o.rate, "Deliveries per second (0 = no limit)")
        ->check(CLI::Range(0.0, 100000.0))
        ->envname("DBSYNC_WR")
        ->capture_default_str();
    app.add_option("--wb", o.burst, "Burst of the rate limit (0 = twice --wr)")
        ->check(CLI::Range(0.0, 100000.0))
        ->envname("DBSYNC_WB");
    app.add_option("--max-attempts", o.max_attempts, "Attempts before a delivery is dead")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    app.add_option("--timeout", o.timeout, "Time one delivery may take")->capture_default_str();
    app.add_option("--secret-env", o.secret_env,
                   "Environment variable with the signing secret (Standard Webhooks)");
    app.add_option("--secret-file", o.secret_file, "File with the signing secret");
    app.add_option("--state", o.state_path,
                   "State file (default $XDG_STATE_HOME/crmsync/state.db)");
    app.add_flag("--replay-dead", o.replay_dead, "Queue dead deliveries again before sending");
    app.add_option("--fetch-workers", o.workers, "Contact requests in flight to the API")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
}

int run_webhook(const WebhookOptions& o) {
    check_campaign(o.campaign);
    if (o.url.empty()) {
        throw Error(ErrorKind::usage, "no receiver URL given", "pass --url https://...");
    }
    util::parse_http_url(o.url);
    util::parse_http_url(o.api_url);
    drivers::dialfire::WebhookSourceOptions source;
    source.api.campaign = o.campaign;
    source.api.base_url = o.api_url;
    source.api.verify_tls = !o.common.insecure;
    source.filter = drivers::dialfire::TransactionFilter::parse(o.filter_mode, o.filter_prefixes);
    source.filter_mode = o.filter_mode;
    source.task_prefixes = o.filter_prefixes;
    source.workers = o.workers;
    source.lookback = parse_duration_option(o.lookback, "--lookback");
    source.since = parse_time_option(o.since, "--since");
    source.retry.max_attempts = o.common.retry_attempts;
    source.retry.base_delay = parse_duration_option(o.common.retry_base, "--retry-base");

    drivers::webhook::SenderOptions sender;
    sender.url = o.url;
    sender.in_flight = o.in_flight;
    sender.rate = o.rate;
    sender.burst = o.burst > 0 ? o.burst : 2 * o.rate;
    sender.max_attempts = o.max_attempts;
    sender.timeout = parse_duration_option(o.timeout, "--timeout");
    sender.verify_tls = !o.common.insecure;
    sender.backoff.base_delay = source.retry.base_delay;
    const auto budget = parse_duration_option(o.common.max_runtime, "--max-runtime");
    if (budget.count() > 0) {
        source.deadline = sender.deadline = std::chrono::steady_clock::now() + budget;
    }
    sender.secret = read_secret(o);
    util::register_secret(sender.secret);
    source.api.token = resolve_token(o.common);
    const std::string state_path =
        o.state_path.empty() ? state::default_state_path() : o.state_path;
    install_stop_signal_handlers();
    init_logging(o.common, o.campaign, "webhook");

    pipeline::RunSummary summary;
    summary.command = "webhook";
    summary.job = o.campaign;
    const auto started = std::chrono::steady_clock::now();
    const std::string job = webhook_job_key(o.campaign, o.url);
    state::StateStore store(state_path);
    if (!store.try_lock_job(job)) {
        throw Error(ErrorKind::locked,
                    "another run of the webhook of campaign " + o.campaign + " holds the lock",
                    "nothing to do: that run will finish the work");
    }
    state::Outbox outbox(store);
    if (o.replay_dead) {
        log::info("queued {} dead deliveries again", outbox.replay_dead(job));
    }
    std::optional<Error> source_error;
    drivers::dialfire::EnqueueStats queued;
    try {
        queued = drivers::dialfire::enqueue_transactions(source, store, job);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::interrupted) {
            throw;
        }
        // Deliveries already queued still go out; the source is retried by the next run.
        source_error = e;
        log::error("{}", e.describe());
    }
    const auto sent = drivers::webhook::deliver_pending(store, job, sender);
    const auto counts = outbox.counts(job);
    summary.fetched = queued.contacts;
    summary.filtered = queued.filtered;
    summary.retries = queued.retries + sent.retried;
    summary.counters = {{"events", queued.events},
                        {"new", queued.queued_new},
                        {"updated", queued.queued_updated},
                        {"unchanged", queued.unchanged},
                        {"delivered", sent.delivered},
                        {"pending", counts.pending},
                        {"dead", counts.dead}};
    summary.checkpoint = store.checkpoint(job).value_or("");
    summary.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    if (source_error) {
        summary.status = "failed";
        summary.error = source_error->describe();
        report(o.common, summary);
        notify_outcome(o.common, state_path, "webhook", job, false, summary.error);
        throw *source_error;
    }
    if (stop_requested()) {
        summary.status = "interrupted";
        report(o.common, summary);
        throw Error(ErrorKind::interrupted, "interrupted; finished deliveries were recorded",
                    "run again to continue");
    }
    const bool partial = counts.pending > 0 || counts.dead > 0;
    summary.status = partial ? "partial" : "ok";
    report(o.common, summary);
    // The receiver refusing every delivery is an error episode too; a run that had nothing due
    // (deliveries waiting for their backoff) says nothing either way.
    if (sent.delivered == 0 && sent.retried + sent.died > 0) {
        notify_outcome(o.common, state_path, "webhook", job, false,
                       fmt::format("the receiver took none of {} deliveries tried ({} pending, "
                                   "{} dead); see the log for its answers",
                                   sent.attempts, counts.pending, counts.dead));
    } else if (sent.delivered > 0 || counts.pending == 0) {
        notify_outcome(o.common, state_path, "webhook", job, true, "");
    }
    return partial ? k_exit_partial : k_exit_ok;
}

} // namespace crmsync::cli
