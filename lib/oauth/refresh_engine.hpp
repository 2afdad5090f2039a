#pragma once

#include "lib/http/retry_policy.hpp"
#include "lib/oauth/provider.hpp"
#include "lib/state/accounts.hpp"
#include "lib/state/state_store.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::oauth {

// How the engine asks the token endpoints; provider-neutral (the endpoints themselves are the
// providers' business).
struct RefreshSettings {
    bool verify_tls = true;
    std::chrono::milliseconds timeout{30'000}; // one token request
    http::RetryPolicy retry;                   // attempts and backoff per account
    double rate = 5;                           // requests per second over all workers; 0 = no limit
    std::size_t concurrency = 4;               // requests in flight
    // No request starts and no backoff reaches past it; nullopt = no limit.
    std::optional<std::chrono::steady_clock::time_point> deadline;
};

struct RefreshOutcome {
    enum class Kind {
        refreshed,    // a new access token is stored
        needs_reauth, // invalid_grant or invalid_client: stored as needs_reauth
        failed,       // stored as error: the next run tries again
        deferred,     // the provider's request budget is used up; nothing was sent
        not_tried,    // the time budget ran out or a signal came first
    };
    Kind kind = Kind::not_tried;
    std::string message;     // for people: what happened and what to do
    bool answered = false;   // the provider gave a definite answer (not only 5xx/network)
    int requests = 0;        // sent to the token endpoint
    state::TokenGrant grant; // when refreshed
};

// Refreshes `accounts` through the provider each one names in `providers` (at most
// settings.concurrency requests in flight, paced by settings.rate), retrying network errors,
// 5xx and damaged answers with backoff until settings.retry.max_attempts or the deadline. A
// provider's RequestBudget is kept per refresh token, counted in the state file with every
// request included: the first request of each account is counted before it leaves (so a run
// killed mid-request still leaves it counted), an account whose budget is used up is
// `deferred` without a request. Then every outcome is stored in one state::Transaction:
// grants (only if the account still has the refresh token used), needs_reauth and error.
// An account whose provider is not in `providers` fails without a request.
//
// Outcomes come back in the order of `accounts`. The calling thread owns `store`; the worker
// threads only talk HTTP. A stop signal (lib/core/cancel.hpp) ends waits early: accounts not
// yet sent are `not_tried`. Throws Error(io) when the state file cannot be written; failures
// of single accounts are outcomes, never exceptions.
std::vector<RefreshOutcome> refresh_accounts(state::StateStore& store,
                                             const ProviderTable& providers,
                                             const std::vector<state::Account>& accounts,
                                             const RefreshSettings& settings);

} // namespace crmsync::oauth
