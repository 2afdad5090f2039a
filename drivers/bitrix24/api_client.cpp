#include "drivers/bitrix24/api_client.hpp"

#include "drivers/bitrix24/transform.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/json_body.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/url.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace crmsync::drivers::bitrix24 {
namespace {

// A pipeline has a few dozen stages; more pages than this means the portal ignores `start`.
constexpr int k_max_status_pages = 200;

bool all_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Error shape_error(const std::string& what, const std::string& detail) {
    return Error(ErrorKind::data,
                 "Bitrix24 " + what + " answered with an unexpected shape: " + detail,
                 "the portal's API may differ from the documented one; run with --l 5 and "
                 "report the log");
}

std::optional<std::int64_t> as_integer(const nlohmann::json& value) {
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        std::int64_t n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec == std::errc{} && end == text.data() + text.size() && !text.empty()) {
            return n;
        }
    }
    return std::nullopt;
}

// The items of one crm.stagehistory.list result ({"items": [...]}; [] when empty, §1.6).
std::vector<nlohmann::json> history_items(nlohmann::json& result, const char* what) {
    std::vector<nlohmann::json> out;
    if (result.is_array() && result.empty()) {
        return out;
    }
    if (!result.is_object()) {
        throw shape_error(what, "result is not an object");
    }
    const auto items = result.find("items");
    if (items == result.end() || !(items->is_array() || items->is_object())) {
        throw shape_error(what, "result has no items");
    }
    out.reserve(items->size());
    for (auto& item : *items) {
        out.push_back(std::move(item));
    }
    if (out.size() > k_page_size) {
        throw shape_error(what, fmt::format("{} items in one page", out.size()));
    }
    return out;
}

// The text of a body that does not parse, up to where parsing fails. Two answers that fail
// on the same text are the same: the envelope's "time" after the result differs every call.
std::string failing_prefix(const std::string& body) {
    try {
        [[maybe_unused]] const auto parsed = nlohmann::json::parse(body);
    } catch (const nlohmann::json::parse_error& e) {
        return body.substr(0, std::min(body.size(), e.byte));
    } catch (const nlohmann::json::exception&) {
    }
    return body;
}

} // namespace

WebhookUrl parse_webhook_url(std::string_view text, std::string_view source) {
    const auto bad = [&](const std::string& why) {
        return Error(ErrorKind::usage, fmt::format("the portal URL in {} {}", source, why),
                     "give the inbound webhook URL that Bitrix24 shows, e.g. "
                     "https://example.bitrix24.com/rest/1/abcdef0123456789/");
    };
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    const auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos) {
        throw bad("is not an http(s) URL");
    }
    const std::string scheme = util::ascii_lower(text.substr(0, scheme_end));
    if (scheme != "https" && scheme != "http") {
        throw bad("is not an http(s) URL");
    }
    std::string_view rest = text.substr(scheme_end + 3);
    rest = rest.substr(0, rest.find_first_of("?#"));
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
        throw bad("names no host (or carries a user name)");
    }
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos &&
        !all_digits(authority.substr(colon + 1))) {
        throw bad("has an invalid port");
    }
    std::vector<std::string_view> segments;
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
    while (!path.empty()) {
        path.remove_prefix(1);
        const auto next = path.find('/');
        const auto segment = path.substr(0, next);
        if (!segment.empty()) {
            segments.push_back(segment);
        }
        path = next == std::string_view::npos ? "" : path.substr(next);
    }
    if (segments.size() < 3 || segments.size() > 4 || segments[0] != "rest" ||
        !all_digits(segments[1])) {
        throw bad("is not an inbound webhook URL (https://PORTAL/rest/USER_ID/CODE/)");
    }
    WebhookUrl url;
    url.host = util::ascii_lower(authority);
    url.code = std::string(segments[2]);
    url.base =
        scheme + "://" + url.host + "/rest/" + std::string(segments[1]) + "/" + url.code + "/";
    return url;
}

