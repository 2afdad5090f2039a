#include "drivers/gmail/lead_source.hpp"

#include "drivers/gmail/mime.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/attempt_loop.hpp"
#include "lib/rest/paging.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace crmsync::drivers::gmail {
namespace {

using nlohmann::json;

constexpr std::size_t k_raw_excerpt_bytes = 300;
constexpr const char* k_checkpoint_hint =
    "clear the job's checkpoint (or pass --since) to read the mailbox again";

std::string one_line(std::string text, std::size_t max_bytes = 300) {
    std::replace_if(
        text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return util::redact(util::utf8_prefix(text, max_bytes));
}

std::string string_member(const json& object, const char* key) {
    if (!object.is_object()) {
        return {};
    }
    const auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string format_lead_time(SystemTime t) {
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(t));
}

std::optional<SystemTime> internal_date(const json& message) {
    const std::string text = string_member(message, "internalDate");
    long long ms = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || ms < 0) {
        return std::nullopt;
    }
    return SystemTime(std::chrono::milliseconds(ms));
}

json text_or_null(const std::map<std::string, std::string>& values, const char* key) {
    const auto it = values.find(key);
    return it == values.end() || it->second.empty() ? json(nullptr) : json(it->second);
}

// The google.rpc error of a non-2xx answer: its first reason and its message.
struct GoogleError {
    std::string reason;
    std::string message;
};

GoogleError google_error(const http::HttpResponse& response) {
    std::string text = response.body;
    util::repair_utf8(text);
    const auto doc = json::parse(text, nullptr, false);
    GoogleError out;
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("error")) {
        out.message = one_line(response.body, 200);
        return out;
    }
    const auto& e = doc["error"];
    if (e.is_string()) {
        out.message = e.get<std::string>();
        return out;
    }
    out.message = string_member(e, "message");
    if (e.is_object() && e.contains("errors") && e["errors"].is_array() && !e["errors"].empty()) {
        out.reason = string_member(e["errors"][0], "reason");
    }
    if (out.reason.empty() && e.is_object() && e.contains("details") && e["details"].is_array()) {
        for (const auto& d : e["details"]) {
            if (!string_member(d, "reason").empty()) {
                out.reason = string_member(d, "reason");
                break;
            }
        }
    }
    out.message = one_line(out.message, 300);
    return out;
}

class GmailLeadSource final : public pipeline::Source {
public:
    explicit GmailLeadSource(const LeadSourceOptions& options)
        : m_options(options), m_http(http::HttpClientOptions{options.verify_tls}) {
        while (!m_options.base_url.empty() && m_options.base_url.back() == '/') {
            m_options.base_url.pop_back();
        }
        if (!m_options.access_token) {
            throw Error(ErrorKind::internal,
                        "the Gmail lead source needs an access token callback");
        }
        if (!m_options.lead_template) {
            throw Error(ErrorKind::internal, "the Gmail lead source needs a lead template");
        }
        if (m_options.clock == nullptr) {
            m_options.clock = &Clock::real();
        }
        m_options.page_size = std::clamp(m_options.page_size, 1, 500);
        m_messages_path = m_options.base_url + "/gmail/v1/users/" +
                          util::percent_encode(m_options.user_id) + "/messages";
    }

    void open(const std::optional<std::string>& checkpoint) override {
        m_stored.reset();
        if (checkpoint && !checkpoint->empty()) {
            const auto doc = json::parse(*checkpoint, nullptr, false);
            std::optional<SystemTime> stored;
            if (!doc.is_discarded() && doc.is_object() && doc.contains("since") &&
                doc["since"].is_string()) {
                stored = util::parse_iso8601(doc["since"].get<std::string>());
            }
            if (!stored) {
                throw Error(ErrorKind::data,
                            "the stored Gmail checkpoint is not one this source wrote",
                            k_checkpoint_hint);
            }
            m_stored = stored;
        }
        std::optional<SystemTime> start;
        if (m_options.since) {
            start = *m_options.since;
        } else if (m_stored) {
            start = *m_stored - m_options.lookback;
        }
        m_query = m_options.lead_template->query();
        if (start) {
            // after:<epoch seconds> is an exact bound (dates would be midnight PST); floored
            // so the start second is read again rather than lost.
            const auto seconds =
                std::chrono::floor<std::chrono::seconds>(*start).time_since_epoch().count();
            m_query += fmt::format(" after:{}", seconds > 0 ? seconds - 1 : 0);
        }
        m_paging = rest::cursor_token(
            {"/nextPageToken", "", "pageToken", "", {"maxResults", m_options.page_size}});
        m_paging->start();
        m_done = false;
        m_newest.reset();
        m_page = 0;
        m_fetched = 0;
    }

