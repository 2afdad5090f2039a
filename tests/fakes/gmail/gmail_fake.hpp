#pragma once

// An in-process fake of Gmail's users.messages list and get (reference gmail.md): a real HTTP
// server on 127.0.0.1.
//
//   GET /gmail/v1/users/{user}/messages?q=...&maxResults=N (default 100, max 500)&pageToken=T
//     q: space-separated terms, all must hold: after:<epoch s> / before:<epoch s> (internalDate
//     strictly after / before), from:x, to:x, subject:x or subject:"a b" (case-insensitive
//     substring of the header), anything else a substring of the subject or snippet.
//     Newest first (internalDate, then id). 200 {"messages": [{"id","threadId"}],
//     "nextPageToken"?, "resultSizeEstimate"}; no match: {"resultSizeEstimate": 0} only.
//   GET /gmail/v1/users/{user}/messages/{id}?format=full -> the stored Message; 404 notFound.
//   {user} is "me" or options.email. "Authorization: Bearer <options.access_token>"; else 401
//   UNAUTHENTICATED with errors[0].reason "authError" (google.rpc shape).
// Faults (the common shape plus `reason`) act before authentication: a status fault answers
// the google.rpc body of its status (429 RESOURCE_EXHAUSTED rateLimitExceeded, 403 with
// `reason` (default rateLimitExceeded), 500 backendError, 503 backendError); truncate cuts the
// normal answer in half; reset and malformed as everywhere. POST/DELETE /_fake/faults.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace crmsync::fakes {

struct GmailFakeOptions {
    std::string email = "leads@example.com";
    std::string access_token = "gmail-token-1";
    std::size_t worker_threads = 4;
};

struct GmailFault {
    std::string method;
    std::string path_prefix;
    FaultKind kind = FaultKind::status;
    int status = 429;
    std::optional<std::string> retry_after;
    int delay_ms = 0;
    int count = 1;
    std::string reason; ///< errors[0].reason of a 403 ("" = rateLimitExceeded)

    [[nodiscard]] bool matches(std::string_view request_method, std::string_view path) const {
        return (method.empty() || method == request_method) && path.starts_with(path_prefix);
    }
};

/// The common fault keys plus "reason". Throws std::invalid_argument.
GmailFault gmail_fault_from_json(const nlohmann::json& json);

struct GmailRequest {
    std::string path;
    std::string query; // raw
    std::string authorization;
    int status = 0; // 0: the connection was reset
};

class GmailFake {
public:
    explicit GmailFake(GmailFakeOptions options = {});
    ~GmailFake();
    GmailFake(const GmailFake&) = delete;
    GmailFake& operator=(const GmailFake&) = delete;

    int start(int port = 0);
    void stop();
    int port() const;
    std::string base_url() const; // http://127.0.0.1:PORT

    /// Adds or replaces (by "id") a Message as users.messages.get returns it with format=full.
    void put_message(nlohmann::json message);
    void remove_message(const std::string& id);
    void set_access_token(const std::string& token);
    void inject(GmailFault fault);
    std::vector<GmailRequest> requests() const;

    /// A leaf MessagePart: `bytes` base64url-encoded with '=' padding as Gmail sends them
    /// (the transfer encoding already undone), and its headers.
    static nlohmann::json part(const std::string& mime_type, const std::string& bytes,
                               const std::vector<std::pair<std::string, std::string>>& headers);
    /// A multipart container holding `children` (partIds are assigned by message()).
    static nlohmann::json multipart(const std::string& mime_type,
                                    std::vector<nlohmann::json> children);
    /// A Message around `payload`: id, threadId = id, internalDate (ms as a string), a
    /// snippet, labels; `headers` (From, Subject...) go on the top-level part.
    static nlohmann::json message(const std::string& id, std::int64_t internal_date_ms,
                                  nlohmann::json payload,
                                  const std::vector<std::pair<std::string, std::string>>& headers);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
