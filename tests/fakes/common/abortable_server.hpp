#pragma once

// cpp-httplib offers no way for a handler to drop a connection without answering: a throwing
// handler becomes a 500, and the socket is never handed to handlers. This subclass runs the
// per-connection loop itself (Server::process_and_close_socket is a virtual hook, the same one
// SSLServer overrides), so it owns the Stream and can make a response vanish: after
// abort_current_connection() every write fails and the socket is closed with SO_LINGER 0, i.e.
// a TCP RST. The client sees "connection reset by peer" / "empty reply" and no bytes.

#include <httplib.h>

#include <chrono>
#include <cstddef>

namespace crmsync::fakes {

class AbortableServer final : public httplib::Server {
public:
    /// Called from inside a handler: the connection that carries the current request is
    /// reset instead of answered. No effect outside a handler.
    static void abort_current_connection();

    /// Requests served on one connection before it is closed, and how long an idle
    /// keep-alive connection is kept. Call before listening.
    void set_keep_alive(std::size_t max_requests, std::chrono::milliseconds idle_timeout);

private:
    bool process_and_close_socket(socket_t sock) override;

    std::size_t m_keep_alive_max_requests = 1000;
    std::chrono::milliseconds m_keep_alive_idle{5000};
};

} // namespace crmsync::fakes