    std::optional<pipeline::Page> next_page() override {
        if (m_done) {
            return std::nullopt;
        }
        try {
            return fetch_page();
        } catch (Error& e) {
            e.add_context(fmt::format("while reading Gmail lead mails ({}), list page {}",
                                      m_options.lead_template->name(), m_page + 1));
            throw;
        }
    }

    void report(pipeline::RunSummary& summary) const override {
        summary.retries += m_stats.retries.load();
        if (m_vanished > 0) {
            summary.counters.emplace_back("Gmail messages gone before they were read", m_vanished);
        }
        if (m_unreadable > 0) {
            summary.counters.emplace_back("unreadable lead mails", m_unreadable);
        }
    }

private:
    pipeline::Page fetch_page() {
        rest::PageRequest request;
        request.url = m_messages_path;
        request.query = {{"q", m_query}};
        m_paging->prepare(request);
        http::HttpResponse response;
        const auto body = send(request.final_url(), "GET messages (list)", response);
        if (!body) {
            throw Error(ErrorKind::usage,
                        "the Gmail mailbox " + m_options.user_id + " was not found",
                        "check --account");
        }
        std::vector<json> listed;
        if (body->contains("messages")) {
            if (!(*body)["messages"].is_array()) {
                throw Error(ErrorKind::data,
                            "users.messages.list answered messages that are not "
                            "an array",
                            "the Gmail API may have changed; run with --l 5 and report the log");
            }
            listed = (*body)["messages"].get<std::vector<json>>();
        }
        std::vector<json> records;
        for (const auto& item : listed) {
            const std::string id = string_member(item, "id");
            if (id.empty()) {
                ++m_unreadable;
                records.push_back({{"source", "gmail"},
                                   {"id", nullptr},
                                   {"error", "a listed message has no id"},
                                   {"raw", one_line(item.dump(), k_raw_excerpt_bytes)}});
                continue;
            }
            http::HttpResponse message_response;
            const auto message =
                send(m_messages_path + "/" + util::percent_encode(id) + "?format=full",
                     "GET messages/" + id, message_response);
            if (!message) {
                ++m_vanished;
                continue;
            }
            json record = lead_record(*message, *m_options.lead_template);
            if (record.contains("error")) {
                ++m_unreadable;
            }
            if (const auto t = internal_date(*message); t && (!m_newest || *t > *m_newest)) {
                m_newest = *t;
            }
            records.push_back(std::move(record));
        }
        const bool more = m_paging->advance(rest::PageReply{response, *body, listed});
        ++m_page;
        m_fetched += static_cast<long>(records.size());

        pipeline::Page page;
        page.stream = "gmail";
        page.records = std::move(records);
        page.progress = json{{"stream", "gmail"}, {"page", m_page}, {"records", m_fetched}}.dump();
        if (!more) {
            std::optional<SystemTime> reached = m_stored;
            if (m_newest && (!reached || *m_newest > *reached)) {
                reached = m_newest;
            }
            if (reached) {
                page.checkpoint = json{{"since", util::format_iso8601(*reached)}}.dump();
            }
            m_done = true;
        }
        return page;
    }

