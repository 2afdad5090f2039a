#pragma once

#include "lib/core/clock.hpp"
#include "lib/state/state_store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crmsync::state {

// One OAuth account whose access token crmsync keeps fresh (the seed's `auth` record). The
// client secret, refresh token and access token are secrets: callers register them with
// util::register_secret before anything about the account can reach a log.
struct Account {
    std::int64_t id = 0;
    std::string provider; // "google" | "zoho"
    std::string email;    // unique per provider, compared case-insensitively
    std::string owner;    // the owner's login in the CRM (the seed's loginUserUsuario)
    std::string client_id;
    std::string client_secret;
    std::string refresh_token;
    std::string access_token; // empty until the first refresh
    std::optional<SystemTime> expires_at;
    std::string zoho_dc;    // Zoho only: com, eu, in, com.au, jp, com.cn, ca, sa, uk
    std::string api_domain; // Zoho only: the API host the last refresh named
    bool active = true;
    std::string status = "ok"; // ok | needs_reauth | error
    std::string last_error;
    std::string refreshed_at; // ISO-8601 of the last successful refresh, "" if none
    std::string created_at;
    std::string updated_at;
};

// A new access token as a provider granted it.
struct TokenGrant {
    std::string access_token;
    SystemTime expires_at;
    std::string api_domain; // Zoho; empty for Google
};

// What a provider's token endpoint answered to one refresh request.
struct TokenAnswer {
    enum class Kind {
        granted,        // `grant` holds the new access token
        invalid_grant,  // the refresh token is expired, revoked or unknown: authorise again
        invalid_client, // the OAuth client was refused (id, secret, or Zoho data centre)
        throttled,      // the provider grants no more tokens for now (Zoho's per-token limit)
        transient,      // 408, 429, 5xx, a damaged body: another attempt may succeed
        refused,        // any other refusal: another attempt would fare no better
    };
    Kind kind = Kind::refused;
    TokenGrant grant;
    std::string error; // the provider's words: "invalid_grant: Token has been expired or revoked."
    std::optional<std::chrono::milliseconds> retry_after; // transient 429/503 only
};

// The accounts table of the state file. Writes join the caller's transaction if one is open.
class AccountStore {
public:
    explicit AccountStore(StateStore& store) : m_store(store) {}

    // Adds the account, or, when one with the same provider and email exists, replaces its
    // owner, client, secrets and data centre (a new authorisation): status ok, access token,
    // last error and token request history cleared, active flag kept. Returns the id and
    // whether the account is new.
    std::pair<std::int64_t, bool> upsert(const Account& account);

    std::vector<Account> list(const std::string& provider = {});
    std::optional<Account> get(std::int64_t id);
    // By numeric id, or by email (any case) within `provider` ("" = either). Throws
    // Error(usage) when an email names a Google and a Zoho account and no provider is given.
    std::optional<Account> find(const std::string& id_or_email, const std::string& provider = {});

    bool set_active(std::int64_t id, bool active);
    bool remove(std::int64_t id);

    // Store the outcome of a refresh made with `refresh_token`. Nothing changes when the
    // account has been re-authorised (another refresh token) in the meantime; returns whether
    // the row was updated.
    bool record_grant(std::int64_t id, const std::string& refresh_token, const TokenGrant& grant);
    bool record_failure(std::int64_t id, const std::string& refresh_token,
                        const std::string& status, const std::string& error);

    // Requests sent to the token endpoint for the account's refresh token: Zoho grants at most
    // 10 access tokens per refresh token per 10 minutes, and a request that timed out may have
    // been granted, so every request counts. Rows older than `keep` are dropped on the way.
    void record_token_requests(std::int64_t id, SystemTime at, int count,
                               std::chrono::milliseconds keep);
    // Times of the requests at or after `since`, oldest first.
    std::vector<SystemTime> token_requests_since(std::int64_t id, SystemTime since);

private:
    StateStore& m_store;
};

} // namespace crmsync::state
