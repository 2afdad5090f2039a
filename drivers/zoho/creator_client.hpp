#pragma once

#include "drivers/contacts/apis.hpp"
#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>

namespace crmsync::drivers::zoho {

struct CreatorClientOptions {
    std::string api_url; // the account's api_domain, e.g. https://www.zohoapis.com
    std::string owner;   // the app owner's account name
    std::string app;
    std::string form;
    std::string report;
    // The Authorization header's value ("Zoho-oauthtoken ..."), asked before every request.
    std::function<std::string()> authorization;
    int max_records = 1000;       // records per report page
    int requests_per_minute = 50; // paced below Creator's per-minute limit; 0: no pacing
    bool verify_tls = true;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    const Clock* clock = &Clock::real();
};

// Zoho Creator v2.1 data API for one form and its report (apis.md §3.2, zoho-creator.md):
// add records (<= 200 per request), get records with criteria and record_cursor paging,
// update and delete by ID.
//
// Creator answers many failures with HTTP 200: the `code` decides (3000 = success), for the
// whole answer and for each record. 3100 (no records) is an empty result. A 429 or code 2955
// (per-minute limit) is waited out and repeated; requests are paced to requests_per_minute.
// 5xx and transport failures are repeated for reads, updates and deletes (by ID, so a repeat
// changes nothing), never for adds. 401 (1030) throws Error(auth); code 4000 (daily limit)
// Error(connection); other refusals of a whole request Error(data) with Zoho's code and
// message. Not thread safe.
class CreatorClient final : public contacts::CreatorApi {
public:
    explicit CreatorClient(CreatorClientOptions options);

    std::vector<Outcome> add_records(const std::vector<nlohmann::json>& records) override;
    std::vector<nlohmann::json> records(const std::string& criteria) override;
    Outcome update_record(const std::string& id, const nlohmann::json& data) override;
    Outcome delete_record(const std::string& id) override;

    long calls() const { return m_calls; }
    long throttled() const { return m_throttled; }
    const std::string& api_url() const { return m_options.api_url; }

private:
    struct Answer {
        long status = 0;
        nlohmann::json doc; // object; {} for a body that is not JSON
        std::string cursor; // record_cursor header
    };
    Answer call(const std::string& method, const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& extra_headers,
                const nlohmann::json* body, const std::string& what, bool repeatable);
    void pace();
    std::string data_path() const;

    CreatorClientOptions m_options;
    http::HttpClient m_http;
    std::deque<std::chrono::steady_clock::time_point> m_sent; // last minute's requests
    long m_calls = 0;
    long m_throttled = 0;
};

} // namespace crmsync::drivers::zoho
