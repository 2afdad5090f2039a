#include "drivers/dialfire/api_client.hpp"

#include "drivers/dialfire/simdjson_contacts.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/json_body.hpp"
#include "lib/util/json_doc.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

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
                                    std::optional<SystemTime>* server_now,
                                    std::vector<std::size_t>* too_deep, bool* unparsable) {
    return send_for_body(std::move(request), what, server_now, too_deep, unparsable, false).doc;
}

http::JsonBody ApiClient::send_for_body(http::HttpRequest request, const std::string& what,
                                        std::optional<SystemTime>* server_now,
                                        std::vector<std::size_t>* too_deep, bool* unparsable,
                                        bool keep_simdjson) {
    request.headers.emplace_back("Authorization", "Bearer " + m_config.token);
    request.headers.emplace_back("Accept", "application/json");
    http::JsonBody parsed;
    std::optional<std::string> bad_body;
    // A 2xx whose body does not parse (cut off, garbled) is retried like a 5xx; the same bytes
    // twice are no accident of the transfer, and retrying them again would stop the job for good.
    const auto check = [&](const http::HttpResponse& response) {
        parsed = http::parse_json_body(response.body, keep_simdjson);
        if (parsed.simdjson_doc || !parsed.doc.is_discarded()) {
            return true;
        }
        if (unparsable != nullptr && bad_body && *bad_body == response.body) {
            *unparsable = true;
            return true;
        }
        bad_body = response.body;
        return false;
    };
    http::RetryContext context = m_retry;
    context.what = what;
    const auto response = http::send_with_retry(m_http, request, context, check);
    m_repaired += parsed.repaired_bytes;
    if (server_now != nullptr) {
        if (const auto* date = response.header("date")) {
            *server_now = util::parse_http_date(*date);
        }
    }
    if (too_deep != nullptr) {
        *too_deep = std::move(parsed.too_deep);
    } else if (!parsed.too_deep.empty()) {
        throw shape_error(
            what, fmt::format("values nested deeper than {} levels", http::k_max_json_depth));
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
    // A cursor with no results is not the end: the API may skip filtered entries on a page.
    // The caller stops on an empty or a repeated cursor.
    return page;
}

namespace {

// fetch_contacts' answer kept in simdjson's document: the same checks as for nlohmann's (none
// is nested too deep: simdjson takes no document that deep).
FetchedContacts kept_contacts(std::shared_ptr<const simdjson::dom::document> doc,
                              const std::vector<std::string>& ids, const std::string& what) {
    const simdjson::dom::element root = doc->root();
    if (!root.is_array()) {
        throw shape_error(what, "expected an array");
    }
    auto kept = std::make_shared<SimdjsonContacts>();
    std::set<std::string, std::less<>> returned;
    std::size_t without_id = 0;
    for (const auto contact : simdjson::dom::array(root)) {
        const auto id = util::json_doc::Simdjson::find(contact, "$id");
        if (id && id->is_string()) {
            returned.emplace(std::string_view(*id));
        } else {
            ++without_id; // returned, to be rejected by the transform: not missing
        }
        kept->contacts.push_back(contact);
    }
    kept->document = std::move(doc);
    FetchedContacts fetched;
    for (const auto& id : ids) {
        fetched.missing += returned.count(id) == 0 ? 1 : 0;
    }
    fetched.missing -= std::min(fetched.missing, without_id);
    fetched.kept = std::move(kept);
    return fetched;
}

} // namespace

FetchedContacts ApiClient::fetch_contacts(const std::vector<std::string>& ids, bool keep_simdjson) {
    http::HttpRequest request;
    request.method = "POST";
    request.url = m_config.base_url + "/api/campaigns/" + util::percent_encode(m_config.campaign) +
                  "/contacts/?include_md5=true";
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = nlohmann::json(ids).dump();
    const std::string what = fmt::format("POST contacts ({} ids)", ids.size());
    std::vector<std::size_t> too_deep;
    bool unparsable = false;
    auto body =
        send_for_body(std::move(request), what, nullptr, &too_deep, &unparsable, keep_simdjson);
    FetchedContacts fetched;
    std::string asked;
    for (const auto& id : ids) {
        asked += (asked.empty() ? "" : ",") + id;
    }
    // The transform stores ids with NUL as U+FFFD; a reject names them the same way.
    for (auto pos = asked.find('\0'); pos != std::string::npos; pos = asked.find('\0', pos)) {
        asked.replace(pos, 1, "\xEF\xBF\xBD");
    }
    if (unparsable && ids.size() > 1) {
        // One contact spoils the whole body: ask for each alone, so only it is rejected.
        for (const auto& id : ids) {
            auto one = fetch_contacts({id}, false);
            for (auto& contact : one.contacts) {
                fetched.contacts.push_back(std::move(contact));
            }
            for (auto& reject : one.rejects) {
                fetched.rejects.push_back(std::move(reject));
            }
            fetched.missing += one.missing;
        }
        return fetched;
    }
    if (unparsable) {
        fetched.rejects.push_back({asked,
                                   what +
                                       " answered twice with the same body that is not JSON "
                                       "(or nested deeper than " +
                                       std::to_string(http::k_max_json_depth) + " levels)",
                                   ""});
        return fetched;
    }
    if (body.simdjson_doc) {
        return kept_contacts(std::move(body.simdjson_doc), ids, what);
    }
    auto& doc = body.doc;
    if (!doc.is_array()) {
        throw shape_error(what, "expected an array");
    }
    std::set<std::string> returned;
    std::size_t next_deep = 0;
    bool deep_without_id = false;
    std::size_t without_id = 0;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        auto& contact = doc[i];
        const auto id = contact.is_object() ? contact.find("$id") : contact.end();
        const bool has_id = contact.is_object() && id != contact.end() && id->is_string();
        if (has_id) {
            returned.insert(id->get<std::string>());
        } else {
            ++without_id; // returned, to be rejected by the transform: not missing
        }
        if (next_deep < too_deep.size() && too_deep[next_deep] == i) {
            ++next_deep;
            deep_without_id = deep_without_id || !has_id;
            fetched.rejects.push_back(
                {has_id ? id->get<std::string>() : asked,
                 fmt::format("contact holds values nested deeper than {} levels",
                             http::k_max_json_depth),
                 contact.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
            continue;
        }
        fetched.contacts.push_back(std::move(contact));
    }
    for (const auto& id : ids) {
        fetched.missing += returned.count(id) == 0 ? 1 : 0;
    }
    fetched.missing -= std::min(fetched.missing, without_id);
    if (deep_without_id) {
        // That reject names every id asked for: none of them is missing unnoticed.
        fetched.missing = 0;
    }
    return fetched;
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
