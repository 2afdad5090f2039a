#include "drivers/callback24/source.hpp"

#include "lib/core/error.hpp"
#include "lib/http/json_body.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"
#include "lib/util/utf8.hpp"

#include <algorithm>

namespace crmsync::drivers::callback24 {
namespace {

using nlohmann::json;

constexpr std::size_t k_raw_excerpt = 300;

std::string excerpt(const json& value) {
    const auto text = value.dump(-1, ' ', false, json::error_handler_t::replace);
    return std::string(util::utf8_prefix(text, k_raw_excerpt));
}

json string_or_null(const json& item, const char* field) {
    const auto it = item.find(field);
    return it != item.end() && it->is_string() ? *it : json();
}

// The utm_* parameters of a page URL, percent-decoded.
json utm_of(const std::string& url) {
    json utm = json::object();
    auto query_at = url.find('?');
    if (query_at == std::string::npos) {
        return utm;
    }
    auto query = url.substr(query_at + 1);
    query = query.substr(0, query.find('#'));
    std::size_t pos = 0;
    while (pos <= query.size()) {
        const auto end = std::min(query.find('&', pos), query.size());
        const auto pair = query.substr(pos, end - pos);
        const auto eq = pair.find('=');
        const auto key = util::percent_decode(pair.substr(0, eq));
        if (key.starts_with("utm_")) {
            auto value = eq == std::string::npos ? std::string() : pair.substr(eq + 1);
            std::replace(value.begin(), value.end(), '+', ' ');
            auto decoded = util::percent_decode(value);
            util::repair_utf8(decoded);
            utm[key] = decoded;
        }
        pos = end + 1;
    }
    return utm;
}

bool is_object_with_array(const http::HttpResponse& response, const char* field) {
    const auto body = http::parse_json_body(response.body);
    return body.doc.is_object() && body.doc.contains(field) && body.doc[field].is_array();
}

bool is_object_with_object(const http::HttpResponse& response, const char* field) {
    const auto body = http::parse_json_body(response.body);
    return body.doc.is_object() && body.doc.contains(field) && body.doc[field].is_object();
}

class LeadSource final : public pipeline::Source {
public:
    explicit LeadSource(LeadSourceOptions options)
        : m_options(std::move(options)), m_http(http::HttpClientOptions{m_options.verify_tls}) {
        while (!m_options.base_url.empty() && m_options.base_url.back() == '/') {
            m_options.base_url.pop_back();
        }
    }

    void open(const std::optional<std::string>& checkpoint) override {
        const auto now = m_options.clock->wall_now();
        m_end = now;
        if (m_options.since) {
            m_from = *m_options.since;
        } else if (checkpoint) {
            const auto doc = json::parse(*checkpoint, nullptr, false);
            const auto since = doc.is_object() && doc.contains("since") && doc["since"].is_string()
                                   ? util::parse_iso8601(doc["since"].get<std::string>())
                                   : std::nullopt;
            if (!since) {
                throw Error(ErrorKind::data, "the stored Callback24 checkpoint is unreadable",
                            "start again with --since TIME");
            }
            m_from = *since - m_options.lookback;
        } else {
            m_from = now - m_options.first_run;
        }
    }

    std::optional<pipeline::Page> next_page() override {
        if (m_from >= m_end) {
            return std::nullopt;
        }
        const auto to = std::min(m_end, m_from + m_options.slice);
        const auto from_text = util::format_iso8601(m_from);
        const auto to_text = util::format_iso8601(to);
        pipeline::Page page;
        page.stream = "leads";
        page.context = {{"window", from_text + "/" + to_text}};
        const auto history =
            get("/api/v1/phoneCalls/history?date_from=" + util::percent_encode(from_text) +
                    "&date_to=" + util::percent_encode(to_text),
                "reading the Callback24 call history", "result");
        for (const auto& item : history["result"]) {
            if (!item.is_object()) {
                page.records.push_back({{"source", "callback24"},
                                        {"error", "a call in the history is not an object"},
                                        {"raw", excerpt(item)}});
                continue;
            }
            const auto service = string_or_null(item, "service_name");
            if (!service.is_string() ||
                std::find(m_options.services.begin(), m_options.services.end(),
                          service.get<std::string>()) == m_options.services.end()) {
                ++m_filtered;
                continue;
            }
            page.records.push_back(lead_of(item));
        }
        page.checkpoint = json{{"since", to_text}}.dump();
        m_from = to;
        return page;
    }

