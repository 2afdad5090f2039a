#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "drivers/dialfire/transform.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/runner.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/pipeline/summary.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace crmsync::drivers::dialfire {

enum class SyncMode {
    incremental, // db_sync: from the stored checkpoint minus the lookback
    initial,     // dbsync2's db_init: everything (or from --since)
    recent,      // dbsync2's db_update: from --since, default the last 7 days
};

struct SyncOptions {
    ApiConfig api;
    SyncMode mode = SyncMode::incremental;
    std::string table_prefix = "dfire_";
    std::size_t max_custom_fields = 100;
    std::chrono::milliseconds lookback{10 * 60 * 1000};
    std::optional<SystemTime> since;
    std::optional<SystemTime> until;
    bool full_refresh = false; // ignore the checkpoint and the md5 skip
    TransactionFilter filter;
    std::size_t workers = 4;       // contact requests in flight
    std::size_t batch_rows = 5000; // rows per database transaction
    std::optional<std::chrono::steady_clock::time_point> deadline;
    http::RetryPolicy retry;
    bool show_progress = true;
};

// The job's key in crmsync_state and for its lock.
std::string job_key(const SyncOptions& options);

// One db_sync run (see README "How a run works") on the engine: fields -> schema (prepared in
// `sink`) -> checkpoint -> contacts listed since the checkpoint, unchanged md5s skipped (asked
// of the sink, unless its contacts table held no row at the start: an outbox knows none, so
// everything is fetched and its ledger decides), changed
// ones fetched in parallel -> inbound calls -> a last page moving the checkpoint to the server
// time the run started, committed with the last rows. The caller holds the sink's lock.
// Throws crmsync::Error; rows committed before the error stay, the checkpoint does not move.
pipeline::Ending run_sync(const SyncOptions& options, pipeline::Sink& sink,
                          pipeline::RunSummary& summary);

} // namespace crmsync::drivers::dialfire
