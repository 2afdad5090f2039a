#include "tests/fakes/common/control_routes.hpp"

#include <exception>

namespace crmsync::fakes {

ControlRoutes::ControlRoutes(httplib::Server& server, Writer writer, ErrorBody error_body)
    : m_server(server), m_writer(std::move(writer)), m_error_body(std::move(error_body)) {}

ControlRoutes::ControlRoutes(httplib::Server& server, ErrorBody error_body)
    : ControlRoutes(
          server,
          [](httplib::Response& res, int status, const std::string& body) {
              // A success leaves the status to httplib's default, as these fakes always did.
              if (status != 200) {
                  res.status = status;
              }
              res.set_content(body, "application/json");
          },
          std::move(error_body)) {}

httplib::Server::Handler ControlRoutes::handler(Body body) const {
    return [body = std::move(body), writer = m_writer,
            error_body = m_error_body](const httplib::Request& req, httplib::Response& res) {
        std::string text;
        try {
            text = body(req).dump();
        } catch (const std::exception& e) {
            writer(res, 400, error_body(e.what()));
            return;
        }
        writer(res, 200, text);
    };
}

void ControlRoutes::get(const std::string& path, Body body) {
    m_server.Get(path, handler(std::move(body)));
}

void ControlRoutes::post(const std::string& path, Body body) {
    m_server.Post(path, handler(std::move(body)));
}

void ControlRoutes::del(const std::string& path, Body body) {
    m_server.Delete(path, handler(std::move(body)));
}

void ControlRoutes::clock(FakeClock& clock,
                          std::function<std::string(std::int64_t now_ms)> format) {
    post("/_fake/clock", [&clock, format = std::move(format)](const httplib::Request& req) {
        clock.set_offset_ms(std::stoll(req.get_param_value("offset_ms")));
        return nlohmann::json{{"now", format(clock.now_ms())}};
    });
}

void ControlRoutes::shutdown(ShutdownHook& hook) {
    post("/_fake/shutdown", [&hook](const httplib::Request&) {
        hook.fire();
        return nlohmann::json{{"shutdown", true}};
    });
}

} // namespace crmsync::fakes
