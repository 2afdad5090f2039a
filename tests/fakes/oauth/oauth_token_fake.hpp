#pragma once

// What the OAuth token endpoint fakes (GoogleTokenFake, ZohoAccountsFake) share: a real HTTP
// server on 127.0.0.1 with registered accounts, issued access tokens, fault injection, request
// statistics and an injectable clock. Subclasses supply the provider's rules in answer().
//
// A token request goes: fault (tests/fakes/common/fault.hpp; faults act before everything else) ->
// answer() under the fake's data lock -> recorded. Unknown paths get 404 and are recorded.
// With control endpoints (the executable), these answer on the same port without auth:
//   POST /_fake/accounts (an account object or an array), POST /_fake/revoke?refresh_token=
//   [&revoked=false], POST /_fake/faults, DELETE /_fake/faults, POST /_fake/clock?offset_ms=N,
//   GET /_fake/stats, GET /_fake/token?access_token=T, POST /_fake/shutdown.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

/// One OAuth client and one of its refresh tokens. A client may have several refresh tokens
/// (one account each); its secret must be the same in all of them.
struct OAuthAccount {
    std::string client_id;
    std::string client_secret;
    std::string refresh_token;
    std::string scope;    ///< Sent back as "scope"; "" leaves the key out.
    bool revoked = false; ///< Revoked: refreshing fails and issued access tokens stop validating.
};

/// Reads {"client_id","client_secret","refresh_token","scope","revoked"}; the first three are
/// required. Throws std::invalid_argument on missing keys or wrong types.
OAuthAccount oauth_account_from_json(const nlohmann::json& json);

struct IssuedToken {
    std::string access_token;
    std::string refresh_token;
    std::string client_id;
    std::string scope;
    std::chrono::system_clock::time_point issued_at; ///< The fake's clock.
    std::chrono::system_clock::time_point expires_at;
};

/// The parameters of one token request, each source decoded separately because providers
/// differ in which they read. Repeated names keep their first value.
struct TokenParams {
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> form; ///< Only for Content-Type x-www-form-urlencoded.
};

struct TokenRequest {
    std::string method;
    std::string path;  ///< Without the query.
    std::string query; ///< Raw text after '?', "" if none.
    TokenParams params;
    int status = 0;    ///< 0 when the connection was reset.
    std::string error; ///< The "error" member of the answer, "" for a success or a fault.
    std::optional<FaultKind> fault;
    std::int64_t at_ms = 0; ///< Fake clock, ms since the epoch.
    int remote_port = 0;
};

/// What a provider's rules answer to one token request.
struct TokenAnswer {
    int status = 200;
    std::string body; ///< JSON.
};

class OAuthTokenFake {
public:
    virtual ~OAuthTokenFake();
    OAuthTokenFake(const OAuthTokenFake&) = delete;
    OAuthTokenFake& operator=(const OAuthTokenFake&) = delete;

    /// Binds 127.0.0.1:`port` (0 = any free port), serves on background threads and returns
    /// the bound port. Call once; throws std::runtime_error if binding fails.
    int start(int port = 0);
    /// Stops serving and joins the threads; idempotent. Requests in a `slow` fault are cut short.
    void stop();
    [[nodiscard]] int port() const;
    /// "http://127.0.0.1:PORT"
    [[nodiscard]] std::string base_url() const;
    /// base_url() + the provider's token path.
    [[nodiscard]] std::string token_url() const;

    // ---- Accounts ---------------------------------------------------------------------------
    /// Registers (or replaces) the refresh token's account. Throws std::invalid_argument when
    /// the client is known with another secret, or the refresh token belongs to another client.
    void add_account(OAuthAccount account);
    /// Throws std::out_of_range for an unknown refresh token.
    void set_revoked(const std::string& refresh_token, bool revoked = true);

    // ---- Faults -----------------------------------------------------------------------------
    void inject(Fault fault);
    void clear_faults();
    /// Sum of the remaining counts of all injected faults.
    [[nodiscard]] std::size_t pending_faults() const;

    // ---- Statistics -------------------------------------------------------------------------
    /// Requests (not /_fake/...) whose path starts with `path_prefix`.
    [[nodiscard]] std::size_t request_count(std::string_view path_prefix = "") const;
    /// The most recent requests (at most 100,000), oldest first.
    [[nodiscard]] std::vector<TokenRequest> requests() const;
    void reset_stats();
    /// Access tokens issued for this refresh token since the start (not reset by reset_stats).
    [[nodiscard]] std::size_t tokens_issued(const std::string& refresh_token) const;
    /// Every access token issued, oldest first.
    [[nodiscard]] std::vector<IssuedToken> issued_tokens() const;
    /// The token if this fake issued it, it has not expired by the fake's clock and its
    /// refresh token is not revoked; for API fakes that check Authorization headers.
    [[nodiscard]] std::optional<IssuedToken> validate(const std::string& access_token) const;

    // ---- Clock ------------------------------------------------------------------------------
    /// The fake's clock = system clock + offset; drives expiry and rate-limit windows.
    void set_clock_offset(std::chrono::milliseconds offset);
    [[nodiscard]] std::chrono::system_clock::time_point now() const;

    /// Called (on a server thread) when POST /_fake/shutdown arrives; it must not call stop()
    /// itself, only signal the owner.
    void set_shutdown_handler(std::function<void()> handler);

protected:
    /// Accounts and issued tokens, as answer() sees them (under the fake's data lock).
    class Ledger {
    public:
        /// nullptr for an unknown client.
        [[nodiscard]] const std::string* client_secret(const std::string& client_id) const;
        /// nullptr for an unknown refresh token.
        [[nodiscard]] const OAuthAccount* account(const std::string& refresh_token) const;
        /// Access tokens issued for the refresh token after `after` (exclusive).
        [[nodiscard]] std::size_t issued_after(const std::string& refresh_token,
                                               std::chrono::system_clock::time_point after) const;
        const IssuedToken& issue(const OAuthAccount& account, std::string access_token,
                                 std::chrono::seconds lifetime);
        [[nodiscard]] std::chrono::system_clock::time_point now() const;
        /// `n` random lower-case hex digits, for token text.
        [[nodiscard]] std::string random_hex(std::size_t n);

    private:
        friend class OAuthTokenFake;
        struct State;
        explicit Ledger(State& state) : m_state(state) {}
        State& m_state;
    };

    struct Setup {
        std::string token_path;               ///< e.g. "/token"
        std::vector<std::string> extra_paths; ///< Served exactly like token_path.
        std::string content_type;             ///< Of every answer, errors included.
        std::vector<std::pair<std::string, std::string>> headers; ///< Added to every answer.
        bool control_endpoints = false;
        std::size_t worker_threads = 4;
    };

    explicit OAuthTokenFake(Setup setup);

    /// The provider's rules for one POST to a token path that no fault took. Called on a
    /// server thread with the data lock held, so it must not call public methods. Subclasses
    /// call stop() in their destructor, before this stops being callable.
    virtual TokenAnswer answer(const TokenParams& params, Ledger& ledger) = 0;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
