#include "tests/fakes/gmail/gmail_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/base64.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

constexpr long long k_default_page = 100;
constexpr long long k_max_page = 500;

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string base64url(const std::string& bytes) {
    std::string text = base64_encode(bytes);
    std::replace(text.begin(), text.end(), '+', '-');
    std::replace(text.begin(), text.end(), '/', '_');
    return text; // Gmail keeps the '=' padding
}

json rpc_error(int code, const std::string& status, const std::string& reason,
               const std::string& message, const std::string& domain = "global") {
    return {
        {"error",
         {{"code", code},
          {"message", message},
          {"errors", json::array({{{"message", message}, {"domain", domain}, {"reason", reason}}})},
          {"status", status}}}};
}

json body_for_status(int status, const std::string& reason) {
    switch (status) {
    case 401:
        return rpc_error(401, "UNAUTHENTICATED", "authError",
                         "Request had invalid authentication credentials. Expected OAuth 2 access "
                         "token, login cookie or other valid authentication credential. See "
                         "https://developers.google.com/identity/sign-in/web/devconsole-project.");
    case 403: {
        const std::string r = reason.empty() ? "rateLimitExceeded" : reason;
        if (r == "rateLimitExceeded" || r == "userRateLimitExceeded") {
            return rpc_error(403, "PERMISSION_DENIED", r,
                             "Quota exceeded for quota metric 'Queries' and limit 'Queries per "
                             "minute per user' of service 'gmail.googleapis.com' for consumer "
                             "'project_number:123'.",
                             "usageLimits");
        }
        return rpc_error(403, "PERMISSION_DENIED", r, "Forbidden: " + r, "usageLimits");
    }
    case 429:
        return rpc_error(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded",
                         "Resource has been exhausted (e.g. check quota).");
    case 404:
        return rpc_error(404, "NOT_FOUND", "notFound", "Requested entity was not found.");
    case 400:
        return rpc_error(400, "INVALID_ARGUMENT", "badRequest", "Invalid query");
    default:
        return rpc_error(status, status >= 500 ? "UNAVAILABLE" : "UNKNOWN", "backendError",
                         status >= 500 ? "Backend Error" : "Error");
    }
}

std::string header_of(const json& message, const std::string& name) {
    const auto& payload = message.value("payload", json::object());
    for (const auto& h : payload.value("headers", json::array())) {
        if (lower(h.value("name", "")) == lower(name)) {
            return h.value("value", "");
        }
    }
    return {};
}

std::int64_t internal_ms(const json& message) {
    try {
        return std::stoll(message.value("internalDate", std::string("0")));
    } catch (const std::exception&) {
        return 0;
    }
}

// Splits q into terms; "subject:"a b"" and "a b" stay one term (quotes removed).
std::vector<std::pair<std::string, std::string>> terms_of(const std::string& q) {
    std::vector<std::pair<std::string, std::string>> terms;
    std::size_t i = 0;
    while (i < q.size()) {
        while (i < q.size() && q[i] == ' ') {
            ++i;
        }
        if (i >= q.size()) {
            break;
        }
        std::string op;
        std::string value;
        const auto colon = q.find(':', i);
        const auto space = q.find(' ', i);
        const auto quote = q.find('"', i);
        if (colon != std::string::npos && (space == std::string::npos || colon < space) &&
            (quote == std::string::npos || colon < quote)) {
            op = lower(q.substr(i, colon - i));
            i = colon + 1;
        }
        if (i < q.size() && q[i] == '"') {
            const auto end = q.find('"', i + 1);
            value = q.substr(i + 1, (end == std::string::npos ? q.size() : end) - i - 1);
            i = end == std::string::npos ? q.size() : end + 1;
        } else {
            const auto end = q.find(' ', i);
            value = q.substr(i, (end == std::string::npos ? q.size() : end) - i);
            i = end == std::string::npos ? q.size() : end;
        }
        terms.emplace_back(op, value);
    }
    return terms;
}

// nullopt: a term the fake cannot read (a bad after: value).
std::optional<bool> matches(const json& message,
                            const std::vector<std::pair<std::string, std::string>>& terms) {
    for (const auto& [op, value] : terms) {
        const std::string v = lower(value);
        if (op == "after" || op == "before") {
            long long bound = 0;
            try {
                std::size_t used = 0;
                bound = std::stoll(value, &used);
                if (used != value.size()) {
                    return std::nullopt;
                }
            } catch (const std::exception&) {
                return std::nullopt; // dates and ISO times are not modelled
            }
            const auto ms = internal_ms(message);
            if (op == "after" ? ms <= bound * 1000 : ms >= bound * 1000) {
                return false;
            }
        } else if (op == "from" || op == "to" || op == "subject") {
            if (lower(header_of(message, op)).find(v) == std::string::npos) {
                return false;
            }
        } else {
            const auto where =
                lower(header_of(message, "subject") + " " + message.value("snippet", ""));
            if (where.find(v) == std::string::npos) {
                return false;
            }
        }
    }
    return true;
}

