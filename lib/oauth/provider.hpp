#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/state/accounts.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::oauth {

// A provider's limit on token requests per refresh token: at most `requests` in any `window`.
// Every request counts, granted or not, since one that timed out may have been granted.
struct RequestBudget {
    int requests = 0;
    std::chrono::minutes window{0};
};

// What the refresh engine needs to know about one OAuth provider's token endpoint. A driver
// implements it (drivers/google, drivers/zoho); cmd/ registers one per provider in a
// ProviderTable. The engine calls, per attempt: token_url -> refresh_request -> (HTTP) ->
// read_refresh_answer, and acts on the answer's kind:
//   granted                        -> stored; the account is ok again
//   invalid_grant, invalid_client  -> stored as needs_reauth (no further attempt)
//   throttled, refused             -> stored as error (no further attempt this run)
//   transient                      -> retried with backoff (Retry-After honoured)
// Implementations hold no mutable state: every method may be called from several worker
// threads at once. None of them does I/O.
class Provider {
public:
    virtual ~Provider() = default;

    // The value of state::Account::provider this provider serves: "google".
    virtual std::string_view name() const = 0;
    // For people: "Google".
    virtual std::string_view title() const = 0;

    // The token endpoint to ask for `account` (an override given at construction wins).
    virtual std::string token_url(const state::Account& account) const = 0;
    // The refresh grant of `account` to `token_url`; secrets go in the body, never the URL.
    virtual http::HttpRequest refresh_request(const std::string& token_url,
                                              const state::Account& account,
                                              std::chrono::milliseconds timeout) const = 0;
    // What one HTTP answer means (see the kinds above); the grant's expiry is counted from
    // `sent_at`, when the request left. Never throws on a malformed body: that is transient.
    virtual state::TokenAnswer read_refresh_answer(const http::HttpResponse& response,
                                                   SystemTime sent_at) const = 0;

    // Words appended to "check the client id and secret" when the client is refused, e.g.
    // " and the data centre (this account uses 'eu')". Default: nothing to add.
    virtual std::string client_hint(const state::Account& /*account*/) const { return {}; }
    // The provider's limit on token requests per refresh token. Default: none, the engine's
    // retry policy and rate are the only bounds.
    virtual std::optional<RequestBudget> request_budget() const { return std::nullopt; }
    // The scheme of the Authorization header that carries an access token to the provider's
    // APIs. Default: the RFC 6750 "Bearer".
    virtual std::string_view authorization_scheme() const { return "Bearer"; }
};

// The providers a run knows, by name. Filled once before use; the const methods may then be
// called from any thread.
class ProviderTable {
public:
    ProviderTable() = default;
    ProviderTable(ProviderTable&&) = default;
    ProviderTable& operator=(ProviderTable&&) = default;

    // Throws Error(internal) when a provider with the same name is already in the table.
    void add(std::unique_ptr<Provider> provider);
    // nullptr when no provider of that name is registered.
    const Provider* find(std::string_view name) const;
    // In the order they were added.
    std::vector<std::string> names() const;

private:
    std::vector<std::unique_ptr<Provider>> m_providers;
};

// The standard refresh grant (RFC 6749 section 6) as a form POST to `token_url`, client
// credentials in the body: what Google and Zoho both take.
http::HttpRequest refresh_grant_request(const std::string& token_url, const state::Account& account,
                                        std::chrono::milliseconds timeout);

} // namespace crmsync::oauth
