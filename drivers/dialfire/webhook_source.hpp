#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "drivers/dialfire/transform.hpp"
#include "lib/pipeline/runner.hpp"
#include "lib/pipeline/sink.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace crmsync::drivers::dialfire {

struct WebhookSourceOptions {
    ApiConfig api;
    TransactionFilter filter;
    std::string filter_mode;   // passed to the event index as type=update / hi=true
    std::string task_prefixes; // passed to the event index as tasks=
    std::size_t workers = 4;
    std::chrono::milliseconds lookback{10 * 60 * 1000};
    std::optional<SystemTime> since;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    bool show_progress = true;
};

// The pseudo-table of `crmsync webhook`: one row per candidate transaction, made into
// dbsync2's body by transaction_message (drivers/webhook/outbox_sink.hpp's MessageFormat).
// Columns: key, contact_id, fired, contact (JSON without $task_log), transaction (JSON).
const sql::Table& transaction_deliveries();

// The `crmsync webhook` job on the engine: reads the transaction index (E4) from
// `checkpoint - lookback` (or --since; on a first run the last `lookback` only) up to the
// server's now, fetches the contacts it names, and emits one row of transaction_deliveries()
// per transaction of the window, or delivered before (asked of the sink's ledger: its content
// may have changed, e.g. connection data added later), that passes the filter. The sink's
// ledger then decides new / updated / unchanged. The checkpoint moves to the server's now with
// the last rows. Counts "events" (index entries read) into the summary. Throws crmsync::Error.
pipeline::Ending enqueue_transactions(const WebhookSourceOptions& options, pipeline::Sink& sink,
                                      pipeline::RunSummary& summary);

} // namespace crmsync::drivers::dialfire
