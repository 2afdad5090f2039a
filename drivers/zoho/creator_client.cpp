#include "drivers/zoho/creator_client.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/attempt_loop.hpp"
#include "lib/http/json_body.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace crmsync::drivers::zoho {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr long k_success = 3000;
constexpr long k_no_records = 3100;
constexpr long k_no_such_id = 3190;
constexpr long k_per_minute_limit = 2955;
constexpr long k_daily_limit = 4000;
constexpr long k_auth_failure = 1030;
constexpr int k_max_throttled_in_a_row = 20;
constexpr std::size_t k_snippet_bytes = 300;
constexpr std::size_t k_max_add = 200;

long code_of(const json& doc) {
    if (doc.is_object() && doc.contains("code")) {
        if (doc["code"].is_number_integer()) {
            return doc["code"].get<long>();
        }
        if (doc["code"].is_string()) {
            try {
                return std::stol(doc["code"].get<std::string>());
            } catch (const std::exception&) {
                return 0;
            }
        }
    }
    return 0;
}

// Zoho's words for a refusal: code, message and any `error` detail.
std::string refusal(const json& doc) {
    std::string text = fmt::format("code {}", code_of(doc));
    if (doc.is_object() && doc.contains("message") && doc["message"].is_string()) {
        text += ": " + doc["message"].get<std::string>();
    }
    if (doc.is_object() && doc.contains("error") && !doc["error"].is_null()) {
        text += " " + doc["error"]
                          .dump(-1, ' ', false, json::error_handler_t::replace)
                          .substr(0, k_snippet_bytes);
    }
    return text;
}

std::string id_of(const json& data) {
    if (data.is_object() && data.contains("ID")) {
        if (data["ID"].is_string()) {
            return data["ID"].get<std::string>();
        }
        if (data["ID"].is_number_integer()) {
            return std::to_string(data["ID"].get<long long>());
        }
    }
    return {};
}

} // namespace

CreatorClient::CreatorClient(CreatorClientOptions options)
    : m_options(std::move(options)), m_http(http::HttpClientOptions{m_options.verify_tls}) {
    while (!m_options.api_url.empty() && m_options.api_url.back() == '/') {
        m_options.api_url.pop_back();
    }
}

std::string CreatorClient::data_path() const {
    return "/creator/v2.1/data/" + util::percent_encode(m_options.owner) + "/" +
           util::percent_encode(m_options.app);
}

void CreatorClient::pace() {
    if (m_options.requests_per_minute <= 0) {
        return;
    }
    const auto& clock = *m_options.clock;
    for (;;) {
        const auto now = clock.steady_now();
        while (!m_sent.empty() && now - m_sent.front() >= 60s) {
            m_sent.pop_front();
        }
        if (m_sent.size() < static_cast<std::size_t>(m_options.requests_per_minute)) {
            m_sent.push_back(now);
            return;
        }
        const auto until = m_sent.front() + 60s;
        if (m_options.deadline && until > *m_options.deadline) {
            throw Error(ErrorKind::connection,
                        "Zoho Creator's per-minute request limit is reached and the time "
                        "budget ends first",
                        "raise --max-runtime, or let the next run continue");
        }
        sleep_unless_stopped(clock,
                             std::chrono::duration_cast<std::chrono::milliseconds>(until - now),
                             "Zoho Creator");
    }
}

CreatorClient::Answer
CreatorClient::call(const std::string& method, const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& extra_headers,
                    const json* body, const std::string& what, bool repeatable) {
    http::AttemptLoop attempts(m_options.retry, *m_options.clock, m_options.deadline, what,
                               {"Zoho Creator", "Zoho Creator may be down; the next run continues",
                                "the next run looks for the records before adding them again",
                                "the next run continues", k_max_throttled_in_a_row});
    for (;;) {
        attempts.begin();
        pace();
        http::HttpRequest request;
        request.method = method;
        request.url = m_options.api_url + path;
        request.headers = {{"Authorization", m_options.authorization()},
                           {"Accept", "application/json"}};
        for (const auto& header : extra_headers) {
            request.headers.push_back(header);
        }
        if (body != nullptr) {
            request.headers.emplace_back("Content-Type", "application/json");
            request.body = body->dump(-1, ' ', false, json::error_handler_t::replace);
        }
        ++m_calls;
        http::HttpResponse response;
        http::TransportFailure failure;
        if (!m_http.perform(request, response, failure)) {
            if (!http::RetryPolicy::is_retryable_transport(failure.curl_code)) {
                throw Error(ErrorKind::connection,
                            fmt::format("{} failed: {}", what, failure.message),
                            "check --zoho-api-url and TLS settings");
            }
            attempts.failed(failure.message);
        } else {
            auto parsed = http::parse_json_body(response.body);
            const json doc = parsed.doc.is_object() ? std::move(parsed.doc) : json::object();
            const long code = code_of(doc);
            if (response.status == 429 || code == k_per_minute_limit) {
                ++m_throttled;
                attempts.throttled(
                    fmt::format("HTTP {} {}", response.status, refusal(doc)),
                    http::RetryPolicy::retry_after(response, m_options.clock->wall_now()));
            } else if (response.status == 401 || code == k_auth_failure) {
                throw Error(ErrorKind::auth, fmt::format("{} was refused: {}", what, refusal(doc)),
                            "authorise the Zoho account again (crmsync accounts add)");
            } else if (code == k_daily_limit) {
                throw Error(ErrorKind::connection,
                            fmt::format("{}: Zoho Creator's daily API limit is reached ({})", what,
                                        refusal(doc)),
                            "the next run continues once the limit resets");
            } else if (response.status >= 500) {
                attempts.failed(fmt::format("HTTP {}", response.status));
            } else if (!doc.empty()) {
                Answer answer;
                answer.status = response.status;
                answer.doc = doc;
                if (const auto* cursor = response.header("record_cursor")) {
                    answer.cursor = *cursor;
                }
                return answer;
            } else if (response.status >= 200 && response.status < 300) {
                attempts.failed(fmt::format("HTTP {} with a damaged body", response.status));
            } else {
                throw Error(ErrorKind::data,
                            fmt::format("{} was refused: HTTP {}: {}", what, response.status,
                                        response.body.substr(0, k_snippet_bytes)),
                            "check --zoho-owner, --zoho-app, --zoho-form and --zoho-report");
            }
        }
        attempts.pause(repeatable);
    }
}

