#pragma once

// An in-process fake of the Google People API contacts methods (reference apis.md §2.1-2.3): a
// real HTTP server on 127.0.0.1 serving several users, each with their own contacts.
//
//   GET    /v1/people/me/connections?personFields=F (required)&pageSize=N (1-1000, 0 or none =
//          100)&pageToken=T&requestSyncToken=true&syncToken=S
//          Order: last modified ascending. 200 {"connections": [...], "nextPageToken"?,
//          "nextSyncToken"? (last page only, when requestSyncToken or syncToken is set),
//          "totalItems", "totalPeople"}. With syncToken: every contact changed since the token,
//          deleted ones as {"resourceName","etag","metadata":{"deleted":true}}. A sync token
//          names the state when the listing that produced it began, so a change made while a
//          listing pages comes again in the next delta (at least once, never lost).
//   POST   /v1/people:createContact[?personFields=F]  body Person -> the created Person.
//   PATCH  /v1/people/cN:updateContact?updatePersonFields=F[&personFields=F]  body Person with
//          "etag" and "metadata.sources" -> the updated Person; the listed fields are replaced.
//   DELETE /v1/people/cN:deleteContact -> {}.
//   GET    /v1/people/cN?personFields=F -> the Person.
// Person: "resourceName" people/c<19 digits>, "etag", "metadata" {"sources": [{"type":
// "CONTACT","id","etag","updateTime" (RFC 3339, ms)}], "objectType": "PERSON"}, and the stored
// fields (names[] with displayName computed, emailAddresses[], phoneNumbers[], ...), each entry
// with "metadata" {"primary", "source"}; exactly one entry per field is primary. Only the fields
// in personFields come back (resourceName and etag always).
// Errors, google.rpc shape {"error": {"code","message","status","details"?}}:
//   401 UNAUTHENTICATED   no or unknown access token ("Authorization: Bearer T" or
//                         ?access_token=T; apis.md §2.1 body, with WWW-Authenticate)
//   400 INVALID_ARGUMENT  missing/unknown personFields or updatePersonFields, bad page or sync
//                         token, body not a JSON object, more than one name, no etag or no
//                         metadata.sources on update
//   400 FAILED_PRECONDITION + ErrorInfo EXPIRED_SYNC_TOKEN: a sync token older than
//                         sync_token_lifetime (fake clock) or expired by expire_sync_tokens();
//                         options.expired_sync_token_status = 410 answers 410 with the same body
//   400 FAILED_PRECONDITION  update with a stale etag
//   404 NOT_FOUND         unknown or deleted contact
//   429 RESOURCE_EXHAUSTED   more than per_minute_limit requests by one user in the last 60 s
//                         (sliding window, fake clock; refused requests do not fill the window)
// Faults (tests/fakes/common/fault.hpp) act before authentication and answer the google.rpc body
// of their status (429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, ...).
//
// Control routes (no auth, JSON; a bad request answers 400):
//   POST   /_fake/users  {"user","access_token"?|"access_tokens"?: [...],"refresh_token"?}
//   POST   /_fake/users/{user}/contacts  body Person -> the stored Person (server-side add)
//   GET    /_fake/users/{user}/contacts  -> {"contacts": [live Persons, all fields],
//                                            "deleted": [resourceNames]}
//   POST   /_fake/users/{user}/contacts/people/cN  body {field: value, ...} -> edited Person
//   DELETE /_fake/users/{user}/contacts/people/cN  -> {}
//   POST   /_fake/users/{user}/expire_sync_tokens  -> {}
//   POST   /_fake/settings  {"per_minute_limit"?: n (0 = off), "expired_sync_token_status"?:
//                           400|410}
//   GET    /_fake/stats  -> {"users": {user: {"requests","throttled","contacts"}},
//                            "paths": {path: n}}
//   POST|DELETE /_fake/faults, POST /_fake/clock?offset_ms=N, POST /_fake/shutdown.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::fakes {

