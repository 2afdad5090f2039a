#pragma once

#include "lib/http/http_client.hpp"
#include "lib/http/multi_client.hpp"
#include "lib/http/retry_policy.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace crmsync::drivers::bitrix24 {

// List methods answer at most this many rows per call (reference apis.md §1.3).
inline constexpr std::size_t k_page_size = 50;
// Sub-calls per `batch` request (§1.6).
inline constexpr std::size_t k_batch_limit = 50;
// entityTypeId of deals (§1.4).
inline constexpr int k_entity_deal = 2;

// An inbound webhook URL, https://{portal}/rest/{user_id}/{code}/ (§1.1). The code is a secret.
struct WebhookUrl {
    std::string base; // "https://portal.example/rest/1/code/": append a method name
    std::string host; // "portal.example", with ":port" when the URL names one
    std::string code;
};

// Accepts the URL with or without the trailing '/' and with a method name left at its end
// (".../rest/1/code/profile.json", as Bitrix24's webhook page shows it). Throws Error(usage)
// naming `source` (never the URL) when it is not a webhook URL.
WebhookUrl parse_webhook_url(std::string_view text, std::string_view source);

// A cheap read that shows the portal answers and accepts the webhook code (crmsync doctor):
// GET crm.status.list, the call a run makes first.
http::HttpRequest probe_request(const WebhookUrl& webhook);

struct ApiConfig {
    WebhookUrl webhook;
    std::string source; // where the URL came from, for hints: "$B24_WEBHOOK"
    bool verify_tls = true;
    double rate = 2; // requests per second, 0 = no limit (§1.7: 2/s drain on non-Enterprise plans)
};

// A success envelope: {"result": ..., "total": N, "next": N} (§1.2, §1.3).
struct Envelope {
    nlohmann::json result;
    std::optional<std::int64_t> total;
    std::optional<std::int64_t> next;
};

struct HistoryQuery {
    std::int64_t after_id = 0;           // filter >ID
    std::optional<int> category;         // filter CATEGORY_ID
    std::optional<std::string> since;    // filter >=CREATED_TIME, "2024-01-01T00:00:00+00:00"
    bool count = false;                  // start=0 (the portal counts: total) instead of start=-1
    bool ids_only = false;               // select ID alone (finds the items of an unreadable page)
    std::optional<std::int64_t> only_id; // filter ID = this, instead of the filters above
};

struct HistoryPage {
    std::vector<nlohmann::json> items; // result.items, in ID order
    std::optional<std::int64_t> total; // only when counted
    // Why the page could not be read, empty when it was: the same text that is not JSON came
    // twice (no accident of the transfer), or it held values nested deeper than
    // http::k_max_json_depth. `items` is then empty.
    std::string unreadable;
};

// The Bitrix24 REST API through an inbound webhook: POST JSON to {base}{method}, at most
// `rate` requests per second, every request retried per the RetryContext (503
// QUERY_LIMIT_EXCEEDED, 429 OPERATION_TIME_LIMIT, 5xx, resets, cut-off bodies). A 401/403
// throws Error(auth) with a hint about the webhook; other 4xx Error(config); a body that is
// not the documented shape Error(data). Not thread safe: one thread uses a client at a time.
class ApiClient {
public:
    ApiClient(ApiConfig config, http::RetryContext retry);

    // One method call; the envelope's result, total and next.
    Envelope call(const std::string& method, const nlohmann::json& params);

    // One page of crm.stagehistory.list for deals, ordered by ID ascending (§1.3's bulk
    // pattern: filter >ID, start=-1 unless counting). Items lacking a readable ID are kept;
    // the caller rejects them. A page whose content cannot be read is returned marked
    // `unreadable` rather than failing the run: one hostile item must not stop the job.
    HistoryPage stage_history(const HistoryQuery& query);

    // Every deal stage of crm.status.list (ENTITY_ID DEAL_STAGE and DEAL_STAGE_<n>), or only
    // those of one pipeline; all pages.
    std::vector<nlohmann::json> deal_stages(std::optional<int> category);

    // Titles of the given deals via `batch` (crm.deal.list sub-calls, 50 IDs each). Deals the
    // portal does not return (deleted) map to nullopt.
    std::unordered_map<std::int64_t, std::optional<std::string>>
    deal_titles(const std::vector<std::int64_t>& ids);

    long requests() const noexcept { return m_requests; }

private:
    // `unreadable`, when given, accepts a 2xx body that fails to parse twice on the same text,
    // or that holds values nested too deep: it is set to why, and null returned.
    nlohmann::json post(const std::string& method, const nlohmann::json& body,
                        std::string* unreadable = nullptr);
    Envelope call(const std::string& method, const nlohmann::json& params, std::string* unreadable);
    void wait_for_rate_limit();

    ApiConfig m_config;
    http::RetryContext m_retry;
    http::HttpClient m_http;
    http::RateLimiter m_limiter;
    long m_requests = 0;
};

// An integer from a JSON integer or a string of digits (§1.4: real portals may send numbers as
// strings); nullopt otherwise.
std::optional<std::int64_t> integer_field(const nlohmann::json& record, const char* name);

// Error codes that Bitrix24 lifts by itself after a while (§1.7): a batch sub-call failing
// with one of them is retried with backoff.
bool is_transient_error_code(std::string_view code);

} // namespace crmsync::drivers::bitrix24
