#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/runner.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/pipeline/summary.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::callcenter {

enum class AuthMode { basic, apikey, bearer };

std::string to_string(AuthMode mode);

struct SyncOptions {
    std::string base_url; // "https://host/api/v1"
    std::string call_center;
    AuthMode auth = AuthMode::basic;
    std::string user;   // basic
    std::string secret; // password, API key or token; registered as a secret by the caller
    std::vector<std::string> streams; // empty: all, in all_streams() order
    std::string table_prefix = "cc_";
    std::optional<SystemTime> since;
    std::chrono::milliseconds lookback{std::chrono::minutes(5)};
    bool full_refresh = false; // ignore the stored positions (they are rewritten at the end)
    int page_size = 500;
    bool verify_tls = true;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    http::RetryPolicy retry;
    bool show_progress = true;
};

// The job's key in crmsync_state (or the outbox) and for its lock: one per call center and
// table prefix, so many call centers share one set of tables with a checkpoint each.
std::string job_key(const SyncOptions& options);

// One cheap authenticated read of the contract (the first role), for crmsync doctor.
http::HttpRequest probe_request(const SyncOptions& options);

// One run: prepares the tables in `sink`, then reads each stream through the contract's
// adapter (keyset paging on (updatedAt, _id) from the stored position minus the lookback, up to
// an upper bound frozen at the start). A stream's position moves only on its last page, in the
// transaction holding that page's rows. The caller holds the sink's lock. Throws
// crmsync::Error (credentials refused: auth, naming the call center and the auth mode); rows
// committed before stay, positions of unfinished streams do not move.
pipeline::Ending run_sync(const SyncOptions& options, pipeline::Sink& sink,
                          pipeline::RunSummary& summary);

} // namespace crmsync::drivers::callcenter
