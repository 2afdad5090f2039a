#include "tests/fakes/graph/graph_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/base64.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

constexpr long long k_default_limit = 25;
constexpr long long k_max_limit = 500;

json graph_error(const std::string& message, const std::string& type, int code, int subcode,
                 bool transient) {
    static std::atomic<long> trace{0};
    json e = {{"message", message},
              {"type", type},
              {"code", code},
              {"fbtrace_id", "Ftrace" + std::to_string(++trace)}};
    if (subcode != 0) {
        e["error_subcode"] = subcode;
    }
    if (transient) {
        e["is_transient"] = true;
    }
    return json{{"error", e}};
}

// The body Graph sends for a code (error-handling guide; apis.md §5).
json body_for_code(int code, int subcode, bool transient) {
    switch (code) {
    case 4:
        return graph_error("(#4) Application request limit reached", "OAuthException", 4, subcode,
                           transient);
    case 17:
        return graph_error("(#17) User request limit reached", "OAuthException", 17, subcode,
                           transient);
    case 32:
        return graph_error("(#32) Page request limit reached", "OAuthException", 32, subcode,
                           transient);
    case 613:
        return graph_error("(#613) Calls to this api have exceeded the rate limit.",
                           "OAuthException", 613, subcode, transient);
    case 190:
        return graph_error("Error validating access token: Session has expired on Thursday, "
                           "10-Dec-15 04:00:00 PST. The current time is Thursday, 10-Dec-15 "
                           "20:23:54 PST.",
                           "OAuthException", 190, subcode != 0 ? subcode : 463, false);
    case 200:
        return graph_error("(#200) Requires leads_retrieval permission", "OAuthException", 200,
                           subcode, false);
    default:
        return graph_error("(#" + std::to_string(code) + ") An error occurred", "OAuthException",
                           code, subcode, transient);
    }
}

