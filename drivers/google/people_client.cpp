#include "drivers/google/people_client.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/attempt_loop.hpp"
#include "lib/http/json_body.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace crmsync::drivers::google {
namespace {

using nlohmann::json;

constexpr int k_max_throttled_in_a_row = 30;
constexpr std::size_t k_snippet_bytes = 300;

struct GoogleError {
    long code = 0;
    std::string status;               // "FAILED_PRECONDITION"
    std::string message;              // Google's words
    std::vector<std::string> reasons; // details[].reason
};

GoogleError google_error(const http::HttpResponse& response) {
    GoogleError e;
    e.code = response.status;
    const auto doc = json::parse(response.body, nullptr, false);
    if (!doc.is_object() || !doc.contains("error") || !doc["error"].is_object()) {
        e.message = response.body.substr(0, k_snippet_bytes);
        return e;
    }
    const auto& err = doc["error"];
    if (err.contains("status") && err["status"].is_string()) {
        e.status = err["status"].get<std::string>();
    }
    if (err.contains("message") && err["message"].is_string()) {
        e.message = err["message"].get<std::string>();
    }
    if (err.contains("details") && err["details"].is_array()) {
        for (const auto& d : err["details"]) {
            if (d.is_object() && d.contains("reason") && d["reason"].is_string()) {
                e.reasons.push_back(d["reason"].get<std::string>());
            }
        }
    }
    return e;
}

bool has_reason(const GoogleError& e, const std::string& reason) {
    return std::find(e.reasons.begin(), e.reasons.end(), reason) != e.reasons.end();
}

std::string describe(const GoogleError& e) {
    return fmt::format("HTTP {}{}{}", e.code, e.status.empty() ? "" : " " + e.status,
                       e.message.empty() ? "" : ": " + e.message);
}

json parse_person(const http::HttpResponse& response, const std::string& what) {
    auto parsed = http::parse_json_body(response.body);
    if (!parsed.doc.is_object()) {
        throw Error(ErrorKind::data, what + ": Google answered with a damaged body");
    }
    return std::move(parsed.doc);
}

} // namespace

PeopleClient::PeopleClient(PeopleClientOptions options)
    : m_options(std::move(options)), m_http(http::HttpClientOptions{m_options.verify_tls}) {
    while (!m_options.base_url.empty() && m_options.base_url.back() == '/') {
        m_options.base_url.pop_back();
    }
}

long PeopleClient::calls_left() const {
    if (m_options.call_budget <= 0) {
        return 1L << 40;
    }
    return std::max(0L, m_options.call_budget - m_calls);
}

http::HttpResponse PeopleClient::call(const std::string& method, const std::string& path_and_query,
                                      const json* body, const std::string& what, bool repeatable,
                                      bool pass_refusals) {
    http::AttemptLoop attempts(m_options.retry, *m_options.clock, m_options.deadline, what,
                               {"Google", "Google may be down; the next run continues",
                                "the next run looks for the contact before creating it again",
                                "Google's quota is spent; the next run continues",
                                k_max_throttled_in_a_row});
    for (;;) {
        attempts.begin();
        if (calls_left() <= 0) {
            throw Error(ErrorKind::connection,
                        fmt::format("{}: the Google request budget of this run ({}) is spent{}",
                                    what, m_options.call_budget,
                                    attempts.last_problem().empty()
                                        ? ""
                                        : "; last: " + attempts.last_problem()),
                        "the next run continues (--google-calls sets the budget)");
        }
        http::HttpRequest request;
        request.method = method;
        request.url = m_options.base_url + path_and_query;
        request.headers = {{"Authorization", m_options.authorization()},
                           {"Accept", "application/json"}};
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
                            "check --people-url and TLS settings");
            }
            attempts.failed(failure.message);
        } else if (response.status >= 200 && response.status < 300) {
            if (http::parse_json_body(response.body).doc.is_object()) {
                return response;
            }
            attempts.failed(fmt::format("HTTP {} with a damaged body", response.status));
        } else {
            const auto err = google_error(response);
            const bool quota = response.status == 429 ||
                               (response.status == 403 && err.status == "RESOURCE_EXHAUSTED");
            if (quota) {
                ++m_throttled;
                attempts.throttled(describe(err), http::RetryPolicy::retry_after(
                                                      response, m_options.clock->wall_now()));
            } else if (response.status == 401 || response.status == 403) {
                throw Error(ErrorKind::auth, fmt::format("{} was refused: {}", what, describe(err)),
                            "authorise the Google account again (crmsync accounts add)");
            } else if (pass_refusals && (response.status == 400 || response.status == 404 ||
                                         response.status == 410 || response.status == 412)) {
                return response;
            } else if (!http::RetryPolicy::is_retryable_status(response.status)) {
                throw Error(ErrorKind::data,
                            fmt::format("{} was refused: {}", what, describe(err)));
            } else {
                attempts.failed(describe(err));
            }
        }
        attempts.pause(repeatable);
    }
}

