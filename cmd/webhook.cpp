#include "cmd/webhook.hpp"

#include "cmd/sinks.hpp"
#include "drivers/dialfire/webhook_source.hpp"
#include "drivers/webhook/outbox_sink.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/state/outbox.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <nlohmann/json.hpp>

namespace crmsync::cli {
namespace {

// dbsync2's body for a row of drivers::dialfire::transaction_deliveries(): {"contact",
// "transaction", "state"}, keyed by the transaction, in fired order per contact; a change of
// the transaction's content (not the contact's) makes it "updated".
std::optional<drivers::webhook::Message> transaction_message(const sql::Table& /*table*/,
                                                             const sql::Row& row) {
    if (row.size() < 5 || !row[0] || !row[1] || !row[2] || !row[3] || !row[4]) {
        return std::nullopt;
    }
    drivers::webhook::Message m;
    m.key = *row[0];
    m.group_key = *row[1];
    m.order_key = *row[2];
    // Both are JSON text written by sql::to_json_text (transaction_deliveries).
    m.fields = {{"contact", *row[3]}, {"transaction", *row[4]}};
    m.content = *row[4];
    return m;
}

} // namespace

// The key stays what earlier versions stored (checkpoint, outbox, delivery ids and ledger hang
// on it); what is shown of it is redacted instead (status, and register_url_secrets for logs
// and notices).
std::string webhook_job_key(const std::string& campaign, const std::string& url) {
    return "webhook:" + campaign + ":" + util::redact_url(url);
}

void add_webhook(CLI::App& app, WebhookOptions& o) {
    o.common.max_runtime = "50s";
    add_common(app, o.common);
    add_insecure_flags(app, o.common, {Endpoint::api, Endpoint::webhook});
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
    app.add_option("--max-attempts", o.max_attempts,
                   "Attempts before a delivery is dead (0 = no limit: --max-age decides)")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str();
    app.add_option("--max-age", o.max_age,
                   "A delivery still failing this long after it was queued is dead (72h, 3d...)")
        ->capture_default_str();
    // Hidden, for tests: the outbox's wall clock starts at this UTC time.
    app.add_option("--now", o.now, "")->group("");
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
    util::register_url_secrets(o.url);
    util::parse_http_url(o.api_url);
    require_tls_for_credentials(o.api_url, "the API URL, which receives the token", "--api-url");
    drivers::dialfire::WebhookSourceOptions source;
    source.api.campaign = o.campaign;
    source.api.base_url = o.api_url;
    source.api.verify_tls = verify_tls(o.common, Endpoint::api);
    source.filter = drivers::dialfire::TransactionFilter::parse(o.filter_mode, o.filter_prefixes);
    source.filter_mode = o.filter_mode;
    source.task_prefixes = o.filter_prefixes;
    source.workers = o.workers;
    source.lookback = parse_duration_option(o.lookback, "--lookback");
    source.since = parse_time_option(o.since, "--since");
    source.retry = retry_policy(o.common);

    drivers::webhook::SenderOptions sender;
    sender.url = o.url;
    sender.in_flight = o.in_flight;
    sender.rate = o.rate;
    sender.burst = o.burst > 0 ? o.burst : 2 * o.rate;
    sender.retry = delivery_retry_rules(o.common, o.max_age, "--max-age", o.max_attempts);
    sender.clock = delivery_clock(o.now, "--now");
    sender.timeout = parse_duration_option(o.timeout, "--timeout");
    sender.verify_tls = verify_tls(o.common, Endpoint::webhook);
    source.deadline = sender.deadline = run_deadline(o.common);
    sender.secret = read_signing_secret(o.secret_env, o.secret_file);
    if (!sender.secret.empty()) {
        require_tls_for_credentials(o.url, "signed deliveries", "--url");
    }
    source.api.token = resolve_token(o.common);
    const std::string state_path =
        o.state_path.empty() ? state::default_state_path() : o.state_path;
    const std::string job = webhook_job_key(o.campaign, o.url);
    const auto settings =
        job_settings(o.common, "webhook", o.campaign, o.campaign, job, state_path);
    return pipeline::run_job(settings, [&](pipeline::JobRun& run) {
        drivers::webhook::OutboxSink sink(std::make_unique<state::StateStore>(state_path), job,
                                          sender, run.summary(), transaction_message);
        run.require_lock(sink.lock(), "the webhook of campaign " + o.campaign);
        if (o.replay_dead) {
            log::info("queued {} dead deliveries again",
                      state::Outbox(sink.store(), sender.clock).replay_dead(job));
        }
        pipeline::sync_and_finish(run, sink, [&] {
            return drivers::dialfire::enqueue_transactions(source, sink, run.summary());
        });
    });
}

} // namespace crmsync::cli