std::optional<std::int64_t> integer_field(const nlohmann::json& record, const char* name) {
    if (!record.is_object()) {
        return std::nullopt;
    }
    const auto it = record.find(name);
    return it == record.end() ? std::nullopt : as_integer(*it);
}

bool is_auth_error_code(std::string_view code) {
    return code == "NO_AUTH_FOUND" || code == "expired_token" || code == "invalid_token" ||
           code == "insufficient_scope" || code == "INVALID_CREDENTIALS" ||
           code == "ACCESS_DENIED" || code == "user_access_error" ||
           code == "allowed_only_intranet_user";
}

std::string error_code_of(const nlohmann::json& error) {
    if (!error.is_object()) {
        return {};
    }
    const auto code = error.find("error");
    if (code == error.end()) {
        return {};
    }
    return code->is_string() ? code->get<std::string>() : code->dump();
}

std::string error_text_of(const nlohmann::json& error) {
    const std::string code = error_code_of(error);
    std::string description;
    if (error.is_object()) {
        const auto d = error.find("error_description");
        if (d != error.end() && d->is_string()) {
            description = d->get<std::string>();
        }
    }
    return description.empty() ? code : code + " (" + description + ")";
}

bool is_transient_error_code(std::string_view code) {
    return code == "QUERY_LIMIT_EXCEEDED" || code == "OPERATION_TIME_LIMIT" ||
           code == "OVERLOAD_LIMIT" || code == "INTERNAL_SERVER_ERROR" ||
           code == "ERROR_UNEXPECTED_ANSWER";
}

ApiClient::ApiClient(ApiConfig config, http::RetryContext retry)
    : m_config(std::move(config)), m_retry(std::move(retry)),
      m_http(http::HttpClientOptions{m_config.verify_tls}),
      // One token of burst: requests are spread evenly, so a portal's bucket shared with
      // other apps is never drained in one go.
      m_limiter(m_config.rate, 1.0) {}

void ApiClient::wait_for_rate_limit() {
    while (!m_limiter.try_acquire(std::chrono::steady_clock::now())) {
        const auto wait = m_limiter.wait_time(std::chrono::steady_clock::now());
        sleep_unless_stopped(Clock::real(), std::max(wait, std::chrono::milliseconds(1)),
                             "the Bitrix24 API");
    }
}

http::HttpRequest probe_request(const WebhookUrl& webhook) {
    http::HttpRequest request;
    request.url = webhook.base + "crm.status.list";
    request.headers = {{"Accept", "application/json"}};
    return request;
}

