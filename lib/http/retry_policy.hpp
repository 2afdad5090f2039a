#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace crmsync::http {

// Exponential backoff with full jitter (delay = random(0, min(cap, base * 2^attempt))), bounded
// attempts, and Retry-After honoured on 429/503 (seconds or HTTP date; "0" falls back to the
// normal backoff, never a hot loop).
struct RetryPolicy {
    int max_attempts = 8;
    std::chrono::milliseconds base_delay{500};
    std::chrono::milliseconds max_delay{30'000};
    // A Retry-After longer than this is not waited for inside one run.
    std::chrono::milliseconds max_retry_after{300'000};

    static bool is_retryable_status(long status) noexcept;
    static bool is_retryable_transport(int curl_code) noexcept;

    // Random full-jitter delay before attempt number `attempt` + 1 (attempt counts from 1).
    std::chrono::milliseconds backoff(int attempt) const;

    // The longest wait retry_after() reports: a larger (or overflowing) ask is cut to it, so
    // callers may add it to a time without overflow. Callers cap it further for their purpose.
    static constexpr std::chrono::milliseconds k_longest_retry_after{24LL * 3600 * 1000};

    // The wait a Retry-After header asks for, measured against the response's Date header when
    // present (the server's clock), else against `now`. nullopt if absent, malformed, negative
    // or zero; at most k_longest_retry_after.
    static std::optional<std::chrono::milliseconds> retry_after(const HttpResponse& response,
                                                                SystemTime now);
};

// Counters shared by all workers of a run; they feed the summary line.
struct RetryStats {
    std::atomic<long> retries{0};
};

// What a caller says about a 2xx body: usable, or damaged in transit (truncated or malformed
// JSON), which is retried like a 5xx.
using BodyCheck = std::function<bool(const HttpResponse&)>;

struct RetryContext {
    const RetryPolicy& policy;
    RetryStats& stats;
    const Clock& clock = Clock::real();
    // The run's deadline: no attempt starts after it, and no wait reaches past it.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    std::string what; // "GET /api/campaigns/X/fields/list", for messages (never with secrets)
};

// Sends `request` until it gets a 2xx whose body passes `check`. Throws crmsync::Error:
// auth for 401/403, usage for other non-retryable 4xx ("check the URL"), connection after the
// attempts or the deadline run out, interrupted when a stop signal arrives.
HttpResponse send_with_retry(HttpClient& client, const HttpRequest& request,
                             const RetryContext& context, const BodyCheck& check = {});

} // namespace crmsync::http
