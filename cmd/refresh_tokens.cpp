#include "cmd/refresh_tokens.hpp"

#include "drivers/google/token_client.hpp"
#include "drivers/zoho/token_client.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/core/log.hpp"
#include "lib/http/multi_client.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <thread>

namespace crmsync::cli {
namespace {

using Kind = RefreshOutcome::Kind;
using AnswerKind = state::TokenAnswer::Kind;
using std::chrono::steady_clock;

// The failures listed on stderr and in a notice; the rest are counted.
constexpr std::size_t k_listed_failures = 20;

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

std::string provider_name(const state::Account& a) {
    return a.provider == "zoho" ? "Zoho" : "Google";
}

std::string reauth_message(const state::Account& a, const state::TokenAnswer& answer) {
    if (answer.kind == AnswerKind::invalid_client) {
        return fmt::format("{} refused the OAuth client ({}): check the client id and secret{}, "
                           "then store them with 'crmsync accounts add'",
                           provider_name(a), answer.error,
                           a.provider == "zoho"
                               ? " and the data centre (this account uses '" + a.zoho_dc + "')"
                               : std::string());
    }
    return fmt::format("{} refused the refresh token ({}): it was revoked or has expired; "
                       "authorize the account again and store the new refresh token with "
                       "'crmsync accounts add'",
                       provider_name(a), answer.error);
}

// One account, on a worker thread: attempts until an answer settles it.
RefreshOutcome refresh_one(http::HttpClient& client, const state::Account& account,
                           const RefreshSettings& settings, int max_requests, RateGate& gate) {
    RefreshOutcome outcome;
    const bool zoho = account.provider == "zoho";
    const std::string url =
        zoho ? drivers::zoho::token_url(account.zoho_dc, settings.zoho_accounts_url)
             : (settings.google_token_url.empty() ? drivers::google::k_token_url
                                                  : settings.google_token_url);
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
        const auto request = zoho
                                 ? drivers::zoho::refresh_request(url, account, settings.timeout)
                                 : drivers::google::refresh_request(url, account, settings.timeout);
        http::HttpResponse response;
        http::TransportFailure failure;
        ++outcome.requests;
        state::TokenAnswer answer;
        if (client.perform(request, response, failure)) {
            answer = zoho ? drivers::zoho::read_refresh_answer(response, sent_at)
                          : drivers::google::read_refresh_answer(response, sent_at);
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
            outcome.message = reauth_message(account, answer);
            return outcome;
        case AnswerKind::throttled:
            outcome.kind = Kind::failed;
            outcome.answered = true;
            outcome.message = fmt::format("{} grants no more tokens for this refresh token for now "
                                          "({}); the next run tries again",
                                          provider_name(account), answer.error);
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

bool is_due(const state::Account& a, SystemTime now, std::chrono::milliseconds within) {
    return a.access_token.empty() || !a.expires_at || *a.expires_at - now <= within;
}

// The episode's key: "refresh-tokens", or with the run's filter, "refresh-tokens:provider=zoho".
std::string job_name(const RefreshTokensOptions& o) {
    std::string filter;
    if (!o.provider.empty()) {
        filter = "provider=" + o.provider;
    }
    if (!o.account.empty()) {
        filter += (filter.empty() ? "" : ",") + std::string("account=") + o.account;
    }
    return filter.empty() ? "refresh-tokens" : "refresh-tokens:" + filter;
}

} // namespace

void register_account_secrets(const state::Account& a) {
    util::register_secret(a.client_secret);
    util::register_secret(a.refresh_token);
    util::register_secret(a.access_token);
}

std::string describe_account(const state::Account& a) {
    return fmt::format("account {} {} ({})", a.id, a.email, a.provider);
}

void add_token_endpoint_options(CLI::App& app, TokenEndpointOptions& o) {
    // add_common's Dialfire token flags mean nothing to OAuth accounts.
    for (const char* name : {"--ct", "--token-env", "--token-file"}) {
        if (auto* option = app.get_option_no_throw(name)) {
            app.remove_option(option);
        }
    }
    app.add_option("--state", o.state_path,
                   "State file holding the accounts (default $XDG_STATE_HOME/crmsync/state.db)");
    app.add_option("--google-token-url", o.google_token_url,
                   "Google's token endpoint (a proxy, a test double); default "
                   "https://oauth2.googleapis.com/token")
        ->envname("CRMSYNC_GOOGLE_TOKEN_URL");
    app.add_option("--zoho-accounts-url", o.zoho_accounts_url,
                   "Zoho accounts server for every account (a proxy, a test double); default: "
                   "each account's data centre, https://accounts.zoho.<dc>")
        ->envname("CRMSYNC_ZOHO_ACCOUNTS_URL");
    app.add_option("--timeout", o.timeout, "Time one token request may take")
        ->capture_default_str();
}

RefreshSettings refresh_settings(const CommonOptions& common, const TokenEndpointOptions& e) {
    RefreshSettings s;
    if (!e.google_token_url.empty()) {
        util::parse_http_url(e.google_token_url);
    }
    if (!e.zoho_accounts_url.empty()) {
        util::parse_http_url(e.zoho_accounts_url);
    }
    s.google_token_url = e.google_token_url;
    s.zoho_accounts_url = e.zoho_accounts_url;
    s.verify_tls = !common.insecure;
    s.timeout = parse_duration_option(e.timeout, "--timeout");
    if (s.timeout.count() <= 0) {
        throw Error(ErrorKind::usage, "--timeout must be positive", "e.g. --timeout 30s");
    }
    s.retry.max_attempts = common.retry_attempts;
    s.retry.base_delay = parse_duration_option(common.retry_base, "--retry-base");
    const auto budget = parse_duration_option(common.max_runtime, "--max-runtime");
    if (budget.count() > 0) {
        s.deadline = steady_clock::now() + budget;
    }
    return s;
}

std::vector<RefreshOutcome> refresh_accounts(state::StateStore& store,
                                             const std::vector<state::Account>& accounts,
                                             const RefreshSettings& settings) {
    state::AccountStore store_accounts(store);
    std::vector<RefreshOutcome> outcomes(accounts.size());
    std::vector<int> budgets(accounts.size(), settings.retry.max_attempts);
    std::vector<std::size_t> todo;
    const SystemTime now = wall_now();
    {
        // Each Zoho request is counted before it leaves, so a run killed mid-request still
        // leaves it counted.
        SQLite::Transaction transaction(store.db());
        for (std::size_t i = 0; i < accounts.size(); ++i) {
            const auto& a = accounts[i];
            if (a.provider == "zoho") {
                const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(
                    drivers::zoho::k_token_window);
                const auto recent = store_accounts.token_requests_since(a.id, now - window);
                const int left =
                    drivers::zoho::k_tokens_per_window - static_cast<int>(recent.size());
                if (left <= 0) {
                    outcomes[i].kind = Kind::deferred;
                    outcomes[i].message = fmt::format(
                        "Zoho grants {} tokens per refresh token per {} minutes and {} were "
                        "requested since {}; the next request is possible at {}",
                        drivers::zoho::k_tokens_per_window, drivers::zoho::k_token_window.count(),
                        recent.size(), util::format_iso8601(recent.front()),
                        util::format_iso8601(recent.front() + window));
                    continue;
                }
                budgets[i] = std::min(budgets[i], left);
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
                outcomes[i] = refresh_one(client, accounts[i], settings, budgets[i], gate);
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

    SQLite::Transaction transaction(store.db());
    for (std::size_t i = 0; i < accounts.size(); ++i) {
        const auto& a = accounts[i];
        auto& o = outcomes[i];
        if (a.provider == "zoho" && o.requests > 1) {
            store_accounts.record_token_requests(
                a.id, wall_now(), o.requests - 1,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    drivers::zoho::k_token_window));
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

void add_refresh_tokens(CLI::App& app, RefreshTokensOptions& o) {
    o.common.max_runtime = "5m";
    add_common(app, o.common);
    add_token_endpoint_options(app, o.endpoints);
    app.add_option("--within", o.within, "Refresh tokens that expire within this time (e.g. 10m)")
        ->capture_default_str();
    app.add_option("--account", o.account, "Only this account (its id or email)");
    app.add_option("--provider", o.provider, "Only accounts of this provider")
        ->check(CLI::IsMember({"google", "zoho"}));
    app.add_flag("--force", o.force,
                 "Refresh regardless of expiry, and accounts that need re-authorization too");
    app.add_option("--rate", o.rate, "Token requests per second over all workers (0 = no limit)")
        ->check(CLI::Range(0.0, 1000.0))
        ->capture_default_str();
    app.add_option("--chunk", o.chunk, "Accounts per chunk; each chunk is stored at once")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--concurrency", o.concurrency, "Token requests in flight")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
}

int run_refresh_tokens(const RefreshTokensOptions& o) {
    const auto within = parse_duration_option(o.within, "--within");
    RefreshSettings settings = refresh_settings(o.common, o.endpoints);
    settings.rate = o.rate;
    settings.concurrency = o.concurrency;
    const std::string state_path =
        o.endpoints.state_path.empty() ? state::default_state_path() : o.endpoints.state_path;
    install_stop_signal_handlers();
    init_logging(o.common, "refresh-tokens", "refresh");
    const std::string job = job_name(o);

    pipeline::RunSummary summary;
    summary.command = "refresh-tokens";
    summary.job = !o.account.empty() ? o.account : !o.provider.empty() ? o.provider : "all";
    const auto started = steady_clock::now();
    state::StateStore store(state_path);
    if (!store.try_lock_job("refresh-tokens")) {
        throw Error(ErrorKind::locked,
                    "another refresh-tokens run on " + state_path + " holds the lock",
                    "nothing to do: that run refreshes the tokens");
    }
    state::AccountStore accounts(store);
    std::vector<state::Account> selected;
    if (!o.account.empty()) {
        auto account = accounts.find(o.account, o.provider);
        if (!account) {
            throw Error(ErrorKind::usage, "no account '" + o.account + "' in " + state_path,
                        "'crmsync accounts list' shows the accounts");
        }
        if (!account->active) {
            throw Error(ErrorKind::usage, describe_account(*account) + " is disabled",
                        "enable it with 'crmsync accounts enable " + o.account + "'");
        }
        selected.push_back(std::move(*account));
    } else {
        for (auto& a : accounts.list(o.provider)) {
            if (a.active) {
                selected.push_back(std::move(a));
            }
        }
    }
    for (const auto& a : selected) {
        register_account_secrets(a);
    }
    log::info("crmsync {} refresh-tokens: {} active account(s) in {}", CRMSYNC_VERSION,
              selected.size(), state_path);

    long fresh = 0, refreshed = 0, needs_reauth = 0, failed = 0, deferred = 0, not_tried = 0;
    long deferred_expired = 0;  // deferred without a valid token: a failure
    bool account_level = false; // some failure is the account's own, not the service's
    std::vector<std::string> problems;
    const auto note = [&](const state::Account& a, const std::string& what,
                          const std::string& message) {
        const std::string line = describe_account(a) + ": " + what + ": " + message;
        log::warn("{}", line);
        if (problems.size() < k_listed_failures) {
            std::cerr << "crmsync: " << util::redact(line) << "\n";
        }
        problems.push_back(line);
    };

    const SystemTime now = wall_now();
    std::vector<state::Account> due;
    for (auto& a : selected) {
        if (a.status == "needs_reauth" && !o.force && o.account.empty()) {
            ++needs_reauth;
            account_level = true;
            note(a, "needs re-authorization (not tried)",
                 a.last_error.empty() ? "authorize it again and run 'crmsync accounts add'"
                                      : a.last_error);
        } else if (o.force || is_due(a, now, within)) {
            due.push_back(std::move(a));
        } else {
            ++fresh;
        }
    }

    std::size_t processed = 0;
    for (std::size_t start = 0; start < due.size(); start += o.chunk) {
        if (stop_requested() || (settings.deadline && steady_clock::now() >= *settings.deadline)) {
            break;
        }
        const std::size_t end = std::min(due.size(), start + o.chunk);
        const std::vector<state::Account> chunk(due.begin() + static_cast<std::ptrdiff_t>(start),
                                                due.begin() + static_cast<std::ptrdiff_t>(end));
        const auto outcomes = refresh_accounts(store, chunk, settings);
        processed = end;
        for (std::size_t i = 0; i < chunk.size(); ++i) {
            const auto& a = chunk[i];
            const auto& out = outcomes[i];
            summary.retries += std::max(0, out.requests - 1);
            switch (out.kind) {
            case Kind::refreshed:
                ++refreshed;
                log::info("{}: refreshed, valid until {}", describe_account(a),
                          util::format_iso8601(out.grant.expires_at));
                break;
            case Kind::needs_reauth:
                ++needs_reauth;
                account_level = true;
                note(a, "needs re-authorization", out.message);
                break;
            case Kind::failed:
                ++failed;
                account_level = account_level || out.answered;
                note(a, "failed", out.message);
                break;
            case Kind::deferred:
                // A token that is still valid waits for the window; an expired one is a failure.
                ++deferred;
                if (a.expires_at && *a.expires_at > wall_now() && !a.access_token.empty()) {
                    log::info("{}: deferred: {}", describe_account(a), out.message);
                } else {
                    ++deferred_expired;
                    account_level = true;
                    note(a, "deferred", out.message);
                }
                break;
            case Kind::not_tried:
                ++not_tried;
                note(a, "not tried", out.message);
                break;
            }
        }
    }
    if (processed < due.size()) {
        const std::size_t left = due.size() - processed;
        not_tried += static_cast<long>(left);
        const std::string line = fmt::format(
            "{} account(s) not tried: {}", left,
            stop_requested() ? "interrupted" : "the time budget (--max-runtime) ran out");
        log::warn("{}", line);
        std::cerr << "crmsync: " << line << "\n";
        problems.push_back(line);
    }
    if (problems.size() > k_listed_failures) {
        std::cerr << "crmsync: ... and " << problems.size() - k_listed_failures
                  << " more (see the log)\n";
    }

    const long failures = needs_reauth + failed + deferred_expired + not_tried;
    summary.counters = {{"accounts", static_cast<long>(selected.size())},
                        {"due", static_cast<long>(due.size())},
                        {"refreshed", refreshed},
                        {"fresh", fresh},
                        {"needs_reauth", needs_reauth},
                        {"failed", failed},
                        {"deferred", deferred},
                        {"not_tried", not_tried}};
    summary.duration =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started);
    if (stop_requested()) {
        summary.status = pipeline::RunStatus::interrupted;
        report(o.common, summary);
        throw Error(ErrorKind::interrupted, "interrupted; the tokens refreshed so far are stored",
                    "run again to refresh the rest");
    }
    std::string error_text;
    if (failures > 0) {
        error_text = fmt::format("{} of {} account(s) not refreshed", failures,
                                 static_cast<long>(selected.size()) - fresh);
        for (std::size_t i = 0; i < problems.size() && i < k_listed_failures; ++i) {
            error_text += "\n" + problems[i];
        }
        if (problems.size() > k_listed_failures) {
            error_text += fmt::format("\n... and {} more", problems.size() - k_listed_failures);
        }
    }
    // "None could be tried": due accounts, none refreshed, and no provider gave an answer of
    // its own (the endpoints were unreachable or failing, or the budget ran out).
    const bool none_tried = failures > 0 && refreshed == 0 && !account_level;
    summary.status = failures == 0 ? pipeline::RunStatus::ok
                     : none_tried  ? pipeline::RunStatus::failed
                                   : pipeline::RunStatus::partial;
    if (none_tried) {
        summary.error = problems.empty() ? error_text : problems.front();
    }
    report(o.common, summary);
    notify_outcome(o.common, state_path, "refresh-tokens", job, failures == 0, error_text);
    if (none_tried) {
        throw Error(ErrorKind::connection,
                    fmt::format("no token could be refreshed: {} account(s) due, none reached "
                                "its provider",
                                failures),
                    "check the network and the token endpoints (--google-token-url, "
                    "--zoho-accounts-url); the next run tries again");
    }
    return failures == 0 ? k_exit_ok : k_exit_partial;
}

} // namespace crmsync::cli