void number_parts(json& part, const std::string& id) {
    part["partId"] = id;
    if (part.contains("parts")) {
        int n = 0;
        for (auto& child : part["parts"]) {
            number_parts(child, id.empty() ? std::to_string(n) : id + "." + std::to_string(n));
            ++n;
        }
    }
}

} // namespace

GmailFault gmail_fault_from_json(const json& j) {
    GmailFault fault;
    assign_fault_action(fault, read_fault_json(j, [&fault](const json& m) {
                            fault.method = m.value("method", std::string());
                            fault.path_prefix = m.value("path_prefix", std::string());
                            fault.reason = m.value("reason", std::string());
                        }));
    return fault;
}

struct GmailFake::Impl {
    GmailFakeOptions options;
    HttpListener listener;
    FaultQueue<GmailFault> faults;
    RequestLog<GmailRequest> log{100000};
    mutable std::mutex mutex;
    using Key = std::pair<std::int64_t, std::string>;
    std::map<Key, json, std::greater<>> ordered; // newest first
    std::map<std::string, Key> by_id;

    static void answer(httplib::Response& res, int status, const json& body) {
        res.status = status;
        res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                        "application/json; charset=UTF-8");
    }

    json list(const httplib::Request& req, int& status) {
        const auto terms = terms_of(req.has_param("q") ? req.get_param_value("q") : "");
        long long size = k_default_page;
        long long offset = 0;
        try {
            if (req.has_param("maxResults")) {
                size = std::clamp(std::stoll(req.get_param_value("maxResults")), 1LL, k_max_page);
            }
            if (req.has_param("pageToken")) {
                const auto decoded = base64_decode(req.get_param_value("pageToken"));
                if (!decoded || decoded->rfind("o", 0) != 0) {
                    throw std::invalid_argument("page token");
                }
                offset = std::stoll(decoded->substr(1));
            }
        } catch (const std::exception&) {
            status = 400;
            return rpc_error(400, "INVALID_ARGUMENT", "invalidArgument", "Invalid pageToken");
        }
        json found = json::array();
        long long matched = 0;
        bool more = false;
        {
            std::lock_guard lock(mutex);
            for (const auto& [key, message] : ordered) {
                const auto ok = matches(message, terms);
                if (!ok) {
                    status = 400;
                    return rpc_error(400, "INVALID_ARGUMENT", "badRequest", "Invalid query");
                }
                if (!*ok) {
                    continue;
                }
                if (matched >= offset) {
                    if (static_cast<long long>(found.size()) >= size) {
                        more = true;
                        break;
                    }
                    found.push_back({{"id", message["id"]},
                                     {"threadId", message.value("threadId", key.second)}});
                }
                ++matched;
            }
        }
        status = 200;
        json body = {{"resultSizeEstimate", found.size()}};
        if (!found.empty()) {
            body["messages"] = std::move(found);
        }
        if (more) {
            body["nextPageToken"] = base64_encode("o" + std::to_string(offset + size));
        }
        return body;
    }

    void serve(const httplib::Request& req, httplib::Response& res, bool single) {
        const auto fault = faults.take(req.method, req.path);
        const auto authorization = req.get_header_value("Authorization");
        const auto record = [&](int status) {
            log.add(req.path, {req.path, query_of(req), authorization, status});
        };
        if (fault) {
            switch (fault->kind) {
            case FaultKind::reset:
                AbortableServer::abort_current_connection();
                record(0);
                return;
            case FaultKind::status:
                if (fault->retry_after) {
                    res.set_header("Retry-After", *fault->retry_after);
                }
                answer(res, fault->status, body_for_status(fault->status, fault->reason));
                record(fault->status);
                return;
            case FaultKind::malformed:
                res.status = 200;
                res.set_content("<html><body>502 Bad Gateway</body></html>", "text/html");
                record(200);
                return;
            case FaultKind::slow:
                std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
                break;
            case FaultKind::truncate:
                break;
            }
        }
        std::string valid;
        {
            std::lock_guard lock(mutex);
            valid = options.access_token;
        }
        if (authorization != "Bearer " + valid) {
            res.set_header("WWW-Authenticate", "Bearer realm=\"https://accounts.google.com/\", "
                                               "error=\"invalid_token\"");
            answer(res, 401, body_for_status(401, ""));
            record(401);
            return;
        }
        const std::string user = req.matches[1].str();
        if (user != "me" && user != options.email) {
            answer(res, 403,
                   rpc_error(403, "PERMISSION_DENIED", "forbidden",
                             "Delegation denied for " + options.email));
            record(403);
            return;
        }
        int status = 200;
        json body;
        if (single) {
            std::lock_guard lock(mutex);
            const auto it = by_id.find(req.matches[2].str());
            if (it == by_id.end()) {
                status = 404;
                body = body_for_status(404, "");
            } else {
                body = ordered.at(it->second);
            }
        } else {
            body = list(req, status);
        }
        answer(res, status, body);
        if (fault && fault->kind == FaultKind::truncate) {
            res.body.resize(res.body.size() / 2);
        }
        record(status);
    }
};

