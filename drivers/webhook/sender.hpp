#pragma once

#include "lib/http/retry_policy.hpp"
#include "lib/state/outbox.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace crmsync::drivers::webhook {

struct SenderOptions {
    std::string url;
    std::string secret;        // empty: no webhook-signature header
    std::size_t in_flight = 4; // --w
    double rate = 5.0;         // --wr, requests per second; 0 = unlimited
    double burst = 10.0;       // --wb
    int max_attempts = 10;     // --max-attempts: then the delivery is dead
    std::chrono::milliseconds timeout{30'000};
    bool verify_tls = true;
    http::RetryPolicy backoff; // delays between attempts (base, cap, Retry-After)
    std::optional<std::chrono::steady_clock::time_point> deadline; // no attempt starts after it
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
// retried after backoff (Retry-After honoured; attempts survive across runs); other 4xx ->
// dead at once with the answer saved. Returns when nothing is due before the deadline.
SendStats deliver_pending(state::StateStore& store, const std::string& job,
                          const SenderOptions& options);

} // namespace crmsync::drivers::webhook
