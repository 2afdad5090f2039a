#include "lib/http/attempt_loop.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"

#include <fmt/format.h>

#include <utility>

namespace crmsync::http {

AttemptLoop::AttemptLoop(const RetryPolicy& policy, const Clock& clock,
                         std::optional<std::chrono::steady_clock::time_point> deadline,
                         std::string what, Wording wording)
    : m_policy(policy), m_clock(clock), m_deadline(deadline), m_what(std::move(what)),
      m_wording(std::move(wording)) {}

void AttemptLoop::begin() {
    if (stop_requested()) {
        throw Error(ErrorKind::interrupted, "interrupted before " + m_what);
    }
    if (m_deadline && m_clock.steady_now() >= *m_deadline) {
        throw Error(ErrorKind::connection,
                    fmt::format("{}: time budget spent{}", m_what,
                                m_last_problem.empty() ? "" : "; last: " + m_last_problem),
                    "raise --max-runtime, or let the next run continue");
    }
    m_wait.reset();
    m_last_throttled = false;
    ++m_attempts;
}

void AttemptLoop::failed(std::string problem,
                         std::optional<std::chrono::milliseconds> retry_after) {
    m_last_problem = std::move(problem);
    m_throttled_in_a_row = 0;
    if (retry_after && *retry_after > m_policy.max_retry_after) {
        throw too_long_a_wait(*retry_after);
    }
    m_wait = retry_after;
}

void AttemptLoop::damaged_body(const HttpResponse& response) {
    ++m_damaged;
    failed(fmt::format("HTTP {} with a cut-off or non-JSON body ({} bytes)", response.status,
                       response.body.size()));
}

Error AttemptLoop::too_long_a_wait(std::chrono::milliseconds wait) const {
    return Error(ErrorKind::connection,
                 fmt::format("{}: {} asks to wait {} s before the next request ({})", m_what,
                             m_wording.service, wait.count() / 1000, m_last_problem),
                 m_wording.throttled_hint);
}

void AttemptLoop::throttled(std::string problem,
                            std::optional<std::chrono::milliseconds> retry_after) {
    m_last_problem = std::move(problem);
    m_last_throttled = true;
    --m_attempts;
    if (retry_after && *retry_after > m_policy.max_retry_after) {
        throw too_long_a_wait(*retry_after);
    }
    if (++m_throttled_in_a_row >= m_wording.max_throttled_in_a_row) {
        throw Error(ErrorKind::connection,
                    fmt::format("{}: {} refused it {} times in a row over its rate limit; last: {}",
                                m_what, m_wording.service, m_throttled_in_a_row, m_last_problem),
                    m_wording.throttled_hint);
    }
    m_wait = retry_after.value_or(m_policy.backoff(m_throttled_in_a_row));
}

void AttemptLoop::pause(bool may_repeat) {
    if (!m_last_throttled && !may_repeat) {
        throw Error(ErrorKind::connection,
                    fmt::format("{}: no clear answer ({})", m_what, m_last_problem),
                    m_wording.unclear_hint);
    }
    if (spent() && m_damaged == m_attempts) {
        throw Error(
            ErrorKind::data,
            fmt::format("{} answered {} time(s) with a body that is not JSON", m_what, m_damaged),
            "the service or a proxy in between answers something else than JSON; the "
            "next run retries");
    }
    if (spent()) {
        throw Error(ErrorKind::connection,
                    fmt::format("{} failed after {} attempts; last: {}", m_what, m_attempts,
                                m_last_problem),
                    m_wording.down_hint);
    }
    const auto delay = m_wait.value_or(m_policy.backoff(m_attempts));
    if (m_deadline && m_clock.steady_now() + delay > *m_deadline) {
        throw Error(
            ErrorKind::connection,
            fmt::format("{}: time budget spent while retrying; last: {}", m_what, m_last_problem),
            "raise --max-runtime, or let the next run continue");
    }
    log::info("{}: {}; trying again in {} ms", m_what, m_last_problem, delay.count());
    sleep_unless_stopped(m_clock, delay, m_wording.service);
}

} // namespace crmsync::http
