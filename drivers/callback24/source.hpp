#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/source.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::callback24 {

inline constexpr const char* k_default_url = "https://panel.callback24.io";

struct LeadSourceOptions {
    std::string base_url = k_default_url; // the API lives under {base_url}/api/v1
    std::string token;                    // X-API-TOKEN; registered as a secret by the caller
    std::vector<std::string> services;    // service_name values whose calls are leads
    std::optional<SystemTime> since;      // --since: start here instead of the checkpoint
    std::chrono::milliseconds lookback{std::chrono::minutes(10)};
    bool verify_tls = true;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    const Clock* clock = &Clock::real();
    // A window longer than this is read in slices of it, each committed with its checkpoint.
    std::chrono::milliseconds slice{std::chrono::hours(24)};
    // A first run without --since reads this far back.
    std::chrono::milliseconds first_run{std::chrono::hours(24)};
};

// Callback24 call-back requests as leads. The checkpoint is {"since": "<ISO-8601 UTC>"}: the
// end of the last window read. open() fixes the window: from --since, else the checkpoint
// minus the lookback (a first run: `first_run` back), to now; next_page() reads it in slices
// (GET /api/v1/phoneCalls/history?date_from&date_to with X-API-TOKEN), keeps the calls of the
// named services, asks getCallInfo?call_id= for each one's page URL and UTM parameters, and
// returns them as lead records ({"source": "callback24", "id", "created_at", "name": null,
// "email": null, "phone", "message": null, "details": {service_name, page_url, utm, ...}})
// with the slice's end as checkpoint and {"window": "from/to"} as page context. A call it
// cannot read is a record with "error". Throws crmsync::Error (auth for a refused token).
std::unique_ptr<pipeline::Source> make_lead_source(const LeadSourceOptions& options);

} // namespace crmsync::drivers::callback24
