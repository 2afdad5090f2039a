#include "tests/fakes/callback24/callback24_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

std::string message_body(const std::string& message) { return json{{"message", message}}.dump(); }

std::string key_of(const json& call) {
    const auto it = call.find("id");
    if (it == call.end()) {
        return {};
    }
    return it->is_string() ? it->get<std::string>() : it->dump();
}

// addition_time as ms, or nullopt ("2026-12-03 10:00:00" is read like ISO with a space).
std::optional<std::int64_t> added_ms(const json& call) {
    const auto it = call.find("addition_time");
    if (it == call.end() || !it->is_string()) {
        return std::nullopt;
    }
    auto text = it->get<std::string>();
    if (text.size() > 10 && text[10] == ' ') {
        text[10] = 'T';
    }
    return parse_api_time(text);
}

} // namespace

std::string callback24_time(std::int64_t epoch_ms) {
    auto text = format_iso_ms(epoch_ms); // 2026-12-03T10:00:00.000Z
    text[10] = ' ';
    return text.substr(0, 19);
}

struct Callback24Fake::Impl {
    Callback24FakeOptions options;
    HttpListener listener;
    FaultQueue<Fault> faults;
    RequestLog<Callback24Request> log{200000};
    mutable std::mutex mutex;
    std::map<std::string, std::pair<json, std::string>> calls; // id -> (call, website)
    std::vector<std::string> order;                            // ids in the order first put

    std::pair<int, std::string> history(const httplib::Request& req) {
        const auto from = req.has_param("date_from")
                              ? parse_api_time(req.get_param_value("date_from"))
                              : std::nullopt;
        const auto to = req.has_param("date_to") ? parse_api_time(req.get_param_value("date_to"))
                                                 : std::nullopt;
        if (!from || !to) {
            return {422, message_body("The date from and date to fields are required dates.")};
        }
        json result = json::array();
        std::lock_guard lock(mutex);
        for (const auto& id : order) {
            const auto& call = calls.at(id).first;
            const auto added = added_ms(call);
            // A call whose time cannot be read is listed in every window (hostile data).
            if (!added || (*added >= *from && *added < *to)) {
                result.push_back(call);
            }
        }
        return {200, json{{"result", result}}.dump(-1, ' ', false, json::error_handler_t::replace)};
    }

    std::pair<int, std::string> call_info(const httplib::Request& req) {
        const auto id = req.has_param("call_id") ? req.get_param_value("call_id") : "";
        std::lock_guard lock(mutex);
        const auto it = calls.find(id);
        if (it == calls.end() || it->second.second.empty()) {
            return {404, message_body("Call not found")};
        }
        const auto& call = it->second.first;
        json data = {{"id", call.value("id", json())},
                     {"website", it->second.second},
                     {"phone_number", call.value("phone_number", json())}};
        if (const auto added = added_ms(call)) {
            data["call_at"] = format_iso_ms(*added);
        }
        return {200, json{{"data", data}}.dump()};
    }

    void serve(const httplib::Request& req, httplib::Response& res,
               std::pair<int, std::string> (Impl::*handler)(const httplib::Request&)) {
        const auto fault = faults.take(req.method, req.path);
        const auto record = [&](int status) {
            log.add(req.path, {req.path, query_of(req), status});
        };
        if (fault && fault->kind == FaultKind::reset) {
            record(0);
            AbortableServer::abort_current_connection();
            return;
        }
        if (fault && fault->kind == FaultKind::slow) {
            std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
        }
        int status = 200;
        std::string body;
        if (fault && fault->kind == FaultKind::status) {
            status = fault->status;
            body = message_body("fault injected by the fake");
            if (fault->retry_after) {
                res.set_header("Retry-After", *fault->retry_after);
            }
        } else if (fault && fault->kind == FaultKind::malformed) {
            body = "<html><body>502 Bad Gateway</body></html>";
        } else if (req.get_header_value("X-API-TOKEN") != options.token) {
            status = 401;
            body = message_body("Unauthenticated.");
        } else {
            std::tie(status, body) = (this->*handler)(req);
            if (fault && fault->kind == FaultKind::truncate) {
                body.resize(body.size() / 2);
            }
        }
        res.status = status;
        res.set_content(body, "application/json");
        record(status);
    }
};

Callback24Fake::Callback24Fake(Callback24FakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = std::move(options);
}

Callback24Fake::~Callback24Fake() { stop(); }

int Callback24Fake::start(int port) {
    auto& impl = *m_impl;
    return impl.listener.start(
        port,
        [&impl](AbortableServer& server) {
            server.Get("/api/v1/phoneCalls/history",
                       [&impl](const httplib::Request& req, httplib::Response& res) {
                           impl.serve(req, res, &Impl::history);
                       });
            server.Get("/api/v1/phoneCalls/getCallInfo",
                       [&impl](const httplib::Request& req, httplib::Response& res) {
                           impl.serve(req, res, &Impl::call_info);
                       });
            ControlRoutes control(server,
                                  [](std::string_view m) { return message_body(std::string(m)); });
            control.faults<Fault>(impl.faults, fault_from_json);
        },
        impl.options.worker_threads);
}

void Callback24Fake::stop() { m_impl->listener.stop(); }

int Callback24Fake::port() const { return m_impl->listener.port(); }

std::string Callback24Fake::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port());
}

void Callback24Fake::put(json call, const std::string& website) {
    std::lock_guard lock(m_impl->mutex);
    auto id = key_of(call);
    if (id.empty()) {
        id = std::string(1, '\0') + std::to_string(m_impl->order.size());
    }
    if (m_impl->calls.count(id) == 0) {
        m_impl->order.push_back(id);
    }
    m_impl->calls[id] = {std::move(call), website};
}

void Callback24Fake::inject(Fault fault) { m_impl->faults.push(std::move(fault)); }

std::vector<Callback24Request> Callback24Fake::requests() const { return m_impl->log.records(); }

std::size_t Callback24Fake::count(const std::string& path_prefix) const {
    return m_impl->log.count_with_prefix(path_prefix);
}

} // namespace crmsync::fakes
