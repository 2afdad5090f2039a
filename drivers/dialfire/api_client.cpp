#include "drivers/dialfire/api_client.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/format.h>

namespace crmsync::drivers::dialfire {
namespace {

std::string cursor_of(const nlohmann::json& page) {
    const auto it = page.find("cursor");
    return it != page.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

Error shape_error(const std::string& what, const std::string& detail) {
    return Error(ErrorKind::data, what + " answered with an unexpected shape: " + detail,
                 "the API may have changed; run with --l 5 and report the log");
}

} // namespace

SystemTime server_time(const std::optional<SystemTime>& date_header) {
    if (date_header) {
        return *date_header;
    }
    log::warn("the API sent no Date header; using the local clock for the checkpoint");
    return Clock::real().wall_now();
}

std::string format_dialfire_time(SystemTime t) {
    std::string text = util::format_sql_timestamp(t);
    text[10] = 'T';
    return text;
}

ApiClient::ApiClient(ApiConfig config, http::RetryContext retry)
    : m_config(std::move(config)), m_retry(std::move(retry)),
      m_http(http::HttpClientOptions{m_config.verify_tls}) {
    while (!m_config.base_url.empty() && m_config.base_url.back() == '/') {
        m_config.base_url.pop_back();
    }
}

nlohmann::json ApiClient::send_json(http::HttpRequest request, const std::string& what,
                                    std::optional<SystemTime>* server_now) {
    request.headers.emplace_back("Authorization", "Bearer " + m_config.token);
    request.headers.emplace_back("Accept", "application/json");
    nlohmann::json parsed;
    long repaired = 0;
    // A 2xx whose body does not parse (cut off, garbled) is retried like a 5xx.
    const auto check = [&](const http::HttpResponse& response) {
        std::string body = response.body;
        repaired = static_cast<long>(util::repair_utf8(body));
        parsed = nlohmann::json::parse(body, nullptr, false);
        return !parsed.is_discarded();
    };
    http::RetryContext context = m_retry;
    context.what = what;
    const auto response = http::send_with_retry(m_http, request, context, check);
    m_repaired += repaired;
    if (server_now != nullptr) {
        if (const auto* date = response.header("date")) {
            *server_now = util::parse_http_date(*date);
        }
    }
    return parsed;
}

nlohmann::json ApiClient::get_json(const std::string& path_and_query, const std::string& what,
                                   std::optional<SystemTime>* server_now) {
    http::HttpRequest request;
    request.url = m_config.base_url + path_and_query;
    return send_json(std::move(request), what, server_now);
}

std::vector<CampaignField> ApiClient::fields(std::optional<SystemTime>* server_now) {
    const std::string what = "GET fields/list";
    const auto doc =
        get_json("/api/campaigns/" + util::percent_encode(m_config.campaign) + "/fields/list", what,
                 server_now);
    if (!doc.is_array()) {
        throw shape_error(what, "expected an array");
    }
    std::vector<CampaignField> fields;
    for (const auto& entry : doc) {
        if (!entry.is_object() || entry.value("type", std::string{}) != "field" ||
            entry.value("deleted", false)) {
            continue;
        }
        const auto name = entry.find("name");
        if (name == entry.end() || !name->is_string() || name->get<std::string>().empty()) {
            continue;
        }
        const auto type = entry.find("fieldType");
        fields.push_back({name->get<std::string>(), type != entry.end() && type->is_string()
                                                        ? type->get<std::string>()
                                                        : ""});
    }
    return fields;
}

ContactListPage ApiClient::list_contacts(const std::string& changed_since,
                                         const std::string& cursor) {
    std::string path = "/api/campaigns/" + util::percent_encode(m_config.campaign) +
                       "/contacts/list?limit=" + std::to_string(k_list_page_size);
    if (!changed_since.empty()) {
        path += "&changedSince=" + util::percent_encode(changed_since);
    }
    if (!cursor.empty()) {
        path += "&cursor=" + util::percent_encode(cursor);
    }
    const std::string what = "GET contacts/list";
    const auto doc = get_json(path, what);
    if (!doc.is_object()) {
        throw shape_error(what, "expected an object");
    }
    ContactListPage page;
    page.cursor = cursor_of(doc);
    const auto results = doc.find("results");
    if (results != doc.end() && results->is_array()) {
        for (const auto& entry : *results) {
            if (!entry.is_object()) {
                continue;
            }
            const auto id = entry.find("id");
            if (id == entry.end() || !id->is_string()) {
                continue;
            }
            const auto md5 = entry.find("md5");
            page.contacts.push_back({id->get<std::string>(), md5 != entry.end() && md5->is_string()
                                                                 ? md5->get<std::string>()
                                                                 : std::string{}});
        }
    }
    if (!page.cursor.empty() && page.contacts.empty()) {
        // A cursor with no results would page forever.
        page.cursor.clear();
    }
    return page;
}

std::vector<nlohmann::json> ApiClient::fetch_contacts(const std::vector<std::string>& ids) {
    http::HttpRequest request;
    request.method = "POST";
    request.url = m_config.base_url + "/api/campaigns/" + util::percent_encode(m_config.campaign) +
                  "/contacts/?include_md5=true";
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = nlohmann::json(ids).dump();
    const std::string what = fmt::format("POST contacts ({} ids)", ids.size());
    auto doc = send_json(std::move(request), what, nullptr);
    if (!doc.is_array()) {
        throw shape_error(what, "expected an array");
    }
    std::vector<nlohmann::json> contacts;
    contacts.reserve(doc.size());
    for (auto& contact : doc) {
        contacts.push_back(std::move(contact));
    }
    return contacts;
}

JsonPage ApiClient::inbound_calls(const std::string& from, const std::string& to,
                                  const std::string& cursor) {
    std::string path = "/api/campaigns/" + util::percent_encode(m_config.campaign) +
                       "/inbound/calls/?from=" + util::percent_encode(from);
    if (!to.empty()) {
        path += "&to=" + util::percent_encode(to);
    }
    if (!cursor.empty()) {
        path += "&cursor=" + util::percent_encode(cursor);
    }
    path += "&limit=" + std::to_string(k_list_page_size);
    const std::string what = "GET inbound/calls";
    auto doc = get_json(path, what);
    if (!doc.is_object()) {
        throw shape_error(what, "expected an object");
    }
    JsonPage page;
    page.cursor = cursor_of(doc);
    auto results = doc.find("results");
    if (results != doc.end() && results->is_array()) {
        for (auto& r : *results) {
            page.results.push_back(std::move(r));
        }
    }
    if (page.results.empty()) {
        page.cursor.clear();
    }
    return page;
}

ApiClient::TransactionPage ApiClient::transactions(const std::string& query_without_cursor,
                                                   const std::string& cursor) {
    std::string path = "/api/campaigns/" + util::percent_encode(m_config.campaign) +
                       "/contacts/transactions/?" + query_without_cursor;
    if (!cursor.empty()) {
        path += "&cursor=" + util::percent_encode(cursor);
    }
    const std::string what = "GET contacts/transactions";
    const auto doc = get_json(path, what);
    if (!doc.is_object()) {
        throw shape_error(what, "expected an object");
    }
    TransactionPage page;
    page.cursor = cursor_of(doc);
    const auto results = doc.find("results");
    if (results != doc.end() && results->is_array()) {
        for (const auto& r : *results) {
            if (r.is_string()) {
                page.events.push_back(r.get<std::string>());
            }
        }
    }
    if (page.events.empty()) {
        page.cursor.clear();
    }
    return page;
}

} // namespace crmsync::drivers::dialfire
