#pragma once

// The unauthenticated /_fake/... control endpoints of a fake. Each route's body returns JSON;
// an exception it throws (bad input) becomes a 400 with the fake's own error body. The routes
// every fake has (faults, clock, shutdown) are written once here.

#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fault.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

class ControlRoutes {
public:
    using Body = std::function<nlohmann::json(const httplib::Request&)>;
    /// Writes one control answer: `status` is 200 or 400, `body` JSON text.
    using Writer = std::function<void(httplib::Response&, int status, const std::string& body)>;
    /// The JSON text of a 400 for `message`.
    using ErrorBody = std::function<std::string(std::string_view message)>;

    /// Routes are added to `server`, which must outlive this object's routes.
    ControlRoutes(httplib::Server& server, Writer writer, ErrorBody error_body);
    /// The plain style: 200 left implicit, Content-Type application/json, nothing else.
    ControlRoutes(httplib::Server& server, ErrorBody error_body);

    void get(const std::string& path, Body body);
    void post(const std::string& path, Body body);
    void del(const std::string& path, Body body);

    /// POST /_fake/faults (one fault object or an array; answers {"injected": n}) and
    /// DELETE /_fake/faults (answers {}).
    template <typename F>
    void faults(FaultQueue<F>& queue, std::function<F(const nlohmann::json&)> parse) {
        post("/_fake/faults", [&queue, parse](const httplib::Request& req) {
            auto json = nlohmann::json::parse(req.body);
            if (!json.is_array()) {
                json = nlohmann::json::array({json});
            }
            std::vector<F> parsed;
            for (const auto& item : json) {
                parsed.push_back(parse(item));
            }
            queue.push_all(parsed);
            return nlohmann::json{{"injected", parsed.size()}};
        });
        del("/_fake/faults", [&queue](const httplib::Request&) {
            queue.clear();
            return nlohmann::json::object();
        });
    }
    /// POST /_fake/clock?offset_ms=N; answers {"now": format(now in ms)}.
    void clock(FakeClock& clock, std::function<std::string(std::int64_t now_ms)> format);
    /// POST /_fake/shutdown: fires the hook, answers {"shutdown": true}.
    void shutdown(ShutdownHook& hook);

private:
    [[nodiscard]] httplib::Server::Handler handler(Body body) const;

    httplib::Server& m_server;
    Writer m_writer;
    ErrorBody m_error_body;
};

} // namespace crmsync::fakes
