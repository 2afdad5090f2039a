#include "drivers/webhook/sender.hpp"

#include "drivers/webhook/outbox_thread.hpp"
#include "drivers/webhook/signature.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/log.hpp"
#include "lib/http/parallel_multi_client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace crmsync::drivers::webhook {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t k_page = 2000;
// The delivery thread hands outcomes to the outbox thread this many at a time, or this often.
// What a crash can make the next run send again under the same webhook-id is what was not
// committed: fewer than k_uncommitted_limit (outbox_thread.hpp) + k_hand_over_every, plus
// those in flight (a batch grows past k_hand_over_every only by transfers that ended in the
// same poll).
constexpr std::size_t k_hand_over_every = 32;
constexpr milliseconds k_hand_over_interval{5};
// The longest a run sleeps for a retry to fall due (the in-run cap of http::RetryPolicy).
constexpr milliseconds k_longest_wait_in_run{300'000};

std::string snippet(const std::string& text) {
    return text.size() > 500 ? text.substr(0, 500) + "..." : text;
}

http::HttpClientOptions client_options(const SenderOptions& options) {
    http::HttpClientOptions o;
    o.verify_tls = options.verify_tls;
    o.max_response_bytes = options.max_response_bytes;
    return o;
}

std::size_t lanes(const SenderOptions& options) {
    return options.lanes != 0 ? options.lanes
                              : http::ParallelMultiClient::lanes_for(
                                    options.in_flight, std::thread::hardware_concurrency());
}

// a + b for a duration b >= 0, saturating instead of overflowing.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    return a > std::numeric_limits<std::int64_t>::max() - b
               ? std::numeric_limits<std::int64_t>::max()
               : a + b;
}

class Delivery {
public:
    Delivery(state::StateStore& store, const std::string& job, const SenderOptions& options)
        : m_outbox(store, job, options.clock), m_options(options),
          m_client(options.in_flight, lanes(options), client_options(options)),
          m_limiter(options.rate, options.burst) {}

    // One pass reads the pending deliveries in seq order, a page at a time, and sends them as
    // connections free up. A delivery whose contact (group) has one in flight waits in memory
    // behind it and goes as soon as that one is delivered; when that one fails instead, the
    // contact is held: its later deliveries stay pending for the next pass (or run), so a
    // contact's deliveries always arrive in order. The next page is read while the current one
    // is still in flight (its seqs are below `after`, so it is not read twice); a pass ends, and
    // the next one starts from the oldest, only with nothing in flight or waiting. The outbox
    // thread reads each page ahead while the one before is sent, and writes the outcomes.
    // When sending fails (libcurl itself, say), the outcomes already known are committed
    // before the error goes on, so the next run sends again only what was in flight.
    SendStats run() {
        try {
            send_all();
        } catch (...) {
            try {
                flush();
            } catch (...) {
                // The outbox thread's own failure (it may be the first error): that one goes on.
            }
            throw;
        }
        return m_stats;
    }

private:
    void send_all() {
        std::int64_t after = 0;
        bool pass_read = false; // every page of this pass is read
        auto page_ahead = m_outbox.read_page(after, k_page);
        while (true) {
            const bool may_start = !stop_requested() && !past_deadline();
            if (may_start && m_next >= m_page.size() && !pass_read && m_waiting_count < k_page) {
                m_page = m_outbox.wait(std::move(page_ahead));
                m_next = 0;
                if (m_page.empty()) {
                    pass_read = true;
                } else {
                    after = m_page.back().seq;
                    page_ahead = m_outbox.read_page(after, k_page);
                }
            }
            if (may_start && pass_read && m_client.in_flight() == 0 && m_ready.empty()) {
                flush();
                if (after == 0) {
                    break; // nothing pending at all
                }
                // A pass is over: start again from the oldest once a retry is due.
                after = 0;
                pass_read = false;
                m_held.clear();
                if (!wait_for_next_due()) {
                    break;
                }
                page_ahead = m_outbox.read_page(after, k_page);
                continue;
            }
            bool paced = false;
            while (may_start && m_client.has_capacity()) {
                auto* d = next_to_send();
                if (d == nullptr) {
                    break;
                }
                if (!m_limiter.try_acquire(SteadyClock::now())) {
                    paced = true;
                    break;
                }
                send(take(*d));
            }
            if (m_client.in_flight() > 0) {
                m_client.poll(milliseconds(50));
                maybe_hand_over();
            } else if (!may_start) {
                break;
            } else if (paced) {
                // Paced by the rate limit with nothing in flight: the outcomes go to the outbox
                // thread, which commits them on time, so a crash while waiting re-sends no more
                // than it would otherwise.
                maybe_hand_over();
                std::this_thread::sleep_for(
                    std::min(milliseconds(50), m_limiter.wait_time(SteadyClock::now())));
            }
        }
        flush();
    }

    std::int64_t unix_ms() const { return m_options.clock.wall_now().time_since_epoch().count(); }

