#pragma once

#include "cmd/common.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/state/accounts.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::cli {

// Flags shared by refresh-tokens and token: where the token endpoints are and how to ask them.
struct TokenEndpointOptions {
    std::string state_path;
    std::string google_token_url;  // "" = Google's
    std::string zoho_accounts_url; // "" = each account's data centre
    std::string timeout = "30s";   // one token request
};

struct RefreshTokensOptions {
    CommonOptions common;
    TokenEndpointOptions endpoints;
    std::string within = "10m";
    std::string account;  // ID or email; "" = every active account
    std::string provider; // google | zoho | "" = both
    bool force = false;
    double rate = 5;        // token requests per second over all workers; 0 = no limit
    std::size_t chunk = 50; // accounts per chunk; each chunk is stored in one transaction
    std::size_t concurrency = 4;
};

// Adds the endpoint flags; call after add_common (it drops common's Dialfire token flags).
void add_token_endpoint_options(CLI::App& app, TokenEndpointOptions& options);
void add_refresh_tokens(CLI::App& app, RefreshTokensOptions& options);
int run_refresh_tokens(const RefreshTokensOptions& options);

// ---- The refresh engine, shared with `crmsync token` ----------------------------------------

struct RefreshSettings {
    std::string google_token_url;
    std::string zoho_accounts_url;
    bool verify_tls = true;
    std::chrono::milliseconds timeout{30'000};
    http::RetryPolicy retry;
    double rate = 5;
    std::size_t concurrency = 4;
    std::optional<std::chrono::steady_clock::time_point> deadline;
};

// Checks the endpoint flags (exit 2 before any I/O) and fills the settings they decide.
RefreshSettings refresh_settings(const CommonOptions& common,
                                 const TokenEndpointOptions& endpoints);

struct RefreshOutcome {
    enum class Kind {
        refreshed,    // a new access token is stored
        needs_reauth, // invalid_grant or invalid_client: stored as needs_reauth
        failed,       // stored as error: the next run tries again
        deferred,     // Zoho's 10 tokens per 10 minutes are used up; nothing was sent
        not_tried,    // the time budget ran out or a signal came first
    };
    Kind kind = Kind::not_tried;
    std::string message;     // for people: what happened and what to do
    bool answered = false;   // the provider gave a definite answer (not only 5xx/network)
    int requests = 0;        // sent to the token endpoint
    state::TokenGrant grant; // when refreshed
};

// Refreshes `accounts` (at most settings.concurrency requests in flight, paced by
// settings.rate), retrying network errors, 5xx and damaged answers with backoff, never sending
// a Zoho refresh token more than 10 requests per 10 minutes (counted in the state file, every
// request included). Stores every outcome in one transaction at the end. The calling thread
// owns `store`; the workers only talk HTTP. Outcomes come back in the order of `accounts`.
std::vector<RefreshOutcome> refresh_accounts(state::StateStore& store,
                                             const std::vector<state::Account>& accounts,
                                             const RefreshSettings& settings);

// Registers an account's secrets for redaction.
void register_account_secrets(const state::Account& account);

// "account 3 alice@example.com (google)", for messages.
std::string describe_account(const state::Account& account);

} // namespace crmsync::cli
