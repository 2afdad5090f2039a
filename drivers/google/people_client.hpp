#pragma once

#include "drivers/contacts/apis.hpp"
#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace crmsync::drivers::google {

inline constexpr const char* k_people_url = "https://people.googleapis.com";

struct PeopleClientOptions {
    std::string base_url = k_people_url;
    // The Authorization header's value ("Bearer ..."), asked before every request so that a
    // token is refreshed when it runs out.
    std::function<std::string()> authorization;
    std::string person_fields = "names,emailAddresses,phoneNumbers"; // besides metadata
    long call_budget = 80; // requests per run (retries included); <= 0: no limit
    bool verify_tls = true;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    const Clock* clock = &Clock::real();
};

// The People API for one Google account (apis.md §2.2-2.3): people/me/connections with sync
// tokens, people:createContact, :updateContact with the etag, GET of one person.
//
// Every attempt counts against the call budget; once it is spent a request throws
// Error(connection) without being sent (callers ask calls_left() first). 429 (and 403
// RESOURCE_EXHAUSTED) is waited out (Retry-After, else backoff) and repeated; 5xx, transport
// failures and damaged bodies are repeated for every request but createContact, whose lost
// answer may hide a created contact (the caller looks for it on the next run). 401/403 throw
// Error(auth); other refusals Error(data) with Google's message. Not thread safe.
class PeopleClient final : public contacts::PeopleApi {
public:
    explicit PeopleClient(PeopleClientOptions options);

    Page list_connections(const std::string& sync_token, const std::string& page_token,
                          int page_size) override;
    nlohmann::json create_contact(const nlohmann::json& person) override;
    std::optional<nlohmann::json> update_contact(const nlohmann::json& person) override;
    std::optional<nlohmann::json> get_contact(const std::string& resource_name) override;
    long calls_left() const override;

    long calls() const { return m_calls; }
    long throttled() const { return m_throttled; }

private:
    // One request with the rules above. Returns the answer of a 2xx, or of a 400/404/410/412
    // when `pass_refusals` (the caller reads those).
    http::HttpResponse call(const std::string& method, const std::string& path_and_query,
                            const nlohmann::json* body, const std::string& what, bool repeatable,
                            bool pass_refusals);

    PeopleClientOptions m_options;
    http::HttpClient m_http;
    long m_calls = 0;
    long m_throttled = 0;
};

} // namespace crmsync::drivers::google