nlohmann::json ApiClient::post(const std::string& method, const nlohmann::json& body,
                               std::string* unreadable) {
    wait_for_rate_limit();
    http::HttpRequest request;
    request.method = "POST";
    request.url = m_config.webhook.base + method;
    request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    nlohmann::json parsed;
    std::size_t too_deep = 0;
    std::optional<std::string> bad_body;
    std::string why_unreadable;
    // A 2xx body that does not parse or is not an envelope (cut off, a proxy's HTML page) is
    // retried like a 5xx. Lone surrogates become U+FFFD rather than failing the whole body.
    // The same unparsable text twice is no accident of the transfer: retrying it would stop
    // the job for good, so a caller that can split the request takes it instead.
    const auto check = [&](const http::HttpResponse& response) {
        auto answer = http::parse_json_body(response.body);
        parsed = std::move(answer.doc);
        too_deep = answer.too_deep.size();
        if (parsed.is_discarded() && unreadable != nullptr) {
            auto failing = failing_prefix(response.body);
            if (bad_body && *bad_body == failing) {
                why_unreadable = "the portal sent the same text that is not JSON twice";
                return true;
            }
            bad_body = std::move(failing);
        }
        return !parsed.is_discarded() && parsed.is_object() &&
               (parsed.contains("result") || parsed.contains("error"));
    };
    http::RetryContext context = m_retry;
    context.what = "Bitrix24 " + method;
    ++m_requests;
    try {
        http::send_with_retry(m_http, request, context, check);
    } catch (Error& e) {
        if (e.kind() == ErrorKind::auth) {
            e.set_hint("the webhook in " + m_config.source +
                       " is wrong, expired or deleted, or its user lacks CRM access: create an "
                       "inbound webhook with the crm scope in Bitrix24 and set it again");
        } else if (e.kind() == ErrorKind::usage) {
            throw Error(ErrorKind::config, e.what(),
                        "check that " + m_config.source +
                            " holds the portal's inbound webhook URL "
                            "(https://PORTAL/rest/USER_ID/CODE/)");
        }
        throw;
    }
    if (too_deep > 0 && unreadable != nullptr && why_unreadable.empty()) {
        why_unreadable =
            fmt::format("it holds values nested deeper than {} levels", http::k_max_json_depth);
    }
    if (!why_unreadable.empty()) {
        *unreadable = std::move(why_unreadable);
        return nullptr;
    }
    if (too_deep > 0) {
        log::warn("Bitrix24 {}: values nested deeper than {} levels were left out", method,
                  http::k_max_json_depth);
    }
    if (parsed.contains("error")) {
        const std::string code = error_code_of(parsed);
        throw Error(is_auth_error_code(code) ? ErrorKind::auth : ErrorKind::data,
                    fmt::format("Bitrix24 {} failed: {}", method, error_text_of(parsed)),
                    "the next run retries from the checkpoint");
    }
    return parsed;
}

Envelope ApiClient::call(const std::string& method, const nlohmann::json& params) {
    return call(method, params, nullptr);
}

Envelope ApiClient::call(const std::string& method, const nlohmann::json& params,
                         std::string* unreadable) {
    auto doc = post(method, params, unreadable);
    Envelope envelope;
    if (doc.is_null()) {
        return envelope; // unreadable
    }
    envelope.result = std::move(doc["result"]);
    if (const auto total = doc.find("total"); total != doc.end()) {
        envelope.total = as_integer(*total);
    }
    if (const auto next = doc.find("next"); next != doc.end()) {
        envelope.next = as_integer(*next);
    }
    return envelope;
}

HistoryPage ApiClient::stage_history(const HistoryQuery& query) {
    nlohmann::json filter = {{">ID", query.after_id}};
    if (query.only_id) {
        filter = {{"ID", *query.only_id}};
    } else {
        if (query.category) {
            filter["CATEGORY_ID"] = *query.category;
        }
        if (query.since) {
            filter[">=CREATED_TIME"] = *query.since;
        }
    }
    nlohmann::json params = {{"entityTypeId", k_entity_deal},
                             {"order", {{"ID", "ASC"}}},
                             {"filter", filter},
                             {"start", query.count ? 0 : -1}};
    if (query.ids_only) {
        params["select"] = {"ID"};
    }
    HistoryPage page;
    auto envelope = call("crm.stagehistory.list", params, &page.unreadable);
    if (!page.unreadable.empty()) {
        return page;
    }
    if (query.count) {
        page.total = envelope.total;
    }
    page.items = history_items(envelope.result, "crm.stagehistory.list");
    return page;
}