    bool past_deadline() const {
        return m_options.deadline && SteadyClock::now() >= *m_options.deadline;
    }

    // The next delivery that may go now: one whose predecessor was just delivered, else the
    // next of the page whose contact is free. Deliveries of a contact with one in flight are
    // parked behind it; those of a held contact, or not yet due, are passed over (and hold
    // their contact). nullptr when nothing may go now. The caller takes it with take().
    state::Delivery* next_to_send() {
        if (!m_ready.empty()) {
            return &m_ready.front();
        }
        while (m_next < m_page.size()) {
            auto& d = m_page[m_next];
            if (m_held.count(d.group_key) != 0) {
                ++m_next;
                continue;
            }
            if (d.next_attempt_ms > unix_ms()) {
                m_held.insert(d.group_key);
                ++m_next;
                continue;
            }
            if (auto busy = m_busy_groups.find(d.group_key); busy != m_busy_groups.end()) {
                busy->second.push_back(std::move(d));
                ++m_waiting_count;
                ++m_next;
                continue;
            }
            return &d;
        }
        return nullptr;
    }

    // Moves `d` (returned by next_to_send()) out of the ready queue or the page, and marks its
    // contact busy.
    state::Delivery take(state::Delivery& d) {
        if (!m_ready.empty() && &d == &m_ready.front()) {
            auto out = std::move(m_ready.front());
            m_ready.pop_front();
            return out; // its contact is already busy
        }
        ++m_next;
        m_busy_groups.try_emplace(d.group_key);
        return std::move(d);
    }

    // The delivery in flight for `group` is over. Delivered: the contact's next waiting one (if
    // due) becomes ready. Otherwise, or when nothing waits: the contact is free, and what
    // waited stays pending for the next pass.
    void release_group(const std::string& group, bool delivered) {
        auto busy = m_busy_groups.find(group);
        if (busy == m_busy_groups.end()) {
            return;
        }
        auto& waiting = busy->second;
        if (delivered && !waiting.empty() && waiting.front().next_attempt_ms <= unix_ms()) {
            m_ready.push_back(std::move(waiting.front()));
            waiting.pop_front();
            --m_waiting_count;
            return;
        }
        if (!waiting.empty()) {
            m_held.insert(group);
        }
        m_waiting_count -= waiting.size();
        m_busy_groups.erase(busy);
    }

    // Sleeps until the earliest retry is due, if that is within the run's budget.
    bool wait_for_next_due() {
        const auto due = m_outbox.next_due();
        if (!due) {
            return false;
        }
        const auto wait = milliseconds(std::max<std::int64_t>(0, *due - unix_ms()));
        // Without a deadline a run still ends: a retry further away is the next run's.
        if (wait > k_longest_wait_in_run ||
            (m_options.deadline && SteadyClock::now() + wait >= *m_options.deadline)) {
            return false;
        }
        for (auto left = wait; left > milliseconds(0); left -= milliseconds(100)) {
            if (stop_requested()) {
                return false;
            }
            std::this_thread::sleep_for(std::min(left, milliseconds(100)));
        }
        return true;
    }

    void send(state::Delivery d) {
        const long long timestamp = std::chrono::duration_cast<std::chrono::seconds>(
                                        m_options.clock.wall_now().time_since_epoch())
                                        .count();
        http::HttpRequest request;
        request.method = "POST";
        request.url = m_options.url;
        request.timeout = m_options.timeout;
        request.headers = {{"Content-Type", "application/json"},
                           {"webhook-id", d.id},
                           {"webhook-timestamp", std::to_string(timestamp)}};
        if (!m_options.secret.empty()) {
            request.headers.emplace_back("webhook-signature",
                                         sign(m_options.secret, d.id, timestamp, d.body));
        }
        request.body = std::move(d.body); // finished() needs the rest of d, never its body
        ++m_stats.attempts;
        m_client.start(
            std::move(request),
            [this, d = std::move(d)](http::TransferResult&& r) mutable { finished(d, r); });
    }

