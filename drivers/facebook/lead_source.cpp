#include "drivers/facebook/lead_source.hpp"

#include "drivers/facebook/lead_fields.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/attempt_loop.hpp"
#include "lib/rest/paging.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace crmsync::drivers::facebook {
namespace {

using nlohmann::json;

constexpr const char* k_lead_fields = "id,created_time,field_data,ad_id,ad_name,adset_id,"
                                      "adset_name,campaign_id,campaign_name,form_id,platform,"
                                      "is_organic";
constexpr const char* k_checkpoint_hint =
    "clear the job's checkpoint (or pass --since) to read the forms again";

// Graph error codes that mean "slow down" (error-handling guide and rate-limiting pages).
bool is_throttling_code(long code) {
    return code == 4 || code == 17 || code == 32 || code == 341 || code == 613 || code == 80001 ||
           code == 80005;
}

// Graph error codes that mean the token lacks a permission or a session.
bool is_permission_code(long code) {
    return code == 10 || code == 102 || (code >= 200 && code < 300);
}

std::string one_line(std::string text, std::size_t max_bytes = 300) {
    std::replace_if(
        text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return util::redact(util::utf8_prefix(text, max_bytes));
}

// The Graph error object of a non-2xx answer, if its body holds one.
struct GraphError {
    long code = 0;
    long subcode = 0;
    bool transient = false;
    std::string message;
    std::string fbtrace_id;
};

std::optional<GraphError> graph_error(const http::HttpResponse& response) {
    std::string text = response.body;
    util::repair_utf8(text);
    const auto doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("error") ||
        !doc["error"].is_object()) {
        return std::nullopt;
    }
    const auto& e = doc["error"];
    GraphError out;
    out.code = e.value("code", json(0)).is_number_integer() ? e["code"].get<long>() : 0;
    if (e.contains("error_subcode") && e["error_subcode"].is_number_integer()) {
        out.subcode = e["error_subcode"].get<long>();
    }
    out.transient = e.value("is_transient", json(false)) == json(true);
    if (e.contains("message") && e["message"].is_string()) {
        out.message = e["message"].get<std::string>();
    }
    if (e.contains("fbtrace_id") && e["fbtrace_id"].is_string()) {
        out.fbtrace_id = e["fbtrace_id"].get<std::string>();
    }
    return out;
}

// The longest "estimated_time_to_regain_access" (minutes) of a throttled answer's business
// use case usage header: {"<business id>": [{"type": "pages", "call_count": 100, ...,
// "estimated_time_to_regain_access": 19}]}. nullopt when absent or zero.
std::optional<std::chrono::minutes> regain_access_after(const http::HttpResponse& response) {
    const std::string* header = response.header("x-business-use-case-usage");
    if (header == nullptr) {
        return std::nullopt;
    }
    const auto doc = json::parse(*header, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        return std::nullopt;
    }
    long longest = 0;
    for (const auto& [business, usages] : doc.items()) {
        if (!usages.is_array()) {
            continue;
        }
        for (const auto& usage : usages) {
            const auto it =
                usage.is_object() ? usage.find("estimated_time_to_regain_access") : usage.end();
            if (it != usage.end() && it->is_number_integer()) {
                longest = std::max(longest, it->get<long>());
            }
        }
    }
    if (longest <= 0) {
        return std::nullopt;
    }
    return std::chrono::minutes(longest);
}

class FacebookLeadSource final : public pipeline::Source {
public:
    explicit FacebookLeadSource(const LeadSourceOptions& options)
        : m_options(options), m_http(http::HttpClientOptions{options.verify_tls}) {
        while (!m_options.base_url.empty() && m_options.base_url.back() == '/') {
            m_options.base_url.pop_back();
        }
        if (m_options.access_token.empty()) {
            throw Error(ErrorKind::config, "no Facebook page access token was given",
                        "set the environment variable named by --token-env");
        }
        util::register_secret(m_options.access_token);
        std::set<std::string> seen;
        for (const auto& form : m_options.forms) {
            if (form.empty() || !seen.insert(form).second) {
                throw Error(ErrorKind::usage,
                            "form ids must be distinct and not empty: '" + form + "'",
                            "pass --form ID[,ID...] with the Lead Ads form ids");
            }
        }
        if (m_options.clock == nullptr) {
            m_options.clock = &Clock::real();
        }
    }

    void open(const std::optional<std::string>& checkpoint) override {
        m_positions = json::object();
        if (checkpoint && !checkpoint->empty()) {
            const auto doc = json::parse(*checkpoint, nullptr, false);
            if (doc.is_discarded() || !doc.is_object() || !doc.contains("forms") ||
                !doc["forms"].is_object()) {
                throw Error(ErrorKind::data,
                            "the stored Facebook checkpoint is not one this source wrote",
                            k_checkpoint_hint);
            }
            m_positions = doc["forms"];
        }
        m_index = 0;
        m_started = false;
    }