std::string url_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const unsigned char c : text) {
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// "2025-02-03T01:24:53+0000", as Graph writes created_time.
std::string graph_time(std::int64_t seconds) {
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S+0000", &tm);
    return buffer;
}

std::optional<std::int64_t> parse_graph_time(const json& value) {
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    if (!value.is_string()) {
        return std::nullopt;
    }
    std::tm tm{};
    int offset = 0;
    char sign = '+';
    const std::string text = value.get<std::string>();
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c%4d", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &sign, &offset) != 8) {
        return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const auto base = static_cast<std::int64_t>(timegm(&tm));
    const std::int64_t off = (offset / 100) * 3600 + (offset % 100) * 60;
    return sign == '-' ? base + off : base - off;
}

// Newest first: (created, id) descending.
using Key = std::pair<std::int64_t, std::string>;
using Leads = std::map<Key, json, std::greater<>>;

std::string encode_cursor(const Key& key, long nonce) {
    return base64_encode(std::to_string(key.first) + ":" + key.second + ":" +
                         std::to_string(nonce));
}

std::optional<Key> decode_cursor(const std::string& cursor) {
    const auto text = base64_decode(cursor);
    if (!text) {
        return std::nullopt;
    }
    const auto first = text->find(':');
    const auto last = text->rfind(':');
    if (first == std::string::npos || last == first) {
        return std::nullopt;
    }
    try {
        return Key{std::stoll(text->substr(0, first)), text->substr(first + 1, last - first - 1)};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

} // namespace

GraphFault graph_fault_from_json(const json& j) {
    GraphFault fault;
    assign_fault_action(fault, read_fault_json(j, [&fault](const json& m) {
                            fault.method = m.value("method", std::string());
                            fault.path_prefix = m.value("path_prefix", std::string());
                            const auto kind = m.value("graph_kind", std::string("common"));
                            if (kind == "empty_page") {
                                fault.graph_kind = GraphFaultKind::empty_page;
                            } else if (kind == "repeat_next") {
                                fault.graph_kind = GraphFaultKind::repeat_next;
                            } else if (kind == "raw_body") {
                                fault.graph_kind = GraphFaultKind::raw_body;
                                fault.raw_body = m.value("raw_body", std::string());
                            } else if (kind != "common") {
                                throw std::invalid_argument("unknown graph_kind '" + kind + "'");
                            }
                            fault.graph_code = m.value("graph_code", 0);
                            fault.graph_subcode = m.value("graph_subcode", 0);
                            fault.is_transient = m.value("is_transient", true);
                            fault.regain_minutes = m.value("regain_minutes", 0);
                        }));
    return fault;
}

struct GraphFake::Impl {
    GraphFakeOptions options;
    HttpListener listener;
    FaultQueue<GraphFault> faults;
    RequestLog<GraphRequest> log{100000};
    mutable std::mutex mutex;
    std::map<std::string, Leads> forms;
    std::map<std::string, Key> keys; // "form/id" -> key
    bool expired = false;
    long nonce = 0;

    void answer(httplib::Response& res, int status, const json& body) {
        res.status = status;
        res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                        "application/json; charset=UTF-8");
    }

    // The request's own URL with `after` replaced.
    std::string url_with_after(const httplib::Request& req, const std::string& after) const {
        std::string url = "http://127.0.0.1:" + std::to_string(listener.port()) + req.path + "?";
        bool first = true;
        for (const auto& [name, value] : req.params) {
            if (name == "after" || name == "before") {
                continue;
            }
            url += (first ? "" : "&") + url_encode(name) + "=" + url_encode(value);
            first = false;
        }
        return url + (first ? "" : "&") + "after=" + url_encode(after);
    }

    // nullopt: the filtering parameter is malformed.
    std::optional<std::pair<std::int64_t, std::int64_t>> window(const httplib::Request& req) {
        std::int64_t above = LLONG_MIN; // created > above
        std::int64_t below = LLONG_MAX; // created < below
        if (!req.has_param("filtering")) {
            return std::make_pair(above, below);
        }
        const auto filters = json::parse(req.get_param_value("filtering"), nullptr, false);
        if (filters.is_discarded() || !filters.is_array()) {
            return std::nullopt;
        }
        for (const auto& f : filters) {
            if (!f.is_object() || f.value("field", "") != "time_created" || !f.contains("value")) {
                return std::nullopt;
            }
            std::int64_t v = 0;
            if (f["value"].is_number_integer()) {
                v = f["value"].get<std::int64_t>();
            } else if (f["value"].is_string()) {
                try {
                    v = std::stoll(f["value"].get<std::string>());
                } catch (const std::exception&) {
                    return std::nullopt;
                }
            } else {
                return std::nullopt;
            }
            const auto op = f.value("operator", "");
            if (op == "GREATER_THAN") {
                above = std::max(above, v);
            } else if (op == "LESS_THAN") {
                below = std::min(below, v);
            } else {
                return std::nullopt;
            }
        }
        return std::make_pair(above, below);
    }

    json shaped(const json& lead, const httplib::Request& req) const {
        std::set<std::string> wanted{"id", "created_time", "field_data"};
        if (req.has_param("fields")) {
            wanted = {"id"};
            std::stringstream list(req.get_param_value("fields"));
            for (std::string f; std::getline(list, f, ',');) {
                wanted.insert(f);
            }
        }
        json out = json::object();
        for (const auto& [k, v] : lead.items()) {
            if (wanted.count(k) != 0) {
                out[k] = v;
            }
        }
        return out;
    }

    void list(const std::string& form, const httplib::Request& req, httplib::Response& res,
              const std::optional<GraphFault>& fault) {
        const auto bounds = window(req);
        if (!bounds) {
            answer(res, 400,
                   graph_error("(#100) filtering must be an array of {field, operator, value}",
                               "OAuthException", 100, 0, false));
            return;
        }
        long long limit = k_default_limit;
        if (req.has_param("limit")) {
            try {
                limit = std::clamp(std::stoll(req.get_param_value("limit")), 1LL, k_max_limit);
            } catch (const std::exception&) {
                answer(res, 400,
                       graph_error("(#100) Param limit must be a number", "OAuthException", 100, 0,
                                   false));
                return;
            }
        }
        std::optional<Key> after;
        if (req.has_param("after")) {
            after = decode_cursor(req.get_param_value("after"));
            if (!after) {
                answer(res, 400,
                       graph_error("(#100) Invalid cursor", "OAuthException", 100, 0, false));
                return;
            }
        }
        const bool empty_page = fault && fault->graph_kind == GraphFaultKind::empty_page;
        json data = json::array();
        std::optional<Key> first_key;
        std::optional<Key> last_key;
        bool more = false;
        long cursor_nonce = 0;
        {
            std::lock_guard lock(mutex);
            cursor_nonce = ++nonce;
            const auto& leads = forms[form];
            auto it = after ? leads.upper_bound(*after) : leads.begin();
            for (; it != leads.end(); ++it) {
                const auto created = it->first.first;
                if (created <= bounds->first || created >= bounds->second) {
                    continue;
                }
                if (empty_page || static_cast<long long>(data.size()) >= limit) {
                    more = true;
                    break;
                }
                data.push_back(shaped(it->second, req));
                if (!first_key) {
                    first_key = it->first;
                }
                last_key = it->first;
            }
        }
        json body = {{"data", data}};
        if (empty_page) {
            // Nothing on this page, but a cursor that continues where the request started.
            const Key at = after.value_or(Key{LLONG_MAX, std::string()});
            const auto cursor = encode_cursor(at, cursor_nonce);
            body["paging"] = {{"cursors", {{"before", cursor}, {"after", cursor}}},
                              {"next", url_with_after(req, cursor)}};
        } else if (last_key) {
            const auto before_cursor = encode_cursor(*first_key, cursor_nonce);
            const auto after_cursor = encode_cursor(*last_key, cursor_nonce);
            body["paging"] = {{"cursors", {{"before", before_cursor}, {"after", after_cursor}}}};
            if (more) {
                body["paging"]["next"] = url_with_after(req, after_cursor);
            }
        }
        if (fault && fault->graph_kind == GraphFaultKind::repeat_next) {
            body["paging"]["next"] = "http://127.0.0.1:" + std::to_string(listener.port()) +
                                     req.path + "?" + query_of(req);
        }
        answer(res, 200, body);
        if (fault && fault->graph_kind == GraphFaultKind::common &&
            fault->kind == FaultKind::truncate) {
            res.body.resize(res.body.size() / 2);
        }
    }

    void serve(const httplib::Request& req, httplib::Response& res) {
        const auto fault = faults.take(req.method, req.path);
        const auto record = [&](int status) {
            log.add(req.path, {req.path, query_of(req), status});
        };
        if (fault && fault->graph_kind == GraphFaultKind::raw_body) {
            res.status = 200;
            res.set_content(fault->raw_body, "application/json; charset=UTF-8");
            record(200);
            return;
        }
        if (fault && fault->graph_kind == GraphFaultKind::common) {
            switch (fault->kind) {
            case FaultKind::reset:
                AbortableServer::abort_current_connection();
                record(0);
                return;
            case FaultKind::status: {
                if (fault->retry_after) {
                    res.set_header("Retry-After", *fault->retry_after);
                }
                if (fault->regain_minutes > 0) {
                    const json usage = {
                        {"1234567890", json::array({{{"type", "pages"},
                                                     {"call_count", 100},
                                                     {"total_cputime", 30},
                                                     {"total_time", 40},
                                                     {"estimated_time_to_regain_access",
                                                      fault->regain_minutes}}})}};
                    res.set_header("X-Business-Use-Case-Usage", usage.dump());
                }
                const json body = fault->graph_code != 0
                                      ? body_for_code(fault->graph_code, fault->graph_subcode,
                                                      fault->is_transient)
                                      : graph_error("Service temporarily unavailable",
                                                    "OAuthException", 2, 0, fault->status >= 500);
                answer(res, fault->status, body);
                record(fault->status);
                return;
            }
            case FaultKind::malformed:
                res.status = 200;
                res.set_content("<html><body>502 Bad Gateway</body></html>", "text/html");
                record(200);
                return;
            case FaultKind::slow:
                std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
                break;
            case FaultKind::truncate:
                break; // after the answer is built
            }
        }
        std::string token =
            req.has_param("access_token") ? req.get_param_value("access_token") : std::string();
        const auto bearer = req.get_header_value("Authorization");
        if (token.empty() && bearer.rfind("Bearer ", 0) == 0) {
            token = bearer.substr(7);
        }
        bool expired_now = false;
        std::string valid;
        {
            std::lock_guard lock(mutex);
            expired_now = expired;
            valid = options.access_token;
        }
        if (token != valid) {
            res.set_header("www-authenticate",
                           "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access "
                           "token - Cannot parse access token\"");
            answer(res, 400,
                   graph_error("Invalid OAuth access token - Cannot parse access token",
                               "OAuthException", 190, 0, false));
            record(400);
            return;
        }
        if (expired_now) {
            answer(res, 400, body_for_code(190, 463, false));
            record(400);
            return;
        }
        const std::string form = req.matches[1].str();
        bool known = false;
        {
            std::lock_guard lock(mutex);
            known = forms.count(form) != 0;
        }
        if (!known) {
            answer(res, 400,
                   graph_error("Unsupported get request. Object with ID '" + form +
                                   "' does not exist, cannot be loaded due to missing "
                                   "permissions, or does not support this operation.",
                               "GraphMethodException", 100, 33, false));
            record(400);
            return;
        }
        list(form, req, res, fault);
        record(res.status);
    }
};

GraphFake::GraphFake(GraphFakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = std::move(options);
}

GraphFake::~GraphFake() { stop(); }

int GraphFake::start(int port) {
    auto& impl = *m_impl;
    return impl.listener.start(
        port,
        [&impl](AbortableServer& server) {
            server.Get("/" + impl.options.version + R"(/([^/]+)/leads)",
                       [&impl](const httplib::Request& req, httplib::Response& res) {
                           impl.serve(req, res);
                       });
            ControlRoutes control(server, [](std::string_view m) {
                return graph_error(std::string(m), "FakeException", 100, 0, false).dump();
            });
            control.faults<GraphFault>(impl.faults, graph_fault_from_json);
        },
        impl.options.worker_threads);
}

void GraphFake::stop() { m_impl->listener.stop(); }

int GraphFake::port() const { return m_impl->listener.port(); }

std::string GraphFake::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port()) + "/" + m_impl->options.version;
}

