#pragma once

#include "lib/oauth/provider.hpp"
#include "lib/oauth/refresh_engine.hpp"
#include "lib/state/accounts.hpp"
#include "lib/state/state_store.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace crmsync::oauth {

// The accounts a refresh run looks at: `account` alone (its id or email, within `provider`),
// else every active account of `provider` ("" = every provider), in id order. Registers their
// secrets for redaction. Throws Error(usage) when `account` is unknown or disabled.
std::vector<state::Account> select_accounts(state::StateStore& store, const std::string& account,
                                            const std::string& provider);

// Which of the selected accounts a run refreshes.
struct RefreshRun {
    std::chrono::milliseconds within{600'000}; // due: no token, or it expires within this
    bool force = false;                        // every account is due, needs_reauth included
    bool retry_needs_reauth = false; // accounts marked needs_reauth are tried (one named account)
    std::size_t chunk = 50;          // accounts per refresh_accounts call (one transaction each)
};

// What a run did, counted per account.
struct RefreshReport {
    long accounts = 0;  // selected
    long due = 0;       // sent to refresh_accounts (or left for the next run)
    long fresh = 0;     // valid beyond `within`: nothing to do
    long refreshed = 0; // stored a new token
    long needs_reauth = 0;
    long failed = 0;
    long deferred = 0;         // a provider's request budget was used up
    long deferred_expired = 0; // deferred without a valid token: counts as a failure
    long not_tried = 0;        // the deadline or a stop signal came first
    long retries = 0;          // token requests beyond the first of each account
    // Some failure is the account's own (a provider answered), not only the service's.
    bool account_level = false;
    // One line per account not refreshed, "account 3 a@example.com (zoho): failed: ...", in
    // the order they happened, then `untried` if there is one.
    std::vector<std::string> problems;
    // "4 account(s) not tried: ..." when chunks were left out, else "".
    std::string untried;

    long failures() const { return needs_reauth + failed + deferred_expired + not_tried; }
    // Accounts were due and none was refreshed, and no provider gave an answer of its own:
    // the endpoints were unreachable or failing, or the time ran out.
    bool none_reached() const { return failures() > 0 && refreshed == 0 && !account_level; }
};

// Refreshes the due ones of `selected` in chunks of run.chunk through refresh_accounts, until
// the settings' deadline or a stop signal (the rest count as not_tried, see
// RefreshReport::untried). Logs each outcome; calls `on_problem` (if set) with each account's
// problem line as it happens, on the calling thread. Throws what refresh_accounts throws.
RefreshReport refresh_due_accounts(state::StateStore& store, const ProviderTable& providers,
                                   std::vector<state::Account> selected, const RefreshRun& run,
                                   const RefreshSettings& settings,
                                   const std::function<void(const std::string&)>& on_problem);

} // namespace crmsync::oauth