struct PeopleFakeOptions {
    /// Requests per user per 60 s before 429; 0 = no limit. The real per-minute quota is not
    /// documented (apis.md §2.2 [U]).
    int per_minute_limit = 0;
    /// 400 as Google answers (apis.md §2.2); 410 for clients that must accept both.
    int expired_sync_token_status = 400;
    /// Sync tokens expire this long after they were issued (Google: 7 days after the full sync).
    std::chrono::hours sync_token_lifetime{24 * 7};
    std::size_t worker_threads = 4;
};

struct PeopleRequest {
    std::string method;
    std::string path;  ///< Without the query.
    std::string query; ///< Raw.
    std::string user;  ///< "" when not authenticated.
    int status = 0;    ///< 0: the connection was reset.
};

/// Counts for one user.
struct PeopleUserStats {
    std::size_t requests = 0;  ///< Authenticated API requests, throttled ones included.
    std::size_t throttled = 0; ///< Answered 429 by the per-minute limit.
    std::size_t contacts = 0;  ///< Live (not deleted) contacts.
};

class PeopleFake {
public:
    /// Maps an access token that no user registered to a refresh token (e.g. via
    /// OAuthTokenFake::validate); the user registered with that refresh token is the caller.
    using TokenResolver =
        std::function<std::optional<std::string>(const std::string& access_token)>;

    explicit PeopleFake(PeopleFakeOptions options = {});
    ~PeopleFake();
    PeopleFake(const PeopleFake&) = delete;
    PeopleFake& operator=(const PeopleFake&) = delete;

    /// Binds 127.0.0.1:`port` (0 = any free port) and returns the bound port.
    int start(int port = 0);
    void stop();
    [[nodiscard]] int port() const;
    /// "http://127.0.0.1:PORT", what a client uses as https://people.googleapis.com.
    [[nodiscard]] std::string base_url() const;

    // ---- Users ------------------------------------------------------------------------------
    /// Adds the user if new; adds `access_token` (unless "") to its tokens and sets its refresh
    /// token (unless ""). Throws std::invalid_argument for an empty user or a token that
    /// belongs to another user.
    void add_user(const std::string& user, const std::string& access_token,
                  const std::string& refresh_token = "");
    void set_token_resolver(TokenResolver resolver);

    // ---- Contacts, server side (each change bumps the etag and updateTime) -----------------
    /// Stores a new contact from a Person body (names, emailAddresses, phoneNumbers, ...);
    /// returns it with every field. Throws std::out_of_range for an unknown user,
    /// std::invalid_argument for a bad body.
    nlohmann::json add_contact(const std::string& user, const nlohmann::json& person);
    /// Replaces the given top-level fields ({"emailAddresses": [...]}); returns the Person.
    /// Throws std::out_of_range for an unknown user or contact.
    nlohmann::json edit_contact(const std::string& user, const std::string& resource_name,
                                const nlohmann::json& fields);
    /// Throws std::out_of_range for an unknown user or contact.
    void delete_contact(const std::string& user, const std::string& resource_name);
    /// Live contacts with every field, oldest change first.
    [[nodiscard]] std::vector<nlohmann::json> contacts(const std::string& user) const;
    /// Every sync token issued to the user so far answers as expired.
    void expire_sync_tokens(const std::string& user);

    // ---- Settings, faults, statistics ------------------------------------------------------
    void set_per_minute_limit(int limit);
    /// 400 or 410; throws std::invalid_argument otherwise.
    void set_expired_sync_token_status(int status);
    void inject(Fault fault);
    void clear_faults();
    /// Faults injected and not yet taken by a request: 0 once the last one has arrived.
    [[nodiscard]] std::size_t pending_faults() const;
    /// Throws std::out_of_range for an unknown user.
    [[nodiscard]] PeopleUserStats stats(const std::string& user) const;
    /// The most recent requests (at most 100,000), oldest first.
    [[nodiscard]] std::vector<PeopleRequest> requests() const;
    void set_clock_offset(std::chrono::milliseconds offset);
    /// Called (on a server thread) by POST /_fake/shutdown; must only signal the owner.
    void set_shutdown_handler(std::function<void()> handler);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