void GraphFake::put_lead(const std::string& form, json lead) {
    const auto created = parse_graph_time(lead.value("created_time", json()));
    if (!created || !lead.contains("id") || !lead["id"].is_string()) {
        throw std::invalid_argument("a fake lead needs a string id and a created_time");
    }
    lead["created_time"] = graph_time(*created);
    if (!lead.contains("form_id")) {
        lead["form_id"] = form;
    }
    const std::string id = lead["id"].get<std::string>();
    std::lock_guard lock(m_impl->mutex);
    auto& leads = m_impl->forms[form];
    const auto old = m_impl->keys.find(form + "/" + id);
    if (old != m_impl->keys.end()) {
        leads.erase(old->second);
    }
    const Key key{*created, id};
    m_impl->keys[form + "/" + id] = key;
    leads[key] = std::move(lead);
}

void GraphFake::add_form(const std::string& form) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->forms[form];
}

void GraphFake::expire_token() {
    std::lock_guard lock(m_impl->mutex);
    m_impl->expired = true;
}

void GraphFake::set_access_token(const std::string& token) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.access_token = token;
    m_impl->expired = false;
}

void GraphFake::inject(GraphFault fault) { m_impl->faults.push(std::move(fault)); }

std::vector<GraphRequest> GraphFake::requests() const { return m_impl->log.records(); }

json GraphFake::lead(const std::string& id, std::int64_t created_epoch_seconds,
                     const std::vector<std::pair<std::string, std::string>>& fields) {
    json field_data = json::array();
    for (const auto& [name, value] : fields) {
        field_data.push_back({{"name", name}, {"values", json::array({value})}});
    }
    return {{"id", id},
            {"created_time", graph_time(created_epoch_seconds)},
            {"ad_id", "238512345678901" + id.substr(id.size() > 2 ? id.size() - 2 : 0)},
            {"campaign_id", "23851000000000001"},
            {"platform", "fb"},
            {"is_organic", false},
            {"field_data", std::move(field_data)}};
}

} // namespace crmsync::fakes