contacts::PeopleApi::Page PeopleClient::list_connections(const std::string& sync_token,
                                                         const std::string& page_token,
                                                         int page_size) {
    std::string path = "/v1/people/me/connections?personFields=" +
                       util::percent_encode(m_options.person_fields + ",metadata") +
                       "&pageSize=" + std::to_string(std::clamp(page_size, 1, 1000));
    if (sync_token.empty()) {
        path += "&requestSyncToken=true";
    } else {
        path += "&syncToken=" + util::percent_encode(sync_token);
    }
    if (!page_token.empty()) {
        path += "&pageToken=" + util::percent_encode(page_token);
    }
    const std::string what = "listing the Google contacts";
    const auto response = call("GET", path, nullptr, what, true, true);
    Page page;
    if (response.status >= 400) {
        const auto err = google_error(response);
        const bool expired = response.status == 410 || has_reason(err, "EXPIRED_SYNC_TOKEN") ||
                             err.message.find("Sync token is expired") != std::string::npos;
        if (expired && (!sync_token.empty() || !page_token.empty())) {
            page.expired = true;
            return page;
        }
        throw Error(ErrorKind::data, fmt::format("{} was refused: {}", what, describe(err)));
    }
    const auto doc = parse_person(response, what);
    if (doc.contains("connections") && doc["connections"].is_array()) {
        for (const auto& person : doc["connections"]) {
            if (person.is_object()) {
                page.people.push_back(person);
            }
        }
    }
    if (doc.contains("nextPageToken") && doc["nextPageToken"].is_string()) {
        page.next_page_token = doc["nextPageToken"].get<std::string>();
    }
    if (doc.contains("nextSyncToken") && doc["nextSyncToken"].is_string()) {
        page.next_sync_token = doc["nextSyncToken"].get<std::string>();
    }
    return page;
}

json PeopleClient::create_contact(const json& person) {
    json body = person;
    body.erase("resourceName");
    body.erase("etag");
    body.erase("metadata");
    const auto response = call("POST",
                               "/v1/people:createContact?personFields=" +
                                   util::percent_encode(m_options.person_fields + ",metadata"),
                               &body, "creating a Google contact", false, false);
    return parse_person(response, "creating a Google contact");
}

std::optional<json> PeopleClient::update_contact(const json& person) {
    const std::string resource_name =
        person.contains("resourceName") && person["resourceName"].is_string()
            ? person["resourceName"].get<std::string>()
            : std::string();
    if (resource_name.empty()) {
        throw Error(ErrorKind::internal, "updating a Google contact without its resourceName");
    }
    const std::string what = "updating Google contact " + resource_name;
    // The etag makes a repeat safe: one that was applied comes back as stale and is fetched.
    const auto response =
        call("PATCH",
             "/v1/" + resource_name + ":updateContact?updatePersonFields=" +
                 util::percent_encode(m_options.person_fields) +
                 "&personFields=" + util::percent_encode(m_options.person_fields + ",metadata"),
             &person, what, true, true);
    if (response.status >= 400) {
        const auto err = google_error(response);
        if (response.status == 412 || err.status == "FAILED_PRECONDITION" ||
            has_reason(err, "failedPrecondition")) {
            return std::nullopt;
        }
        throw Error(ErrorKind::data, fmt::format("{} was refused: {}", what, describe(err)));
    }
    return parse_person(response, what);
}

std::optional<json> PeopleClient::get_contact(const std::string& resource_name) {
    const std::string what = "reading Google contact " + resource_name;
    const auto response = call("GET",
                               "/v1/" + resource_name + "?personFields=" +
                                   util::percent_encode(m_options.person_fields + ",metadata"),
                               nullptr, what, true, true);
    if (response.status == 404 || response.status == 410) {
        return std::nullopt;
    }
    if (response.status >= 400) {
        throw Error(ErrorKind::data,
                    fmt::format("{} was refused: {}", what, describe(google_error(response))));
    }
    return parse_person(response, what);
}

} // namespace crmsync::drivers::google
