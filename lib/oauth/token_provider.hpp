#pragma once

#include "lib/core/clock.hpp"
#include "lib/oauth/provider.hpp"
#include "lib/oauth/refresh_engine.hpp"
#include "lib/state/accounts.hpp"
#include "lib/state/state_store.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace crmsync::oauth {

// An access token ready to send.
struct AccessToken {
    std::int64_t account_id = 0;
    std::string provider; // "google" | "zoho"
    std::string email;
    std::string access_token; // a secret; registered for redaction
    SystemTime expires_at;
    std::string api_domain; // Zoho: the API host of the account's data centre; "" otherwise
    std::string
        authorization;      // the Authorization header's value: "Bearer ...", "Zoho-oauthtoken ..."
    bool refreshed = false; // a token request was made for it
    // Not empty when the token is valid for less than asked, because the provider's request
    // budget is used up: why (the token is still valid for at least a second).
    std::string deferred;
};

// "Give me a valid access token of account X": the way a driver gets a Google or Zoho token.
class TokenProvider {
public:
    virtual ~TokenProvider() = default;

    // A token of `account` (its id or its email; `provider` tells a Google and a Zoho account
    // with one email apart, "" = either) valid for at least `min_valid`, refreshed first if
    // it is not. Blocks for the refresh (and for another process's refresh, see below).
    // Throws crmsync::Error:
    //   usage       the account is unknown, disabled, or was removed meanwhile
    //   auth        the account needs re-authorization (invalid_grant / invalid_client)
    //   connection  the refresh failed, was not tried in time, or the provider's request
    //               budget is used up and the stored token has expired
    //   interrupted a stop signal came first
    //   io          the state file failed
    // Not thread safe: one caller thread (it uses a StateStore).
    virtual AccessToken token(const std::string& account, const std::string& provider,
                              std::chrono::milliseconds min_valid) = 0;
};

// Optional callbacks for a caller that reports on what happens (a command's log and summary).
struct TokenHooks {
    // The account was found and is active; before any check of its token.
    std::function<void(const state::Account&)> found;
    // Its token must be refreshed; before waiting for the refresh lock.
    std::function<void(const state::Account&)> refresh_due;
};

struct StateTokenOptions {
    // Timeout, retries, TLS and deadline of a refresh; rate and concurrency are not used (one
    // account at a time, no pacing).
    RefreshSettings refresh;
    // How long to wait for another process (a refresh-tokens run) holding the state file's
    // refresh lock before refreshing anyway: better two refreshes than no token, and a
    // provider's request budget is counted in the state file all the same.
    std::chrono::milliseconds lock_wait{30'000};
    TokenHooks hooks;
};

// A TokenProvider over the accounts in `store` (lib/state/accounts), refreshing through the
// providers in `providers` with refresh_accounts, which stores the outcome. A refresh first
// takes the state file's "refresh-tokens" job lock (waiting up to options.lock_wait), then
// rereads the account: a token another process refreshed meanwhile is used as it is. The lock,
// once taken, is kept for the life of `store`. `store` and `providers` must outlive the result.
std::unique_ptr<TokenProvider> make_state_token_provider(state::StateStore& store,
                                                         const ProviderTable& providers,
                                                         StateTokenOptions options);

} // namespace crmsync::oauth
