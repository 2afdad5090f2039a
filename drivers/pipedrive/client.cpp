#include "drivers/pipedrive/client.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/attempt_loop.hpp"
#include "lib/http/json_body.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace crmsync::drivers::pipedrive {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A server that answers 429 this often in a row for one request is not going to let it
// through within a run.
constexpr int k_max_throttled_in_a_row = 50;
constexpr std::size_t k_snippet_bytes = 300;
constexpr int k_leads_page = 500;

std::string snippet(const std::string& body) {
    std::string s = body.substr(0, k_snippet_bytes);
    std::replace_if(
        s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return s;
}

// Pipedrive's own words for a refusal: "error" and "error_info" of its failure envelope.
std::string refusal_text(const http::HttpResponse& response) {
    const auto doc = json::parse(response.body, nullptr, false);
    if (doc.is_object() && doc.contains("error") && doc["error"].is_string()) {
        std::string text = doc["error"].get<std::string>();
        if (doc.contains("error_info") && doc["error_info"].is_string() &&
            !doc["error_info"].get<std::string>().empty()) {
            text += " (" + doc["error_info"].get<std::string>() + ")";
        }
        return fmt::format("HTTP {}: {}", response.status, text);
    }
    return fmt::format("HTTP {}: {}", response.status, snippet(response.body));
}

std::optional<long> header_number(const http::HttpResponse& response, const char* name) {
    const std::string* value = response.header(name);
    if (value == nullptr) {
        return std::nullopt;
    }
    long n = 0;
    const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
    if (ec != std::errc{} || end != value->data() + value->size()) {
        return std::nullopt;
    }
    return n;
}

// Whether a transport failure happened before the request reached the server.
bool never_sent(int curl_code) {
    switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return true;
    default:
        return false;
    }
}

std::int64_t id_of(const json& data, const std::string& what) {
    if (data.is_object() && data.contains("id") && data["id"].is_number_integer()) {
        return data["id"].get<std::int64_t>();
    }
    throw Error(ErrorKind::connection, what + ": the answer has no person id",
                "the next run looks the person up again");
}

} // namespace

Client::Client(ClientOptions options)
    : m_options(std::move(options)), m_http(http::HttpClientOptions{m_options.verify_tls}) {
    if (!m_options.budget) {
        m_options.budget = std::make_shared<BurstBudget>();
    }
    while (!m_options.base_url.empty() && m_options.base_url.back() == '/') {
        m_options.base_url.pop_back();
    }
}

void BurstBudget::acquire(const Clock& clock,
                          const std::optional<std::chrono::steady_clock::time_point>& deadline) {
    std::unique_lock lock(m_mutex);
    bool waited = false;
    const auto started = clock.steady_now();
    for (;;) {
        const auto now = clock.steady_now();
        if (m_resets_at && now >= *m_resets_at) {
            m_resets_at.reset();
            m_remaining.reset(); // a fresh window: its budget is learnt from the next answer
        }
        if (!m_remaining || *m_remaining - m_in_flight > 0) {
            ++m_in_flight;
            if (waited) {
                ++m_waits;
                m_wait_ms += std::chrono::duration_cast<std::chrono::milliseconds>(
                                 clock.steady_now() - started)
                                 .count();
            }
            return;
        }
        if (stop_requested()) {
            throw Error(ErrorKind::interrupted, "interrupted while waiting for Pipedrive");
        }
        if (m_resets_at && deadline && *m_resets_at > *deadline) {
            throw Error(ErrorKind::connection,
                        "Pipedrive's request budget resets after the time budget ends",
                        "raise --max-runtime, or let the next run continue");
        }
        waited = true;
        // Woken by an answer that changes the budget, else at least every 100 ms (the reset,
        // a stop signal).
        const auto left =
            m_resets_at ? std::chrono::duration_cast<std::chrono::milliseconds>(*m_resets_at - now)
                        : 100ms;
        m_changed.wait_for(lock, std::clamp<std::chrono::milliseconds>(left, 1ms, 100ms));
    }
}