    // One GET with the access token, retried per the Gmail error guide. nullopt for a 404
    // (a message deleted meanwhile).
    std::optional<json> send(const std::string& url, const std::string& what,
                             http::HttpResponse& response) {
        http::AttemptLoop attempts(
            m_options.retry, *m_options.clock, m_options.deadline, what,
            {"Gmail", "Gmail keeps limiting or failing; the next run continues from the checkpoint",
             "", "the next run continues from the checkpoint"});
        bool renewed = false;
        for (;;) {
            attempts.begin();
            const std::string token = m_options.access_token();
            if (token.empty()) {
                throw Error(ErrorKind::auth, "no Gmail access token was available",
                            "authorize the account again with crmsync accounts");
            }
            util::register_secret(token);
            http::HttpRequest request;
            request.url = url;
            request.timeout = m_options.request_timeout;
            request.headers = {{"Accept", "application/json"},
                               {"Authorization", "Bearer " + token}};
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
                if (!body.is_discarded() && body.is_object()) {
                    return body;
                }
                attempts.damaged_body(response);
            } else if (response.status == 404) {
                return std::nullopt;
            } else if (response.status == 401) {
                const auto error = google_error(response);
                if (!renewed) {
                    // An expired token: forget it, ask for a fresh one and try once more.
                    renewed = true;
                    if (m_options.forget_token) {
                        m_options.forget_token();
                    }
                    attempts.repeat_now();
                    continue;
                }
                throw Error(
                    ErrorKind::auth,
                    fmt::format("{} was refused with HTTP 401 twice: {}", what, error.message),
                    "authorize the Gmail account again (crmsync accounts) and check its "
                    "gmail.readonly scope");
            } else {
                const auto error = google_error(response);
                if (response.status == 403) {
                    if (error.reason == "dailyLimitExceeded") {
                        throw Error(ErrorKind::connection,
                                    fmt::format("{}: the Gmail daily quota is used up ({})", what,
                                                error.message),
                                    "the next run continues from the checkpoint");
                    }
                    if (error.reason != "rateLimitExceeded" &&
                        error.reason != "userRateLimitExceeded") {
                        throw Error(ErrorKind::auth,
                                    fmt::format("{} was refused with HTTP 403 ({}): {}", what,
                                                error.reason, error.message),
                                    "check the account's Gmail access and the domain's policy");
                    }
                } else if (response.status == 400) {
                    throw Error(ErrorKind::usage,
                                fmt::format("{} failed with HTTP 400 ({}): {}", what, error.reason,
                                            error.message),
                                "check the template's \"query\" (Gmail search syntax)");
                } else if (!http::RetryPolicy::is_retryable_status(response.status)) {
                    throw Error(ErrorKind::usage,
                                fmt::format("{} failed with HTTP {}: {}", what, response.status,
                                            error.message),
                                "check --api-url and --account");
                }
                std::optional<std::chrono::milliseconds> wait;
                if (response.status == 429 || response.status == 503) {
                    wait = http::RetryPolicy::retry_after(response, m_options.clock->wall_now());
                }
                attempts.failed(
                    fmt::format("HTTP {} {}: {}", response.status, error.reason, error.message),
                    wait);
            }
            attempts.pause();
            m_stats.retries.fetch_add(1, std::memory_order_relaxed);
        }
    }

    LeadSourceOptions m_options;
    http::HttpClient m_http;
    http::RetryStats m_stats;
    std::string m_messages_path;
    std::string m_query;
    std::unique_ptr<rest::Paging> m_paging;
    std::optional<SystemTime> m_stored;
    std::optional<SystemTime> m_newest;
    bool m_done = false;
    long m_page = 0;
    long m_fetched = 0;
    long m_vanished = 0;
    long m_unreadable = 0;
};

} // namespace

json lead_record(const json& message, const LeadTemplate& lead_template) {
    const std::string id = string_member(message, "id");
    const auto error = [&](const std::string& reason, std::string_view raw) {
        return json{{"source", "gmail"},
                    {"id", id.empty() ? json(nullptr) : json(id)},
                    {"error", reason},
                    {"raw", std::string(util::utf8_prefix(raw, k_raw_excerpt_bytes))}};
    };
    std::string snippet = string_member(message, "snippet");
    util::repair_utf8(snippet);
    if (id.empty()) {
        return error("the message has no id", snippet);
    }
    const auto created = internal_date(message);
    if (!created) {
        return error("the message has no readable internalDate", snippet);
    }
    const auto payload = message.find("payload");
    if (payload == message.end() || !payload->is_object()) {
        return error("the message has no payload (was it read with format=full?)", snippet);
    }
    const MailText text = message_text(*payload);
    if (text.text.empty()) {
        return error(text.problem.empty() ? "the mail has no text" : text.problem, snippet);
    }
    std::vector<std::string> problems;
    const auto values = lead_template.read(text.text, &problems);
    const auto has = [&](const char* key) {
        const auto it = values.find(key);
        return it != values.end() && !it->second.empty();
    };
    if (!has("email") && !has("phone")) {
        std::string reason =
            "template " + lead_template.name() + " found neither an e-mail nor a phone in the mail";
        for (const auto& p : problems) {
            reason += "; " + p;
        }
        return error(reason, text.text);
    }
    json details = json::object();
    details["template"] = lead_template.name();
    details["subject"] = header_value(*payload, "Subject").value_or("");
    details["from"] = header_value(*payload, "From").value_or("");
    details["thread_id"] = string_member(message, "threadId");
    details["part"] = text.mime_type;
    details["charset"] = text.charset;
    json fields = json::object();
    for (const auto& [key, value] : values) {
        if (key != "name" && key != "email" && key != "phone" && key != "message") {
            fields[key] = value;
        }
    }
    details["fields"] = std::move(fields);
    std::string note = text.problem;
    for (const auto& p : problems) {
        note += (note.empty() ? "" : "; ") + p;
    }
    if (!note.empty()) {
        details["note"] = note;
    }
    return {{"source", "gmail"},
            {"id", id},
            {"created_at", format_lead_time(*created)},
            {"name", text_or_null(values, "name")},
            {"email", text_or_null(values, "email")},
            {"phone", text_or_null(values, "phone")},
            {"message", text_or_null(values, "message")},
            {"details", std::move(details)}};
}

std::unique_ptr<pipeline::Source> make_lead_source(const LeadSourceOptions& options) {
    return std::make_unique<GmailLeadSource>(options);
}

} // namespace crmsync::drivers::gmail