    std::optional<pipeline::Page> next_page() override {
        while (m_index < m_options.forms.size()) {
            const std::string& form = m_options.forms[m_index];
            try {
                if (!m_started) {
                    start(form);
                }
                return fetch_page(form);
            } catch (Error& e) {
                e.add_context(fmt::format("while reading the leads of Facebook form {}, page {}",
                                          form, m_page + 1));
                throw;
            }
        }
        return std::nullopt;
    }

    void report(pipeline::RunSummary& summary) const override {
        summary.retries += m_stats.retries.load();
        if (m_unreadable > 0) {
            summary.counters.emplace_back("unreadable Facebook leads", m_unreadable);
        }
    }

private:
    void start(const std::string& form) {
        m_window_start.reset();
        if (m_options.since) {
            m_window_start = *m_options.since;
        } else if (const auto entry = m_positions.find(form); entry != m_positions.end()) {
            std::optional<SystemTime> stored;
            if (entry->is_object() && entry->contains("since") && (*entry)["since"].is_string()) {
                stored = util::parse_iso8601((*entry)["since"].get<std::string>());
            }
            if (!stored) {
                throw Error(ErrorKind::data,
                            "the stored checkpoint of Facebook form " + form + " is malformed",
                            k_checkpoint_hint);
            }
            m_window_start = *stored - m_options.lookback;
        }
        m_paging = rest::next_url({"/paging/next", {"limit", m_options.page_size}});
        m_paging->start();
        m_newest.reset();
        m_page = 0;
        m_fetched = 0;
        m_started = true;
    }

    pipeline::Page fetch_page(const std::string& form) {
        rest::PageRequest request;
        request.url = m_options.base_url + "/" + util::percent_encode(form) + "/leads";
        request.query = {{"access_token", m_options.access_token}, {"fields", k_lead_fields}};
        if (m_window_start) {
            // GREATER_THAN is exclusive: one second earlier keeps a lead of the start second.
            const auto start_seconds =
                std::chrono::floor<std::chrono::seconds>(*m_window_start).time_since_epoch();
            const json filtering = json::array({{{"field", "time_created"},
                                                 {"operator", "GREATER_THAN"},
                                                 {"value", start_seconds.count() - 1}}});
            request.query.emplace_back("filtering", filtering.dump());
        }
        m_paging->prepare(request);
        if (request.full_url && request.full_url->find("access_token=") == std::string::npos) {
            // Graph writes the token into paging.next; a proxy that strips it must not cost
            // the credentials.
            *request.full_url += (request.full_url->find('?') == std::string::npos ? "?" : "&") +
                                 std::string("access_token=") +
                                 util::percent_encode(m_options.access_token);
        }
        http::HttpResponse response;
        json body =
            send(request.full_url ? *request.full_url : request.final_url(), form, response);

        if (!body.is_object() || !body.contains("data") || !body["data"].is_array()) {
            throw Error(ErrorKind::data,
                        fmt::format("GET /{}/leads answered without a data array: {}", form,
                                    one_line(body.dump())),
                        "the Graph API may have changed; run with --l 5 and report the log");
        }
        std::vector<json> records;
        for (const auto& lead : body["data"]) {
            json record = lead_record(lead, form);
            if (record.contains("error")) {
                ++m_unreadable;
            } else if (const auto t = util::parse_iso8601(record["created_at"].get<std::string>());
                       t && (!m_newest || *t > *m_newest)) {
                m_newest = *t;
            }
            records.push_back(std::move(record));
        }
        const bool more = m_paging->advance(rest::PageReply{response, body, records});
        ++m_page;
        m_fetched += static_cast<long>(records.size());

        pipeline::Page page;
        page.stream = "facebook/" + form;
        page.records = std::move(records);
        page.progress =
            json{{"stream", page.stream}, {"page", m_page}, {"records", m_fetched}}.dump();
        if (!more) {
            if (m_newest) {
                const auto stored = stored_position(form);
                if (!stored || *m_newest > *stored) {
                    m_positions[form] = {{"since", util::format_iso8601(*m_newest)}};
                }
            }
            page.checkpoint = json{{"forms", m_positions}}.dump();
            m_started = false;
            ++m_index;
        }
        return page;
    }

    std::optional<SystemTime> stored_position(const std::string& form) const {
        const auto entry = m_positions.find(form);
        if (entry == m_positions.end() || !entry->is_object() || !entry->contains("since") ||
            !(*entry)["since"].is_string()) {
            return std::nullopt;
        }
        return util::parse_iso8601((*entry)["since"].get<std::string>());
    }