HistoryBatch ApiClient::stage_history_batch(const HistoryQuery& query, std::size_t pages) {
    pages = std::clamp<std::size_t>(pages, 1, k_batch_limit);
    // The filters every page shares, in the sub-call's query syntax (§1.6).
    std::string shared = fmt::format("entityTypeId={}&order[ID]=ASC&start=-1", k_entity_deal);
    if (query.category) {
        shared += fmt::format("&filter[CATEGORY_ID]={}", *query.category);
    }
    if (query.since) {
        shared += "&filter[%3E%3DCREATED_TIME]=" + util::percent_encode(*query.since);
    }
    nlohmann::json cmd = nlohmann::json::object();
    for (std::size_t k = 0; k < pages; ++k) {
        // A list result is indexed like the answer: crm.stagehistory.list wraps its rows in
        // `items`, so the last row of a full page is [items][49].
        const std::string after =
            k == 0 ? std::to_string(query.after_id)
                   : fmt::format("$result[h{:02}][items][{}][ID]", k - 1, k_page_size - 1);
        // Zero-padded keys: the body's keys are sorted, and commands run in the order sent.
        cmd[fmt::format("h{:02}", k)] =
            "crm.stagehistory.list?" + shared + "&filter[%3EID]=" + after;
    }
    // halt=1: a page after a failed one would be asked for with an unresolved reference.
    const nlohmann::json body = {{"halt", 1}, {"cmd", std::move(cmd)}};
    HistoryBatch batch;
    auto envelope = call("batch", body, &batch.unreadable);
    if (!batch.unreadable.empty()) {
        return batch;
    }
    auto& answer = envelope.result;
    if (!answer.is_object()) {
        throw shape_error("batch", "result is not an object");
    }
    const auto results = answer.find("result");
    const auto errors = answer.find("result_error");
    std::int64_t after_id = query.after_id;
    for (std::size_t k = 0; k < pages; ++k) {
        const std::string key = fmt::format("h{:02}", k);
        if (errors != answer.end() && errors->is_object() && errors->contains(key)) {
            batch.failure = std::move((*errors)[key]);
            break;
        }
        if (results == answer.end() || !results->is_object() || !results->contains(key)) {
            if (k == 0) {
                throw shape_error("batch", "no result and no error for its first command");
            }
            break; // the portal ran fewer commands: the next batch goes on from here
        }
        HistoryPage page;
        page.items = history_items((*results)[key], "batch crm.stagehistory.list");
        std::int64_t last_id = after_id;
        bool follows = true;
        for (const auto& item : page.items) {
            if (const auto id = integer_field(item, "ID")) {
                follows = follows && *id > after_id;
                last_id = std::max(last_id, *id);
            }
        }
        if (!follows) {
            if (k == 0) {
                throw Error(ErrorKind::data,
                            fmt::format("Bitrix24 crm.stagehistory.list sent an item with an ID "
                                        "not above {} for filter >ID {}",
                                        after_id, after_id),
                            "the portal ignores the documented filter; report this");
            }
            batch.broken_chain = true;
            break;
        }
        const bool full = page.items.size() == k_page_size;
        // The next command asks for the rows after the ID of this page's last item: without a
        // readable one there, what it got cannot be trusted.
        const bool last_item_has_id = full && integer_field(page.items.back(), "ID").has_value();
        batch.pages.push_back(std::move(page));
        after_id = last_id;
        if (!full) {
            batch.last = true;
            break;
        }
        if (!last_item_has_id) {
            break;
        }
    }
    return batch;
}

void ApiClient::backoff_transient(int attempt, const std::string& what, const std::string& last) {
    const auto& policy = m_retry.policy;
    if (attempt >= policy.max_attempts) {
        throw Error(
            ErrorKind::connection,
            fmt::format("Bitrix24 {} failed after {} attempts; last: {}", what, attempt, last),
            "the portal is busy; the next run continues from the checkpoint");
    }
    const auto delay = policy.backoff(attempt);
    if (m_retry.deadline && std::chrono::steady_clock::now() + delay > *m_retry.deadline) {
        throw Error(
            ErrorKind::connection,
            fmt::format("Bitrix24 {}: time budget spent while retrying; last: {}", what, last),
            "raise --max-runtime, or let the next run continue");
    }
    log::debug("{}: {}; retrying in {} ms", what, last, delay.count());
    m_retry.stats.retries.fetch_add(1, std::memory_order_relaxed);
    sleep_unless_stopped(Clock::real(), delay, "the Bitrix24 API");
}

