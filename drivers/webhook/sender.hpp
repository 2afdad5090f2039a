#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/state/outbox.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace crmsync::drivers::webhook {

// When a delivery whose attempt failed is tried again, and when it is given up. Attempts are
// spread by exponential backoff with full jitter (http::RetryPolicy::backoff) up to
// `max_delay` apart, across runs; a delivery dies only on a non-retryable answer (4xx other
// than 408/425/429, or a transport error that would repeat) or, at a failure, when it is
// older than `max_age` (its age counts from the enqueue), or after `max_attempts` if set.
struct DeliveryRetryRules {
    std::chrono::milliseconds base_delay{500};
    std::chrono::milliseconds max_delay{std::chrono::hours(1)};
    // A Retry-After asking longer is cut to this (the delivery is not given up for it).
    std::chrono::milliseconds max_retry_after{std::chrono::hours(1)};
    std::chrono::milliseconds max_age{std::chrono::hours(72)};
    int max_attempts = 0; // 0 = no limit by count
};

struct FailedAttempt {
    int attempt = 1;             // the number of the attempt that failed, 1 for the first
    bool retryable = true;       // the answer (or transport error) allows another attempt
    std::int64_t created_ms = 0; // the delivery's enqueue, unix ms
    std::optional<std::chrono::milliseconds> retry_after; // what a 429/503 asked for
    std::string error;                                    // what went wrong, for the reason
};

struct NextStep {
    bool dead = false;
    std::int64_t next_attempt_ms = 0; // unix ms, when not dead
    std::string reason;               // why it is dead
};

// The step after `failed` at wall time `now_ms`. Never overflows, whatever the inputs.
NextStep after_failure(const DeliveryRetryRules& rules, const FailedAttempt& failed,
                       std::int64_t now_ms);

struct SenderOptions {
    std::string url;
    std::string secret;        // empty: no webhook-signature header
    std::size_t in_flight = 4; // --w
    // Threads that drive the connections (http::ParallelMultiClient's lanes); 0: one per core,
    // each with at least 8 of the `in_flight` connections.
    std::size_t lanes = 0;
    double rate = 5.0;        // --wr, requests per second; 0 = unlimited
    double burst = 10.0;      // --wb
    DeliveryRetryRules retry; // --retry-base, --max-age, --max-attempts
    std::chrono::milliseconds timeout{30'000};
    bool verify_tls = true;
    // A receiver's answer is read up to this size; more ends the attempt (see finished()).
    std::size_t max_response_bytes = std::size_t{1} << 20;
    std::optional<std::chrono::steady_clock::time_point> deadline; // no attempt starts after it
    // Wall time for due times, ages, stamps and webhook-timestamp (shifted by tests: --now).
    Clock clock;
};

struct SendStats {
    long attempts = 0;
    long delivered = 0;
    long retried = 0; // attempts that will be tried again
    long died = 0;    // deliveries given up in this run
};

// Delivers a job's pending outbox entries: one POST each, Standard Webhooks headers, up to
// `in_flight` at once on keep-alive connections, paced by a token bucket, deliveries of one
// group (contact) strictly in order. 2xx -> delivered; 408/425/429/5xx and network errors ->
// retried by options.retry (after_failure; Retry-After honoured; attempts survive across
// runs); other 4xx -> dead at once with the answer saved. An answer over max_response_bytes
// is not read further and counts by its status (the error says it was too large). Returns
// when nothing is due before the deadline.
SendStats deliver_pending(state::StateStore& store, const std::string& job,
                          const SenderOptions& options);

} // namespace crmsync::drivers::webhook