void BurstBudget::release(const Clock& clock, const http::HttpResponse* response) {
    {
        std::lock_guard lock(m_mutex);
        --m_in_flight;
        if (response != nullptr) {
            if (const auto remaining = header_number(*response, "x-ratelimit-remaining")) {
                // Answers of one window may arrive out of order: only a lower count is news
                // (a fresh window starts unknown, see acquire()).
                m_remaining = m_remaining ? std::min(*m_remaining, *remaining) : *remaining;
                if (*remaining <= 0) {
                    // Spent: wait for the reset (whole seconds; a missing or zero reset still
                    // pauses briefly, never a hot loop).
                    const auto reset = header_number(*response, "x-ratelimit-reset").value_or(0);
                    m_resets_at =
                        clock.steady_now() + (reset > 0 ? std::chrono::milliseconds(reset * 1000)
                                                        : std::chrono::milliseconds(100));
                }
            }
        }
    }
    m_changed.notify_all();
}

long BurstBudget::waits() const {
    std::lock_guard lock(m_mutex);
    return m_waits;
}

long BurstBudget::wait_ms() const {
    std::lock_guard lock(m_mutex);
    return m_wait_ms;
}

json Client::call(const std::string& method, const std::string& path_and_query, const json* body,
                  const std::string& what) {
    const bool is_write = method != "GET";
    http::HttpRequest request;
    request.method = method;
    request.url = m_options.base_url + path_and_query;
    request.headers = {{"x-api-token", m_options.token}, {"Accept", "application/json"}};
    if (body != nullptr) {
        request.headers.emplace_back("Content-Type", "application/json");
        request.body = body->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    http::AttemptLoop attempts(
        m_options.retry, *m_options.clock, m_options.deadline, what,
        {"Pipedrive", "Pipedrive may be down; the next run continues with the leads left",
         "it is looked up again before it is tried again",
         "the account's API budget may be spent for the day; the next run continues with the "
         "leads left",
         k_max_throttled_in_a_row});
    for (;;) {
        attempts.begin();
        m_options.budget->acquire(*m_options.clock, m_options.deadline);
        ++m_stats.requests;
        http::HttpResponse response;
        http::TransportFailure failure;
        bool may_repeat = true;
        const bool answered = m_http.perform(request, response, failure);
        m_options.budget->release(*m_options.clock, answered ? &response : nullptr);
        if (!answered) {
            if (!http::RetryPolicy::is_retryable_transport(failure.curl_code)) {
                throw Error(ErrorKind::connection,
                            fmt::format("{} failed: {}", what, failure.message),
                            "check --pipedrive-url and TLS settings (--insecure skips checks)");
            }
            attempts.failed(failure.message);
            may_repeat = !is_write || never_sent(failure.curl_code);
        } else if (response.status >= 200 && response.status < 300) {
            auto parsed = http::parse_json_body(response.body);
            if (parsed.doc.is_object() && parsed.doc.value("success", false)) {
                return std::move(parsed.doc);
            }
            attempts.failed(fmt::format("HTTP {} with a damaged body ({} bytes)", response.status,
                                        response.body.size()));
            may_repeat = !is_write;
        } else if (response.status == 429) {
            // Not processed: repeating it is safe for writes too.
            ++m_stats.throttled;
            attempts.throttled(
                "HTTP 429 (over the rate limit)",
                http::RetryPolicy::retry_after(response, m_options.clock->wall_now()));
        } else if (response.status == 401 || response.status == 403) {
            throw Error(ErrorKind::auth,
                        fmt::format("{} was refused: {}", what, refusal_text(response)),
                        "check the Pipedrive API token (--pipedrive-token-env)");
        } else if (!http::RetryPolicy::is_retryable_status(response.status)) {
            throw Error(ErrorKind::data,
                        fmt::format("{} was refused: {}", what, refusal_text(response)));
        } else {
            attempts.failed(refusal_text(response));
            may_repeat = !is_write;
        }
        attempts.pause(may_repeat);
        if (!attempts.last_was_throttled()) {
            ++m_stats.retries;
        }
    }
}

std::optional<std::int64_t> Client::search_persons(const std::string& field,
                                                   const std::string& term) {
    std::optional<std::int64_t> lowest;
    std::string cursor;
    for (;;) {
        std::string path = "/api/v2/persons/search?term=" + util::percent_encode(term) +
                           "&fields=" + field + "&exact_match=true&limit=100";
        if (!cursor.empty()) {
            path += "&cursor=" + util::percent_encode(cursor);
        }
        const auto answer = call("GET", path, nullptr, "searching Pipedrive persons by " + field);
        const auto& data = answer["data"];
        if (data.is_object() && data.contains("items") && data["items"].is_array()) {
            for (const auto& entry : data["items"]) {
                const auto item = entry.is_object() ? entry.value("item", json()) : json();
                if (item.is_object() && item.contains("id") && item["id"].is_number_integer()) {
                    const auto id = item["id"].get<std::int64_t>();
                    lowest = lowest ? std::min(*lowest, id) : id;
                }
            }
        }
        const auto extra = answer.value("additional_data", json());
        if (!extra.is_object() || !extra.contains("next_cursor") ||
            !extra["next_cursor"].is_string()) {
            return lowest;
        }
        cursor = extra["next_cursor"].get<std::string>();
    }
}

std::optional<std::int64_t> Client::find_person(const std::string& email, const std::string& phone,
                                                const std::string& name) {
    if (!email.empty()) {
        if (auto id = search_persons("email", email)) {
            return id;
        }
    }
    if (!phone.empty()) {
        if (auto id = search_persons("phone", phone)) {
            return id;
        }
    }
    if (email.empty() && phone.empty() && !name.empty()) {
        return search_persons("name", name);
    }
    return std::nullopt;
}

std::int64_t Client::create_person(const std::string& name, const std::string& email,
                                   const std::string& phone) {
    json body = {{"name", name}};
    if (!email.empty()) {
        body["emails"] = json::array({{{"value", email}, {"primary", true}, {"label", "work"}}});
    }
    if (!phone.empty()) {
        body["phones"] = json::array({{{"value", phone}, {"primary", true}, {"label", "work"}}});
    }
    const auto answer = call("POST", "/api/v2/persons", &body, "creating a Pipedrive person");
    return id_of(answer["data"], "creating a Pipedrive person");
}

std::optional<std::string> Client::find_lead(std::int64_t person_id,
                                             const std::string& title_marker) {
    for (long start = 0;;) {
        const auto answer = call("GET",
                                 fmt::format("/api/v1/leads?person_id={}&limit={}&start={}",
                                             person_id, k_leads_page, start),
                                 nullptr, "listing the Pipedrive leads of a person");
        const auto& data = answer["data"];
        if (data.is_array()) {
            for (const auto& lead : data) {
                if (lead.is_object() && lead.contains("title") && lead["title"].is_string() &&
                    lead["title"].get<std::string>().starts_with(title_marker) &&
                    lead.contains("id") && lead["id"].is_string()) {
                    return lead["id"].get<std::string>();
                }
            }
        }
        const auto extra = answer.value("additional_data", json());
        const auto pagination = extra.is_object() ? extra.value("pagination", json()) : json();
        if (!pagination.is_object() || !pagination.value("more_items_in_collection", false) ||
            !pagination.contains("next_start") || !pagination["next_start"].is_number_integer()) {
            return std::nullopt;
        }
        const long next = pagination["next_start"].get<long>();
        if (next <= start) {
            return std::nullopt;
        }
        start = next;
    }
}

std::string Client::create_lead(const std::string& title, std::int64_t person_id) {
    const json body = {{"title", title}, {"person_id", person_id}};
    const auto answer = call("POST", "/api/v1/leads", &body, "creating a Pipedrive lead");
    const auto& data = answer["data"];
    if (data.is_object() && data.contains("id") && data["id"].is_string()) {
        return data["id"].get<std::string>();
    }
    throw Error(ErrorKind::connection, "creating a Pipedrive lead: the answer has no lead id",
                "the next run looks the lead up again");
}

} // namespace crmsync::drivers::pipedrive
