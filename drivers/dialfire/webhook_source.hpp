#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "drivers/dialfire/transform.hpp"
#include "lib/state/state_store.hpp"

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
};

struct EnqueueStats {
    long events = 0;   // entries of the transaction index read
    long contacts = 0; // contacts fetched
    long queued_new = 0;
    long queued_updated = 0;
    long unchanged = 0; // transactions already delivered with the same content
    long filtered = 0;
    long retries = 0;
};

// Reads the transaction index (E4) from `checkpoint - lookback` (or --since; on the first run
// the last `lookback` only) up to the server's now, fetches the contacts it names, and puts one
// delivery per new or changed transaction into the outbox: body {"contact" (without
// $task_log), "transaction", "state": "new"|"updated"}, id stable per transaction content.
// The ledger decides new / updated / unchanged. Everything is enqueued before the checkpoint
// moves (same SQLite transaction as the last batch). Throws crmsync::Error when the source
// fails; what was enqueued stays, the checkpoint does not move.
EnqueueStats enqueue_transactions(const WebhookSourceOptions& options, state::StateStore& store,
                                  const std::string& job);

} // namespace crmsync::drivers::dialfire
