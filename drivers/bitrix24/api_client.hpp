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

// Up to k_batch_limit pages of crm.stagehistory.list in one `batch` request (§1.6): command
// h0 asks for the rows after the query's ID, each next command for the rows after the last
// ID of the command before ($result[h<k-1>][items][49][ID]), with halt=1.
struct HistoryBatch {
    // The pages that came, in order, up to the first short page, the first failed command
    // or the first page that does not follow its predecessor. Each holds at most
    // k_page_size items in ID order.
    std::vector<HistoryPage> pages;
    bool last = false; // a page had fewer than k_page_size items: the history ends there
    // The failed command's answer ({"error","error_description"}), null when none failed.
    nlohmann::json failure;
    // A command whose rows do not all lie after its predecessor's last ID: the portal did
    // not resolve the reference as documented. The pages before it are good.
    bool broken_chain = false;
    // Why the whole answer cannot be read (as HistoryPage::unreadable); `pages` is empty.
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

    // `pages` (1..k_batch_limit) pages of crm.stagehistory.list chained in one `batch`
    // request, as HistoryBatch describes; `query.count`, `ids_only` and `only_id` are not
    // used. A sub-call's failure is reported, not thrown. Throws Error(data) when the first
    // command's rows do not lie after `query.after_id` (the portal ignores the filter).
    HistoryBatch stage_history_batch(const HistoryQuery& query, std::size_t pages);

    // After a batch sub-call failed with a transient code (is_transient_error_code) on
    // attempt `attempt` (from 1): sleeps the RetryPolicy's backoff and counts a retry, or
    // throws Error(connection) naming `what` and `last` when the attempts or the deadline
    // run out.
    void backoff_transient(int attempt, const std::string& what, const std::string& last);

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

// Error codes that mean the webhook may not do this (§1.7): the run fails with Error(auth).
bool is_auth_error_code(std::string_view code);

// "CODE (description)" of a {"error","error_description"} answer.
std::string error_text_of(const nlohmann::json& error);
// The "error" of such an answer as text ("" when there is none).
std::string error_code_of(const nlohmann::json& error);

} // namespace crmsync::drivers::bitrix24