    // One GET, retried while the Graph API throttles or fails transiently. Returns the parsed
    // 2xx body.
    json send(const std::string& url, const std::string& form, http::HttpResponse& response) {
        const std::string what = "GET /" + form + "/leads";
        http::AttemptLoop attempts(
            m_options.retry, *m_options.clock, m_options.deadline, what,
            {"the Graph API",
             "the Graph API keeps throttling or failing; the next run continues from the "
             "checkpoint",
             "", "the next run continues from the checkpoint"});
        for (;;) {
            attempts.begin();
            http::HttpRequest request;
            request.url = url;
            request.timeout = m_options.request_timeout;
            request.headers.emplace_back("Accept", "application/json");
            http::TransportFailure failure;
            response = http::HttpResponse{};
            if (!m_http.perform(request, response, failure)) {
                if (!http::RetryPolicy::is_retryable_transport(failure.curl_code)) {
                    throw Error(ErrorKind::connection,
                                fmt::format("{} failed: {}", what, one_line(failure.message)),
                                "check --api-url and TLS settings (--insecure skips verification)");
                }
                attempts.failed(one_line(failure.message));
            } else if (response.status >= 200 && response.status < 300) {
                std::string text = response.body;
                util::repair_utf8(text);
                auto body = json::parse(text, nullptr, false);
                if (!body.is_discarded()) {
                    return body;
                }
                attempts.damaged_body(response);
            } else {
                std::string problem = classify_failure(response, what);
                std::optional<std::chrono::milliseconds> wait;
                if (const auto regain = regain_access_after(response)) {
                    // Business use case throttling says how long it lasts: wait that long
                    // when the run can, else leave the rest to a later run at once.
                    if (*regain > m_options.retry.max_retry_after) {
                        throw Error(ErrorKind::connection,
                                    fmt::format("{}: throttled by the Graph API for about {} min "
                                                "({})",
                                                what, regain->count(), problem),
                                    "the next run continues from the checkpoint once the limit "
                                    "has passed");
                    }
                    wait = std::chrono::duration_cast<std::chrono::milliseconds>(*regain);
                } else if (response.status == 429 || response.status == 503) {
                    wait = http::RetryPolicy::retry_after(response, m_options.clock->wall_now());
                }
                attempts.failed(std::move(problem), wait);
            }
            attempts.pause();
            m_stats.retries.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // Throws for an answer that must not be retried; returns what went wrong otherwise.
    static std::string classify_failure(const http::HttpResponse& response,
                                        const std::string& what) {
        const auto error = graph_error(response);
        if (error) {
            const std::string detail = fmt::format(
                "Graph error {}{}: {}{}", error->code,
                error->subcode != 0 ? fmt::format(" (subcode {})", error->subcode) : std::string(),
                one_line(error->message),
                error->fbtrace_id.empty() ? "" : " [fbtrace_id " + error->fbtrace_id + "]");
            if (error->code == 190) {
                throw Error(ErrorKind::auth,
                            fmt::format("{}: the Facebook page token expired or is invalid ({})",
                                        what, detail),
                            "create a new long-lived page access token with the leads_retrieval "
                            "permission and put it in the variable named by --token-env");
            }
            if (is_throttling_code(error->code) || error->transient) {
                return fmt::format("HTTP {}, throttled: {}", response.status, detail);
            }
            if (is_permission_code(error->code)) {
                throw Error(ErrorKind::auth, fmt::format("{} was refused: {}", what, detail),
                            "the token needs leads_retrieval, pages_show_list, "
                            "pages_read_engagement and pages_manage_ads on the form's page");
            }
            if (!http::RetryPolicy::is_retryable_status(response.status)) {
                throw Error(ErrorKind::usage, fmt::format("{} failed: {}", what, detail),
                            "check the form ids (--form) and --api-url");
            }
            return fmt::format("HTTP {}: {}", response.status, detail);
        }
        if (response.status == 401 || response.status == 403) {
            throw Error(ErrorKind::auth,
                        fmt::format("{} was refused with HTTP {}: {}", what, response.status,
                                    one_line(response.body, 200)),
                        "check the page access token in the variable named by --token-env");
        }
        if (!http::RetryPolicy::is_retryable_status(response.status)) {
            throw Error(ErrorKind::usage,
                        fmt::format("{} failed with HTTP {}: {}", what, response.status,
                                    one_line(response.body, 200)),
                        "check the form ids (--form) and --api-url");
        }
        return fmt::format("HTTP {}", response.status);
    }

    LeadSourceOptions m_options;
    http::HttpClient m_http;
    http::RetryStats m_stats;
    json m_positions = json::object();
    std::size_t m_index = 0;
    bool m_started = false;
    std::optional<SystemTime> m_window_start;
    std::unique_ptr<rest::Paging> m_paging;
    std::optional<SystemTime> m_newest;
    long m_page = 0;
    long m_fetched = 0;
    long m_unreadable = 0;
};

} // namespace

std::unique_ptr<pipeline::Source> make_lead_source(const LeadSourceOptions& options) {
    return std::make_unique<FacebookLeadSource>(options);
}

} // namespace crmsync::drivers::facebook
