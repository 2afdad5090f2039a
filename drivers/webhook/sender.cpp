#include "drivers/webhook/sender.hpp"

#include "drivers/webhook/signature.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/log.hpp"
#include "lib/http/multi_client.hpp"

#include <fmt/format.h>

#include <set>
#include <thread>

namespace crmsync::drivers::webhook {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t k_page = 2000;
// Outcomes are written in groups: one SQLite commit per this many or per this long.
constexpr long k_commit_every = 500;
constexpr milliseconds k_commit_interval{200};

std::int64_t unix_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string snippet(const std::string& text) {
    return text.size() > 500 ? text.substr(0, 500) + "..." : text;
}

class Delivery {
public:
    Delivery(state::StateStore& store, const std::string& job, const SenderOptions& options)
        : m_store(store), m_outbox(store), m_job(job), m_options(options),
          m_client(options.in_flight, http::HttpClientOptions{options.verify_tls}),
          m_limiter(options.rate, options.burst) {}

    SendStats run() {
        begin_batch();
        std::int64_t after = 0;
        std::vector<state::Delivery> page;
        std::size_t next = 0;
        while (true) {
            const bool may_start = !stop_requested() && !past_deadline();
            if (may_start && next >= page.size() && m_client.in_flight() == 0) {
                flush();
                page = m_outbox.pending(m_job, after, k_page);
                next = 0;
                if (page.empty()) {
                    if (after == 0) {
                        break; // nothing pending at all
                    }
                    // A pass is over: start again from the oldest once a retry is due.
                    after = 0;
                    m_blocked.clear();
                    if (!wait_for_next_due()) {
                        break;
                    }
                    continue;
                }
                after = page.back().seq;
            }
            while (may_start && next < page.size() && m_client.has_capacity()) {
                const auto& d = page[next];
                if (m_blocked.count(d.group_key) != 0 || d.next_attempt_ms > unix_ms()) {
                    // Later deliveries of this contact wait for this one: order is kept.
                    m_blocked.insert(d.group_key);
                    ++next;
                    continue;
                }
                if (!m_limiter.try_acquire(Clock::now())) {
                    break;
                }
                m_blocked.insert(d.group_key);
                send(std::move(page[next++]));
            }
            if (m_client.in_flight() > 0) {
                m_client.poll(milliseconds(50));
                maybe_flush();
            } else if (!may_start) {
                break;
            } else if (next < page.size()) {
                std::this_thread::sleep_for(
                    std::min(milliseconds(50), m_limiter.wait_time(Clock::now())));
            }
        }
        flush();
        return m_stats;
    }

private:
    bool past_deadline() const { return m_options.deadline && Clock::now() >= *m_options.deadline; }

    // Sleeps until the earliest retry is due, if that is within the run's budget.
    bool wait_for_next_due() {
        const auto due = m_outbox.next_due(m_job);
        if (!due) {
            return false;
        }
        const auto wait = milliseconds(std::max<std::int64_t>(0, *due - unix_ms()));
        if (m_options.deadline && Clock::now() + wait >= *m_options.deadline) {
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
                                        std::chrono::system_clock::now().time_since_epoch())
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
        request.body = d.body;
        ++m_stats.attempts;
        m_client.start(
            std::move(request),
            [this, d = std::move(d)](http::TransferResult&& r) mutable { finished(d, r); });
    }

    void finished(const state::Delivery& d, const http::TransferResult& r) {
        ++m_pending_writes;
        const int attempt = d.attempts + 1;
        if (r.answered && r.response.status >= 200 && r.response.status < 300) {
            m_outbox.mark_delivered(d, static_cast<int>(r.response.status));
            ++m_stats.delivered;
            m_blocked.erase(d.group_key);
            return;
        }
        std::optional<int> status;
        std::string error;
        bool retryable = true;
        std::optional<milliseconds> wait;
        if (r.answered) {
            status = static_cast<int>(r.response.status);
            error = fmt::format("HTTP {}: {}", r.response.status, snippet(r.response.body));
            retryable = http::RetryPolicy::is_retryable_status(r.response.status);
            if (r.response.status == 429 || r.response.status == 503) {
                wait =
                    http::RetryPolicy::retry_after(r.response, crmsync::Clock::real().wall_now());
            }
        } else {
            error = r.failure.message;
            retryable = http::RetryPolicy::is_retryable_transport(r.failure.curl_code);
        }
        if (!retryable || attempt >= m_options.max_attempts) {
            m_outbox.mark_dead(d, status, error);
            ++m_stats.died;
            log::warn("delivery {} is dead after {} attempt(s): {}", d.id, attempt, error);
            // The contact's later deliveries stay blocked this run: order is kept.
            return;
        }
        const auto delay = wait.value_or(m_options.backoff.backoff(attempt));
        m_outbox.mark_retry(d, status, error, unix_ms() + delay.count());
        ++m_stats.retried;
        log::info("delivery {} attempt {} failed ({}); retry in {} ms", d.id, attempt, error,
                  delay.count());
    }

    void begin_batch() {
        m_transaction = std::make_unique<state::Transaction>(m_store);
        m_batch_started = Clock::now();
        m_pending_writes = 0;
    }

    void flush() {
        if (m_transaction) {
            m_transaction->commit();
            m_transaction.reset();
        }
        begin_batch();
    }

    void maybe_flush() {
        if (m_pending_writes >= k_commit_every ||
            (m_pending_writes > 0 && Clock::now() - m_batch_started >= k_commit_interval)) {
            flush();
        }
    }

    state::StateStore& m_store;
    state::Outbox m_outbox;
    const std::string& m_job;
    const SenderOptions& m_options;
    http::MultiClient m_client;
    http::RateLimiter m_limiter;
    std::set<std::string> m_blocked;
    std::unique_ptr<state::Transaction> m_transaction;
    Clock::time_point m_batch_started;
    long m_pending_writes = 0;
    SendStats m_stats;
};

} // namespace

SendStats deliver_pending(state::StateStore& store, const std::string& job,
                          const SenderOptions& options) {
    Delivery delivery(store, job, options);
    auto stats = delivery.run();
    return stats;
}

} // namespace crmsync::drivers::webhook
