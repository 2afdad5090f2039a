#pragma once

#include "lib/core/clock.hpp"
#include "lib/core/error.hpp"
#include "lib/http/retry_policy.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace crmsync::http {

// The bookkeeping of one request's attempts, for API clients that judge each answer in their
// own terms (Google People, Zoho Creator, Pipedrive): stop and time budget checks, attempts
// bounded by the policy, a throttled answer waited out without counting as an attempt (but
// only so many times in a row), and the wait before the next attempt. The client's loop:
//
//   AttemptLoop attempts(policy, clock, deadline, what, wording);
//   for (;;) {
//       attempts.begin();                 // throws on a stop signal or a spent time budget
//       ...send; return what was asked for...
//       attempts.failed(problem);         // or: attempts.throttled(problem, retry_after);
//       attempts.pause(may_repeat);       // throws when no further attempt may be made
//   }
//
// Every throw is a crmsync::Error: interrupted on a stop signal, connection otherwise.
class AttemptLoop {
public:
    struct Wording {
        std::string service;        // "Google": in messages ("waiting for Google")
        std::string down_hint;      // the attempts ran out
        std::string unclear_hint;   // a request that may have been carried out cannot be repeated
        std::string throttled_hint; // the service keeps throttling, or asks for a long wait
        int max_throttled_in_a_row = 20;
    };

    AttemptLoop(const RetryPolicy& policy, const Clock& clock,
                std::optional<std::chrono::steady_clock::time_point> deadline, std::string what,
                Wording wording);

    // Before each attempt: throws on a stop signal or once the deadline has passed.
    void begin();
    // The attempt ended without the answer asked for; `problem` says how ("HTTP 503"). The
    // next attempt waits `retry_after` (the server's Retry-After) when given, else a backoff;
    // throws when the server asks for more than the policy's max_retry_after.
    void failed(std::string problem,
                std::optional<std::chrono::milliseconds> retry_after = std::nullopt);
    // A 2xx answer whose body is cut off or not JSON: a counted failure. When every attempt
    // ends this way, pause() throws a data error instead of a connection error, since the
    // service (or a proxy in between) answers something else than JSON.
    void damaged_body(const HttpResponse& response);
    // The service refused for its rate limit without doing anything: the attempt does not count,
    // and the next one waits `retry_after` (its Retry-After), else a backoff. Throws when it asks
    // for more than the policy's max_retry_after, or throttled max_throttled_in_a_row times in
    // a row.
    void throttled(std::string problem, std::optional<std::chrono::milliseconds> retry_after);
    // The attempt just made does not count, and the next one may start at once (a token was
    // renewed after a 401).
    void repeat_now() { --m_attempts; }
    // Waits before the next attempt. Throws when `may_repeat` is false after a failure (the
    // request may have been carried out, and a repeat could do it twice; a throttled request
    // is always repeated), when the attempts are spent, or when the wait would pass the deadline.
    void pause(bool may_repeat = true);

    const std::string& last_problem() const { return m_last_problem; }
    // The attempt just made was throttled (not counted).
    bool last_was_throttled() const { return m_last_throttled; }
    // Attempts counted so far (throttled ones left out).
    int attempts() const { return m_attempts; }
    // No attempt is left after the one just made, unless it was throttled.
    bool spent() const { return !m_last_throttled && m_attempts >= m_policy.max_attempts; }

private:
    Error too_long_a_wait(std::chrono::milliseconds wait) const;

    const RetryPolicy& m_policy;
    const Clock& m_clock;
    std::optional<std::chrono::steady_clock::time_point> m_deadline;
    std::string m_what;
    Wording m_wording;
    int m_attempts = 0;
    int m_throttled_in_a_row = 0;
    int m_damaged = 0;
    bool m_last_throttled = false;
    std::optional<std::chrono::milliseconds> m_wait; // the server's ask, for the next pause()
    std::string m_last_problem;
};

} // namespace crmsync::http
