#include "cmd/db_sync.hpp"

#include "cmd/sinks.hpp"
#include "drivers/dialfire/sync.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <cctype>
#include <chrono>

namespace crmsync::cli {
namespace {

// Everything is checked here, before any network or database I/O.
drivers::dialfire::SyncOptions resolve(const DbSyncOptions& o) {
    drivers::dialfire::SyncOptions s;
    check_campaign(o.campaign);
    check_table_prefix(o.table_prefix, "dfire_");
    s.api.campaign = o.campaign;
    util::parse_http_url(o.api_url);
    require_tls_for_credentials(o.api_url, "the API URL, which receives the token", "--api-url");
    s.api.base_url = o.api_url;
    s.api.verify_tls = verify_tls(o.common, Endpoint::api);
    s.table_prefix = o.table_prefix;
    s.max_custom_fields = o.max_custom_fields;
    s.lookback = parse_duration_option(o.lookback, "--lookback");
    s.since = parse_time_option(o.since, "--since");
    s.until = parse_time_option(o.until, "--until");
    if (s.since && s.until && *s.until < *s.since) {
        throw Error(ErrorKind::usage, "--until is before --since", "swap the two dates");
    }
    s.full_refresh = o.full_refresh;
    s.filter = drivers::dialfire::TransactionFilter::parse(o.filter_mode, o.filter_prefixes);
    s.filter.until = s.until;
    s.workers = o.workers;
    s.batch_rows = o.batch_rows;
    s.mode = o.mode == "init"     ? drivers::dialfire::SyncMode::initial
             : o.mode == "update" ? drivers::dialfire::SyncMode::recent
                                  : drivers::dialfire::SyncMode::incremental;
    s.deadline = run_deadline(o.common);
    s.retry = retry_policy(o.common);
    return s;
}

} // namespace

void add_db_sync(CLI::App& app, DbSyncOptions& o) {
    add_common(app, o.common);
    add_insecure_flags(app, o.common, {Endpoint::api, Endpoint::webhook});
    app.add_option("--campaign,--c", o.campaign, "Dialfire campaign ID")->envname("DBSYNC_C");
    app.add_option("--url", o.url,
                   "Target: sqlite://FILE, postgres://, mysql://, "
                   "sqlserver://USER:PW@HOST:1433/[INSTANCE/]DB, or https:// (one POST per "
                   "changed row, through the durable outbox)")
        ->envname("DBSYNC_URL")
        ->capture_default_str();
    app.add_option("--api-url", o.api_url, "Dialfire API base URL (an emulator, a proxy)")
        ->envname("CRMSYNC_API_URL")
        ->capture_default_str();
    app.add_option("--table-prefix,--tp", o.table_prefix, "Prefix of the table names")
        ->envname("DBSYNC_TP")
        ->capture_default_str();
    app.add_option("--since,--s", o.since, "Start at this UTC date/time instead of the checkpoint")
        ->envname("DBSYNC_S");
    app.add_option("--until", o.until,
                   "Stop at this UTC date/time (a backfill; keeps the checkpoint)");
    app.add_option("--lookback", o.lookback, "Overlap with the previous run")
        ->capture_default_str();
    app.add_flag("--full-refresh", o.full_refresh,
                 "Fetch every contact again, ignoring the checkpoint and stored md5s");
    app.add_option("--fm", o.filter_mode, "Filter: updates_only or hi_updates_only")
        ->check(CLI::IsMember({"", "updates_only", "hi_updates_only"}))
        ->envname("DBSYNC_FM");
    app.add_option("--fp", o.filter_prefixes, "Task prefixes, comma separated, e.g. 'fc_,qc_'")
        ->envname("DBSYNC_FP");
    app.add_option("--max-custom-fields", o.max_custom_fields,
                   "Custom fields stored as columns (0 = all; the rest stay in _raw)")
        ->capture_default_str();
    app.add_option("--workers,--w", o.workers, "Contact requests in flight")
        ->check(CLI::Range(1, 64))
        ->envname("DBSYNC_W")
        ->capture_default_str();
    app.add_option("--d", o.db_connections,
                   "dbsync2's DB connection count (accepted; a run writes through one connection)")
        ->envname("DBSYNC_D");
    app.add_option("--batch-rows", o.batch_rows, "Rows per database transaction")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--mode", o.mode,
                   "sync (default), init (db_init: all) or update (db_update: 7 days)")
        ->check(CLI::IsMember({"sync", "init", "update"}))
        ->capture_default_str();
    app.add_flag("--p", o.profiling, "dbsync2's profiling switch (accepted, ignored)");
    add_http_target_options(app, o.http);
}

int run_db_sync(const DbSyncOptions& o) {
    auto sync = resolve(o);
    const SinkChoice target(o.url, o.common, o.http);
    sync.api.token = resolve_token(o.common);
    const std::string mode_name = o.mode == "sync" ? "db_sync" : "db_" + o.mode;
    const std::string notify_job =
        o.campaign + " into " + util::redact_url(o.url) + " (tables " + o.table_prefix + "*)";
    const auto settings = job_settings(o.common, mode_name, o.campaign, o.campaign, notify_job, "");
    return pipeline::run_job(settings, [&](pipeline::JobRun& run) {
        log::info("crmsync {} {} campaign {} into {}", CRMSYNC_VERSION, mode_name, o.campaign,
                  util::redact_url(o.url));
        auto sink = target.open(drivers::dialfire::job_key(sync), run.summary(), sync.deadline);
        run.require_lock(sink->lock(), "campaign " + o.campaign + " into " + sink->description());
        pipeline::sync_and_finish(
            run, *sink, [&] { return drivers::dialfire::run_sync(sync, *sink, run.summary()); });
    });
}

} // namespace crmsync::cli