GmailFake::GmailFake(GmailFakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = std::move(options);
}

GmailFake::~GmailFake() { stop(); }

int GmailFake::start(int port) {
    auto& impl = *m_impl;
    return impl.listener.start(
        port,
        [&impl](AbortableServer& server) {
            server.Get(R"(/gmail/v1/users/([^/]+)/messages)",
                       [&impl](const httplib::Request& req, httplib::Response& res) {
                           impl.serve(req, res, false);
                       });
            server.Get(R"(/gmail/v1/users/([^/]+)/messages/([^/]+))",
                       [&impl](const httplib::Request& req, httplib::Response& res) {
                           impl.serve(req, res, true);
                       });
            ControlRoutes control(server, [](std::string_view m) {
                return rpc_error(400, "INVALID_ARGUMENT", "badRequest", std::string(m)).dump();
            });
            control.faults<GmailFault>(impl.faults, gmail_fault_from_json);
        },
        impl.options.worker_threads);
}

void GmailFake::stop() { m_impl->listener.stop(); }

int GmailFake::port() const { return m_impl->listener.port(); }

std::string GmailFake::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

void GmailFake::put_message(json message) {
    const std::string id = message.at("id").get<std::string>();
    std::lock_guard lock(m_impl->mutex);
    if (const auto old = m_impl->by_id.find(id); old != m_impl->by_id.end()) {
        m_impl->ordered.erase(old->second);
    }
    const Impl::Key key{internal_ms(message), id};
    m_impl->by_id[id] = key;
    m_impl->ordered[key] = std::move(message);
}

void GmailFake::remove_message(const std::string& id) {
    std::lock_guard lock(m_impl->mutex);
    if (const auto old = m_impl->by_id.find(id); old != m_impl->by_id.end()) {
        m_impl->ordered.erase(old->second);
        m_impl->by_id.erase(old);
    }
}

void GmailFake::set_access_token(const std::string& token) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.access_token = token;
}

void GmailFake::inject(GmailFault fault) { m_impl->faults.push(std::move(fault)); }

std::vector<GmailRequest> GmailFake::requests() const { return m_impl->log.records(); }

json GmailFake::part(const std::string& mime_type, const std::string& bytes,
                     const std::vector<std::pair<std::string, std::string>>& headers) {
    json h = json::array();
    for (const auto& [name, value] : headers) {
        h.push_back({{"name", name}, {"value", value}});
    }
    return {{"partId", ""},
            {"mimeType", mime_type},
            {"filename", ""},
            {"headers", std::move(h)},
            {"body", {{"size", bytes.size()}, {"data", base64url(bytes)}}}};
}

json GmailFake::multipart(const std::string& mime_type, std::vector<json> children) {
    return {{"partId", ""},
            {"mimeType", mime_type},
            {"filename", ""},
            {"headers", json::array({{{"name", "Content-Type"},
                                      {"value", mime_type + "; boundary=\"000000000000b1\""}}})},
            {"body", {{"size", 0}}},
            {"parts", std::move(children)}};
}

json GmailFake::message(const std::string& id, std::int64_t internal_date_ms, json payload,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
    number_parts(payload, "");
    auto& h = payload["headers"];
    for (const auto& [name, value] : headers) {
        h.push_back({{"name", name}, {"value", value}});
    }
    std::string subject;
    for (const auto& [name, value] : headers) {
        if (lower(name) == "subject") {
            subject = value;
        }
    }
    return {{"id", id},
            {"threadId", id},
            {"labelIds", json::array({"INBOX", "UNREAD", "CATEGORY_PERSONAL"})},
            {"snippet", subject},
            {"historyId", "4711"},
            {"internalDate", std::to_string(internal_date_ms)},
            {"sizeEstimate", 4096},
            {"payload", std::move(payload)}};
}

} // namespace crmsync::fakes