std::vector<CreatorClient::Outcome> CreatorClient::add_records(const std::vector<json>& records) {
    std::vector<Outcome> out;
    for (std::size_t from = 0; from < records.size(); from += k_max_add) {
        const auto to = std::min(records.size(), from + k_max_add);
        const json body = {
            {"data", json(std::vector<json>(records.begin() + static_cast<long>(from),
                                            records.begin() + static_cast<long>(to)))},
            {"result", {{"message", true}}}};
        const std::string what = "adding records to Zoho Creator form " + m_options.form;
        const auto answer =
            call("POST", data_path() + "/form/" + util::percent_encode(m_options.form), {}, &body,
                 what, false);
        const auto& results = answer.doc.contains("result") && answer.doc["result"].is_array()
                                  ? answer.doc["result"]
                                  : json::array();
        if (results.empty()) {
            throw Error(ErrorKind::data, fmt::format("{} was refused: HTTP {} {}", what,
                                                     answer.status, refusal(answer.doc)));
        }
        for (std::size_t i = from; i < to; ++i) {
            Outcome o;
            const auto k = i - from;
            if (k < results.size()) {
                const auto& r = results[k];
                o.ok = code_of(r) == k_success;
                o.id = id_of(r.value("data", json()));
                if (!o.ok) {
                    o.error = refusal(r);
                }
            } else {
                o.error = "Zoho's answer has no result for this record";
            }
            out.push_back(std::move(o));
        }
    }
    return out;
}

std::vector<json> CreatorClient::records(const std::string& criteria) {
    std::vector<json> out;
    std::string path = data_path() + "/report/" + util::percent_encode(m_options.report) +
                       "?max_records=" + std::to_string(m_options.max_records);
    if (!criteria.empty()) {
        path += "&criteria=" + util::percent_encode(criteria);
    }
    const std::string what = "reading Zoho Creator report " + m_options.report;
    std::string cursor;
    for (;;) {
        std::vector<std::pair<std::string, std::string>> headers;
        if (!cursor.empty()) {
            headers.emplace_back("record_cursor", cursor);
        }
        const auto answer = call("GET", path, headers, nullptr, what, true);
        const long code = code_of(answer.doc);
        if (code == k_no_records) {
            return out;
        }
        if (code != k_success) {
            throw Error(
                ErrorKind::data,
                fmt::format("{} was refused: HTTP {} {}", what, answer.status, refusal(answer.doc)),
                "check the report name and that it shows the mapped fields");
        }
        if (answer.doc.contains("data") && answer.doc["data"].is_array()) {
            for (const auto& record : answer.doc["data"]) {
                if (record.is_object()) {
                    out.push_back(record);
                }
            }
        }
        if (answer.cursor.empty() || answer.cursor == cursor) {
            return out;
        }
        cursor = answer.cursor;
    }
}

CreatorClient::Outcome CreatorClient::update_record(const std::string& id, const json& data) {
    const json body = {{"data", data}};
    const auto answer = call("PATCH",
                             data_path() + "/report/" + util::percent_encode(m_options.report) +
                                 "/" + util::percent_encode(id),
                             {}, &body, "updating Zoho Creator record " + id, true);
    Outcome o;
    o.id = id;
    const long code = code_of(answer.doc);
    o.ok = code == k_success;
    o.not_found = code == k_no_such_id || (answer.status == 404 && code == k_no_records);
    if (!o.ok) {
        o.error = refusal(answer.doc);
    }
    return o;
}

CreatorClient::Outcome CreatorClient::delete_record(const std::string& id) {
    const auto answer = call("DELETE",
                             data_path() + "/report/" + util::percent_encode(m_options.report) +
                                 "/" + util::percent_encode(id),
                             {}, nullptr, "deleting Zoho Creator record " + id, true);
    Outcome o;
    o.id = id;
    const long code = code_of(answer.doc);
    o.ok = code == k_success;
    o.not_found = code == k_no_such_id || (answer.status == 404 && code == k_no_records);
    if (!o.ok) {
        o.error = refusal(answer.doc);
    }
    return o;
}

} // namespace crmsync::drivers::zoho