std::vector<nlohmann::json> ApiClient::deal_stages(std::optional<int> category) {
    nlohmann::json params = {{"order", {{"SORT", "ASC"}}}};
    if (category) {
        params["filter"] = {{"ENTITY_ID", stage_entity_id(*category)}};
    }
    std::vector<nlohmann::json> stages;
    std::int64_t start = 0;
    for (int page = 0; page < k_max_status_pages; ++page) {
        params["start"] = start;
        auto envelope = call("crm.status.list", params);
        if (!envelope.result.is_array()) {
            throw shape_error("crm.status.list", "result is not a list");
        }
        for (auto& row : envelope.result) {
            const auto entity = row.is_object() ? row.find("ENTITY_ID") : row.end();
            if (entity == row.end() || !entity->is_string()) {
                continue;
            }
            const auto pipeline = category_of_entity(entity->get<std::string>());
            if (pipeline && (!category || *pipeline == *category)) {
                stages.push_back(std::move(row));
            }
        }
        if (!envelope.next || *envelope.next <= start || envelope.result.empty()) {
            return stages;
        }
        start = *envelope.next;
    }
    throw shape_error("crm.status.list", "more than 200 pages of statuses");
}

std::unordered_map<std::int64_t, std::optional<std::string>>
ApiClient::deal_titles(const std::vector<std::int64_t>& ids) {
    std::unordered_map<std::int64_t, std::optional<std::string>> titles;
    const std::size_t per_batch = k_page_size * k_batch_limit;
    for (std::size_t first = 0; first < ids.size(); first += per_batch) {
        const std::size_t last = std::min(ids.size(), first + per_batch);
        nlohmann::json cmd = nlohmann::json::object();
        for (std::size_t chunk = first; chunk < last; chunk += k_page_size) {
            std::string query = "crm.deal.list?";
            for (std::size_t i = chunk; i < std::min(last, chunk + k_page_size); ++i) {
                titles.emplace(ids[i], std::nullopt);
                query += fmt::format("filter[@ID][{}]={}&", i - chunk, ids[i]);
            }
            query += "select[0]=ID&select[1]=TITLE&start=-1";
            cmd[fmt::format("d{}", (chunk - first) / k_page_size)] = query;
        }
        const nlohmann::json body = {{"halt", 0}, {"cmd", cmd}};
        // Sub-calls fail inside an HTTP 200 (§1.6); the transient ones are retried here, with
        // the backoff send_with_retry uses for whole requests.
        for (int attempt = 1;; ++attempt) {
            auto envelope = call("batch", body);
            const auto& result = envelope.result;
            if (!result.is_object()) {
                throw shape_error("batch", "result is not an object");
            }
            std::string transient;
            const auto errors = result.find("result_error");
            if (errors != result.end() && errors->is_object()) {
                for (const auto& [key, error] : errors->items()) {
                    const std::string code = error_code_of(error);
                    if (is_auth_error_code(code)) {
                        throw Error(ErrorKind::auth,
                                    "Bitrix24 refused crm.deal.list: " + error_text_of(error),
                                    "the webhook's user must be allowed to read deals (their "
                                    "titles fill NAME)");
                    }
                    if (!is_transient_error_code(code)) {
                        throw Error(ErrorKind::data,
                                    "Bitrix24 batch crm.deal.list failed: " + error_text_of(error),
                                    "the next run retries from the checkpoint");
                    }
                    transient = error_text_of(error);
                }
            }
            if (transient.empty()) {
                const auto results = result.find("result");
                if (results != result.end() && results->is_object()) {
                    for (const auto& [key, deals] : results->items()) {
                        for (const auto& deal : deals) {
                            const auto id = integer_field(deal, "ID");
                            const auto title = deal.is_object() ? deal.find("TITLE") : deal.end();
                            if (id && title != deal.end() && title->is_string()) {
                                titles[*id] = title->get<std::string>();
                            }
                        }
                    }
                }
                break;
            }
            backoff_transient(attempt, "batch crm.deal.list", transient);
        }
    }
    return titles;
}

} // namespace crmsync::drivers::bitrix24
