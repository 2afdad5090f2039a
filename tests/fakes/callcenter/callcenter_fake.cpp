#include "tests/fakes/callcenter/callcenter_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/base64.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <utility>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

const std::map<std::string, std::string>& routes() {
    static const std::map<std::string, std::string> r{
        {"contacts", "contacts"},     {"contact-groups", "contact_groups"},
        {"activities", "activities"}, {"agents", "agents"},
        {"roles", "roles"},           {"sip-accounts", "sip_accounts"}};
    return r;
}

std::string error_body(const std::string& message) {
    return json{{"success", false}, {"message", message}}.dump();
}

long long number_param(const httplib::Request& req, const char* name, long long fallback) {
    if (!req.has_param(name)) {
        return fallback;
    }
    try {
        return std::stoll(req.get_param_value(name));
    } catch (const std::exception&) {
        return fallback;
    }
}

long long updated_of(const json& doc) {
    const auto it = doc.find("updatedAt");
    return it != doc.end() && it->is_number_integer() ? it->get<long long>() : 0;
}

std::string id_of(const json& doc) {
    const auto it = doc.find("_id");
    return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

struct CallcenterFake::Impl {
    CallcenterFakeOptions options;
    HttpListener listener;
    FaultQueue<Fault> faults;
    RequestLog<CallcenterRequest> log{100000};
    mutable std::mutex mutex;
    using Key = std::pair<long long, std::string>; // (updatedAt, _id): the API's order
    struct Collection {
        std::map<Key, json> ordered;
        std::map<std::string, Key> by_id;
    };
    std::map<std::string, Collection> data; // "cc/stream" -> docs
    std::function<void(std::size_t)> before;
    std::size_t served = 0;

    bool authorized(const httplib::Request& req) const {
        if (options.auth == "apikey") {
            return req.get_header_value("x-apikey") == options.secret;
        }
        if (options.auth == "bearer") {
            return req.get_header_value("Authorization") == "Bearer " + options.secret;
        }
        return req.get_header_value("Authorization") ==
               "Basic " + base64_encode(options.user + ":" + options.secret);
    }

    std::string list(const std::string& cc, const std::string& stream,
                     const httplib::Request& req) {
        const long long from = number_param(req, "updatedFrom", 0);
        const long long to = number_param(req, "updatedTo", LLONG_MAX);
        const std::string after = req.has_param("afterId") ? req.get_param_value("afterId") : "";
        const bool with_deleted =
            !req.has_param("includeDeleted") || req.get_param_value("includeDeleted") != "false";
        const long long limit = std::clamp(number_param(req, "limit", 100), 1LL, 1000LL);
        const long long page = std::max(number_param(req, "page", 1), 1LL);
        const auto skip = static_cast<std::size_t>((page - 1) * limit);
        json result = json::array();
        std::size_t matched = 0;
        {
            std::lock_guard lock(mutex);
            const auto& docs = data[cc + "/" + stream].ordered;
            for (auto it = docs.lower_bound({from, std::string()}); it != docs.end(); ++it) {
                const auto& [updated, id] = it->first;
                if (updated >= to) {
                    break;
                }
                if ((!after.empty() && updated == from && id_of(it->second) <= after) ||
                    (!with_deleted && it->second.value("deleted", json(false)) == json(true))) {
                    continue;
                }
                if (matched >= skip && result.size() < static_cast<std::size_t>(limit)) {
                    result.push_back(it->second);
                }
                ++matched;
            }
        }
        json paging = {{"page", page}, {"limit", limit}, {"total", matched}};
        if (options.has_more) {
            paging["hasMore"] = skip + static_cast<std::size_t>(limit) < matched;
        }
        return json{{"success", true}, {"result", std::move(result)}, {"paging", paging}}.dump(
            -1, ' ', false, json::error_handler_t::replace);
    }

    void serve(const httplib::Request& req, httplib::Response& res) {
        std::size_t n = 0;
        std::function<void(std::size_t)> hook;
        {
            std::lock_guard lock(mutex);
            n = served++;
            hook = before;
        }
        if (hook) {
            hook(n);
        }
        const auto fault = faults.take(req.method, req.path);
        int status = 200;
        std::string body;
        if (fault && fault->kind == FaultKind::reset) {
            AbortableServer::abort_current_connection();
            log.add(req.path, {req.path, query_of(req), 0});
            return;
        }
        if (fault && fault->kind == FaultKind::status) {
            status = fault->status;
            body = error_body("fault injected by the fake");
            if (fault->retry_after) {
                res.set_header("Retry-After", *fault->retry_after);
            }
        } else if (fault && fault->kind == FaultKind::malformed) {
            body = "<html><body>502 Bad Gateway</body></html>";
        } else if (!authorized(req)) {
            status = 401;
            body = error_body("unauthorized");
        } else {
            const auto cc = req.matches[1].str();
            const auto route = routes().find(req.matches[2].str());
            if (route == routes().end()) {
                status = 404;
                body = error_body("not found");
            } else {
                body = list(cc, route->second, req);
            }
            if (fault && fault->kind == FaultKind::truncate) {
                body.resize(body.size() / 2);
            }
        }
        res.status = status;
        res.set_content(body, "application/json");
        log.add(req.path, {req.path, query_of(req), status});
    }

    void put(const std::string& cc, const std::string& stream, json doc) {
        std::lock_guard lock(mutex);
        auto& c = data[cc + "/" + stream];
        auto id = id_of(doc);
        if (id.empty()) {
            // Kept apart from every real id, in the order added; its id still reads as "".
            id = std::string(1, '\0') + std::to_string(c.ordered.size());
        } else if (const auto old = c.by_id.find(id); old != c.by_id.end()) {
            c.ordered.erase(old->second);
        }
        Key key{updated_of(doc), id};
        c.by_id[id] = key;
        c.ordered[key] = std::move(doc);
    }
};

CallcenterFake::CallcenterFake(CallcenterFakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = std::move(options);
}

CallcenterFake::~CallcenterFake() { stop(); }

int CallcenterFake::start(int port) {
    auto& impl = *m_impl;
    return impl.listener.start(
        port,
        [&impl](AbortableServer& server) {
            server.Get(R"(/api/v1/callcenters/([^/]+)/([a-z-]+))",
                       [&impl](const httplib::Request& req, httplib::Response& res) {
                           impl.serve(req, res);
                       });
            ControlRoutes control(server,
                                  [](std::string_view m) { return error_body(std::string(m)); });
            control.faults<Fault>(impl.faults, fault_from_json);
            control.post("/_fake/docs", [&impl](const httplib::Request& req) {
                const auto body = json::parse(req.body);
                impl.put(body.at("callcenter").get<std::string>(),
                         body.at("stream").get<std::string>(), body.at("doc"));
                return json::object();
            });
        },
        impl.options.worker_threads);
}

void CallcenterFake::stop() { m_impl->listener.stop(); }

int CallcenterFake::port() const { return m_impl->listener.port(); }

std::string CallcenterFake::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port()) + "/api/v1";
}

void CallcenterFake::put(const std::string& callcenter, const std::string& stream, json doc) {
    m_impl->put(callcenter, stream, std::move(doc));
}

std::vector<json> CallcenterFake::docs(const std::string& callcenter,
                                       const std::string& stream) const {
    std::lock_guard lock(m_impl->mutex);
    std::vector<json> out;
    const auto it = m_impl->data.find(callcenter + "/" + stream);
    if (it != m_impl->data.end()) {
        for (const auto& [key, doc] : it->second.ordered) {
            out.push_back(doc);
        }
    }
    return out;
}

void CallcenterFake::before_request(std::function<void(std::size_t)> hook) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->before = std::move(hook);
}

void CallcenterFake::inject(Fault fault) { m_impl->faults.push(std::move(fault)); }

std::vector<CallcenterRequest> CallcenterFake::requests() const { return m_impl->log.records(); }

} // namespace crmsync::fakes