    void finished(const state::Delivery& d, const http::TransferResult& r) {
        // A 2xx whose body was too long to read was still taken by the receiver.
        const long status_seen = r.answered ? r.response.status : r.failure.status;
        if (status_seen >= 200 && status_seen < 300) {
            m_outcomes.push_back(
                {Outcome::Kind::delivered, d.seq, static_cast<int>(status_seen), {}, 0});
            ++m_stats.delivered;
            release_group(d.group_key, true);
            return;
        }
        release_group(d.group_key, false);
        std::optional<int> status;
        FailedAttempt failed;
        failed.attempt = d.attempts + 1;
        failed.created_ms = d.created_ms;
        if (!r.answered && r.failure.status != 0) {
            // Only the body was too long: the status (and headers) say what the receiver meant.
            status = static_cast<int>(r.failure.status);
            failed.error = fmt::format("HTTP {}: {}", r.failure.status, r.failure.message);
            failed.retryable = http::RetryPolicy::is_retryable_status(r.failure.status);
        } else if (r.answered) {
            status = static_cast<int>(r.response.status);
            failed.error = fmt::format("HTTP {}: {}", r.response.status, snippet(r.response.body));
            failed.retryable = http::RetryPolicy::is_retryable_status(r.response.status);
        } else {
            failed.error = r.failure.message;
            failed.retryable = http::RetryPolicy::is_retryable_transport(r.failure.curl_code);
        }
        if (status == 429 || status == 503) {
            failed.retry_after =
                http::RetryPolicy::retry_after(r.response, m_options.clock.wall_now());
        }
        const std::int64_t now = unix_ms();
        const auto next = after_failure(m_options.retry, failed, now);
        if (next.dead) {
            m_outcomes.push_back({Outcome::Kind::dead, d.seq, status, next.reason, 0});
            m_held.insert(d.group_key);
            ++m_stats.died;
            log::warn("delivery {} is dead after {} attempt(s): {}", d.id, failed.attempt,
                      next.reason);
            // The contact's later deliveries stay blocked this run: order is kept.
            return;
        }
        m_outcomes.push_back(
            {Outcome::Kind::retry, d.seq, status, failed.error, next.next_attempt_ms});
        m_held.insert(d.group_key);
        ++m_stats.retried;
        log::info("delivery {} attempt {} failed ({}); retry in {} ms", d.id, failed.attempt,
                  failed.error, next.next_attempt_ms - now);
    }

    // Every outcome so far written and committed.
    void flush() {
        m_outbox.hand_over(m_outcomes);
        m_outbox.commit();
        m_handed_over = SteadyClock::now();
    }

    void maybe_hand_over() {
        if (m_outcomes.size() >= k_hand_over_every ||
            (!m_outcomes.empty() && SteadyClock::now() - m_handed_over >= k_hand_over_interval)) {
            m_outbox.hand_over(m_outcomes);
            m_handed_over = SteadyClock::now();
        }
    }

    OutboxThread m_outbox;
    const SenderOptions& m_options;
    http::ParallelMultiClient m_client;
    http::RateLimiter m_limiter;
    std::vector<state::Delivery> m_page; // the page being sent, read from the outbox
    std::size_t m_next = 0;              // its first delivery not yet sent, parked or passed
    // Contacts with a delivery in flight (or ready), each with its later deliveries read so
    // far, in order.
    std::unordered_map<std::string, std::deque<state::Delivery>> m_busy_groups;
    std::size_t m_waiting_count = 0;     // deliveries parked in m_busy_groups
    std::deque<state::Delivery> m_ready; // delivered contacts' next deliveries, to go first
    std::set<std::string> m_held;        // contacts whose next delivery waits for the next pass
    std::vector<Outcome> m_outcomes;     // not handed over yet
    SteadyClock::time_point m_handed_over = SteadyClock::now();
    SendStats m_stats;
};

} // namespace

NextStep after_failure(const DeliveryRetryRules& rules, const FailedAttempt& failed,
                       std::int64_t now_ms) {
    NextStep step;
    if (!failed.retryable) {
        step.dead = true;
        step.reason = failed.error + " (not retryable)";
        return step;
    }
    if (rules.max_attempts > 0 && failed.attempt >= rules.max_attempts) {
        step.dead = true;
        step.reason =
            fmt::format("{} (after {} attempts, the most allowed)", failed.error, failed.attempt);
        return step;
    }
    const std::int64_t age = now_ms > failed.created_ms ? now_ms - failed.created_ms : 0;
    if (age >= rules.max_age.count()) {
        step.dead = true;
        step.reason = fmt::format("{} (given up: first queued {} h ago, --max-age is {} h)",
                                  failed.error, age / 3'600'000, rules.max_age.count() / 3'600'000);
        return step;
    }
    http::RetryPolicy backoff;
    backoff.base_delay = rules.base_delay;
    backoff.max_delay = rules.max_delay;
    milliseconds delay = backoff.backoff(failed.attempt);
    if (failed.retry_after) {
        delay = std::clamp(*failed.retry_after, milliseconds(0), rules.max_retry_after);
    }
    // The last attempt falls at the end of the delivery's life, not after it.
    const std::int64_t expires = saturating_add(failed.created_ms, rules.max_age.count());
    step.next_attempt_ms = std::min(saturating_add(now_ms, delay.count()), expires);
    return step;
}

SendStats deliver_pending(state::StateStore& store, const std::string& job,
                          const SenderOptions& options) {
    const auto started = SteadyClock::now();
    Delivery delivery(store, job, options);
    auto stats = delivery.run();
    if (stats.attempts > 0) {
        // One line per run, never per delivery: the delivery rate without the source's time.
        const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
        log::info("delivered {} in {:.3f} s ({:.0f}/s; {} attempts, {} to retry, {} dead)",
                  stats.delivered, seconds,
                  static_cast<double>(stats.delivered) / std::max(seconds, 1e-6), stats.attempts,
                  stats.retried, stats.died);
    }
    return stats;
}

} // namespace crmsync::drivers::webhook
