#include "lib/oauth/refresh_engine.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/log.hpp"
#include "lib/http/multi_client.hpp"
#include "lib/oauth/account_text.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

namespace crmsync::oauth {
namespace {

using Kind = RefreshOutcome::Kind;
using AnswerKind = state::TokenAnswer::Kind;
using std::chrono::steady_clock;

SystemTime wall_now() { return Clock::real().wall_now(); }

// Paces the token requests of all workers.
class RateGate {
public:
    explicit RateGate(double rate) : m_limiter(rate, 1.0) {}

    // Waits for the next slot; false when the deadline passes or a stop signal comes first.
    bool wait(std::optional<steady_clock::time_point> deadline) {
        for (;;) {
            if (stop_requested()) {
                return false;
            }
            const auto now = steady_clock::now();
            if (deadline && now >= *deadline) {
                return false;
            }
            std::chrono::milliseconds pause{0};
            {
                std::lock_guard lock(m_mutex);
                if (m_limiter.try_acquire(now)) {
                    return true;
                }
                pause = m_limiter.wait_time(now);
            }
            std::this_thread::sleep_for(
                std::clamp(pause, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
        }
    }

private:
    std::mutex m_mutex;
    http::RateLimiter m_limiter;
};

// Sleeps `delay` unless that passes the deadline or a stop signal comes; false then.
bool backoff_sleep(std::chrono::milliseconds delay,
                   std::optional<steady_clock::time_point> deadline) {
    const auto until = steady_clock::now() + delay;
    if (deadline && until > *deadline) {
        return false;
    }
    while (steady_clock::now() < until) {
        if (stop_requested()) {
            return false;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - steady_clock::now());
        std::this_thread::sleep_for(
            std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
    }
    return true;
}

std::string reauth_message(const Provider& provider, const state::Account& a,
                           const state::TokenAnswer& answer) {
    if (answer.kind == AnswerKind::invalid_client) {
        return fmt::format("{} refused the OAuth client ({}): check the client id and secret{}, "
                           "then store them with 'crmsync accounts add'",
                           provider.title(), answer.error, provider.client_hint(a));
    }
    return fmt::format("{} refused the refresh token ({}): it was revoked or has expired; "
                       "authorize the account again and store the new refresh token with "
                       "'crmsync accounts add'",
                       provider.title(), answer.error);
}

// One account, on a worker thread: attempts until an answer settles it.
RefreshOutcome refresh_one(http::HttpClient& client, const Provider& provider,
                           const state::Account& account, const RefreshSettings& settings,
                           int max_requests, RateGate& gate) {
    RefreshOutcome outcome;
    const std::string url = provider.token_url(account);
    std::string last_problem;
    for (int attempt = 1;; ++attempt) {
        if (!gate.wait(settings.deadline)) {
            outcome.kind = attempt == 1 ? Kind::not_tried : Kind::failed;
            outcome.message = attempt == 1
                                  ? std::string(stop_requested() ? "interrupted before its turn"
                                                                 : "the time budget ran out "
                                                                   "before its turn")
                                  : "gave up when the time budget ran out; last: " + last_problem;
            return outcome;
        }
        const SystemTime sent_at = wall_now();
        const auto request = provider.refresh_request(url, account, settings.timeout);
        http::HttpResponse response;
        http::TransportFailure failure;
        ++outcome.requests;
        state::TokenAnswer answer;
        if (client.perform(request, response, failure)) {
            answer = provider.read_refresh_answer(response, sent_at);
        } else {
            answer.kind = http::RetryPolicy::is_retryable_transport(failure.curl_code)
                              ? AnswerKind::transient
                              : AnswerKind::refused;
            answer.error = failure.message;
        }
        log::debug("{}: token request {} -> {}", describe_account(account), attempt,
                   answer.error.empty() ? "granted" : answer.error);
        switch (answer.kind) {
        case AnswerKind::granted:
            outcome.kind = Kind::refreshed;
            outcome.answered = true;
            outcome.grant = answer.grant;
            return outcome;
        case AnswerKind::invalid_grant:
        case AnswerKind::invalid_client:
            outcome.kind = Kind::needs_reauth;
            outcome.answered = true;
            outcome.message = reauth_message(provider, account, answer);
            return outcome;
        case AnswerKind::throttled:
            outcome.kind = Kind::failed;
            outcome.answered = true;
            outcome.message = fmt::format("{} grants no more tokens for this refresh token for now "
                                          "({}); the next run tries again",
                                          provider.title(), answer.error);
            return outcome;
        case AnswerKind::refused:
            outcome.kind = Kind::failed;
            outcome.answered = response.status != 0;
            outcome.message = fmt::format("the token request to {} failed: {}", url, answer.error);
            return outcome;
        case AnswerKind::transient:
            break;
        }
        last_problem = answer.error;
        if (attempt >= settings.retry.max_attempts || outcome.requests >= max_requests) {
            outcome.kind = Kind::failed;
            outcome.message = fmt::format("the token endpoint {} kept failing; {} attempt{}, "
                                          "last: {}",
                                          url, attempt, attempt == 1 ? "" : "s", last_problem);
            return outcome;
        }
        const auto delay = answer.retry_after.value_or(settings.retry.backoff(attempt));
        if (answer.retry_after && *answer.retry_after > settings.retry.max_retry_after) {
            outcome.kind = Kind::failed;
            outcome.message = fmt::format("the token endpoint asks to wait {} s (Retry-After); "
                                          "last: {}",
                                          answer.retry_after->count() / 1000, last_problem);
            return outcome;
        }
        if (!backoff_sleep(delay, settings.deadline)) {
            outcome.kind = Kind::failed;
            outcome.message = "gave up when the time budget ran out; last: " + last_problem;
            return outcome;
        }
    }
}

std::chrono::milliseconds window_ms(const RequestBudget& budget) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(budget.window);
}

} // namespace

std::vector<RefreshOutcome> refresh_accounts(state::StateStore& store,
                                             const ProviderTable& providers,
                                             const std::vector<state::Account>& accounts,
                                             const RefreshSettings& settings) {
    state::AccountStore store_accounts(store);
    std::vector<RefreshOutcome> outcomes(accounts.size());
    std::vector<const Provider*> provider_of(accounts.size(), nullptr);
    std::vector<std::optional<RequestBudget>> budget_of(accounts.size());
    std::vector<int> max_requests(accounts.size(), settings.retry.max_attempts);
    std::vector<std::size_t> todo;
    const SystemTime now = wall_now();
    {
        // Each budgeted request is counted before it leaves, so a run killed mid-request
        // still leaves it counted.
        state::Transaction transaction(store);
        for (std::size_t i = 0; i < accounts.size(); ++i) {
            const auto& a = accounts[i];
            provider_of[i] = providers.find(a.provider);
            if (provider_of[i] == nullptr) {
                outcomes[i].kind = Kind::failed;
                outcomes[i].message = "no OAuth provider '" + a.provider + "' is known";
                continue;
            }
            budget_of[i] = provider_of[i]->request_budget();
            if (const auto& budget = budget_of[i]) {
                const auto window = window_ms(*budget);
                const auto recent = store_accounts.token_requests_since(a.id, now - window);
                const int left = budget->requests - static_cast<int>(recent.size());
                if (left <= 0) {
                    outcomes[i].kind = Kind::deferred;
                    outcomes[i].message = fmt::format(
                        "{} grants {} tokens per refresh token per {} minutes and {} "
                        "were requested since {}; the next request is possible at {}",
                        provider_of[i]->title(), budget->requests, budget->window.count(),
                        recent.size(), util::format_iso8601(recent.front()),
                        util::format_iso8601(recent.front() + window));
                    continue;
                }
                max_requests[i] = std::min(max_requests[i], left);
                store_accounts.record_token_requests(a.id, now, 1, window);
            }
            todo.push_back(i);
        }
        transaction.commit();
    }

    RateGate gate(settings.rate);
    std::atomic<std::size_t> next{0};
    const std::size_t workers =
        std::min(std::max<std::size_t>(settings.concurrency, 1), todo.size());
    const auto work = [&] {
        http::HttpClientOptions client_options;
        client_options.verify_tls = settings.verify_tls;
        http::HttpClient client(client_options);
        for (std::size_t n = next++; n < todo.size(); n = next++) {
            const std::size_t i = todo[n];
            try {
                outcomes[i] = refresh_one(client, *provider_of[i], accounts[i], settings,
                                          max_requests[i], gate);
            } catch (const std::exception& e) {
                outcomes[i].kind = Kind::failed;
                outcomes[i].message = std::string("unexpected failure: ") + e.what();
            }
        }
    };
    if (workers == 1) {
        work();
    } else if (workers > 1) {
        std::vector<std::thread> threads;
        for (std::size_t w = 0; w < workers; ++w) {
            threads.emplace_back(work);
        }
        for (auto& t : threads) {
            t.join();
        }
    }

    state::Transaction transaction(store);
    for (std::size_t i = 0; i < accounts.size(); ++i) {
        const auto& a = accounts[i];
        auto& o = outcomes[i];
        if (budget_of[i] && o.requests > 1) {
            store_accounts.record_token_requests(a.id, wall_now(), o.requests - 1,
                                                 window_ms(*budget_of[i]));
        }
        switch (o.kind) {
        case Kind::refreshed:
            util::register_secret(o.grant.access_token);
            if (!store_accounts.record_grant(a.id, a.refresh_token, o.grant)) {
                o.kind = Kind::failed;
                o.message = "the account was changed or removed during the refresh; the new "
                            "token was not stored";
            }
            break;
        case Kind::needs_reauth:
            store_accounts.record_failure(a.id, a.refresh_token, "needs_reauth", o.message);
            break;
        case Kind::failed:
            store_accounts.record_failure(a.id, a.refresh_token, "error", o.message);
            break;
        case Kind::deferred:
        case Kind::not_tried:
            break;
        }
    }
    transaction.commit();
    return outcomes;
}

} // namespace crmsync::oauth