    void report(pipeline::RunSummary& summary) const override {
        summary.filtered += m_filtered;
        summary.retries += m_stats.retries.load();
    }

private:
    json get(const std::string& path, const std::string& what, const char* field) {
        http::HttpRequest request;
        request.url = m_options.base_url + path;
        request.headers = {{"X-API-TOKEN", m_options.token}, {"Accept", "application/json"}};
        const http::RetryContext context{m_options.retry, m_stats, *m_options.clock,
                                         m_options.deadline, what};
        try {
            const auto response = http::send_with_retry(
                m_http, request, context, [field](const http::HttpResponse& r) {
                    return std::string(field) == "result" ? is_object_with_array(r, field)
                                                          : is_object_with_object(r, field);
                });
            return http::parse_json_body(response.body).doc;
        } catch (Error& e) {
            if (e.kind() == ErrorKind::auth) {
                e.set_hint("check the Callback24 API key (--token-env)");
            }
            throw;
        }
    }

    json lead_of(const json& item) {
        std::string id;
        if (item.contains("id") && item["id"].is_number_integer()) {
            id = item["id"].dump();
        } else if (item.contains("id") && item["id"].is_string()) {
            id = item["id"].get<std::string>();
        }
        if (id.empty()) {
            return {{"source", "callback24"},
                    {"error", "a call without an id"},
                    {"raw", excerpt(item)}};
        }
        const auto phone = string_or_null(item, "phone_number");
        if (!phone.is_string() || phone.get<std::string>().empty()) {
            return {{"source", "callback24"},
                    {"id", id},
                    {"error", "the call has no phone number"},
                    {"raw", excerpt(item)}};
        }
        json details = {{"service_name", item["service_name"]},
                        {"addition_time", string_or_null(item, "addition_time")},
                        {"call_start_time", string_or_null(item, "call_start_time")}};
        if (item.contains("has_status_realised") && item["has_status_realised"].is_boolean()) {
            details["has_status_realised"] = item["has_status_realised"];
        }
        try {
            const auto info =
                get("/api/v1/phoneCalls/getCallInfo?call_id=" + util::percent_encode(id),
                    "reading Callback24 call " + id, "data");
            const auto& data = info["data"];
            if (data.contains("website") && data["website"].is_string()) {
                const auto website = data["website"].get<std::string>();
                details["page_url"] = website;
                details["utm"] = utm_of(website);
            }
            if (data.contains("call_at") && data["call_at"].is_string()) {
                details["call_at"] = data["call_at"];
            }
        } catch (const Error& e) {
            // The call is a lead without its page: a refused getCallInfo does not lose it.
            if (e.kind() != ErrorKind::usage) {
                throw;
            }
            details["call_info_error"] = e.what();
        }
        json created = nullptr;
        if (const auto added = string_or_null(item, "addition_time"); added.is_string()) {
            if (const auto when = util::parse_iso8601(added.get<std::string>())) {
                created = util::format_iso8601(*when);
            }
        }
        return {{"source", "callback24"}, {"id", id},          {"created_at", created},
                {"name", nullptr},        {"email", nullptr},  {"phone", phone},
                {"message", nullptr},     {"details", details}};
    }

    LeadSourceOptions m_options;
    http::HttpClient m_http;
    http::RetryStats m_stats;
    SystemTime m_from{};
    SystemTime m_end{};
    long m_filtered = 0;
};

} // namespace

std::unique_ptr<pipeline::Source> make_lead_source(const LeadSourceOptions& options) {
    return std::make_unique<LeadSource>(options);
}

} // namespace crmsync::drivers::callback24
