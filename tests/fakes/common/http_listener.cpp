#include "tests/fakes/common/http_listener.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace crmsync::fakes {
namespace {

constexpr auto k_read_timeout = std::chrono::seconds(10);
constexpr auto k_write_timeout = std::chrono::seconds(30);
constexpr auto k_keep_alive_idle = std::chrono::seconds(5);
constexpr std::size_t k_keep_alive_max_requests = 10'000;
constexpr auto k_start_timeout = std::chrono::seconds(5);
// Debian's cpp-httplib is a compiled library that listens with a backlog of 5. A client opening
// 16 connections at once (webhook --w 16) overflowed it: the kernel dropped a handshake and that
// connection waited a second for the retransmission, a stall real servers (nginx: 511) do not
// have. listen() again on the bound socket raises it.
constexpr int k_listen_backlog = 511;

} // namespace

HttpListener::~HttpListener() { stop(); }

int HttpListener::start(int port, const Setup& setup, std::size_t worker_threads,
                        std::size_t max_payload) {
    std::lock_guard lock(m_mutex);
    if (m_server) {
        throw std::logic_error("HttpListener::start called while running");
    }
    auto server = std::make_unique<AbortableServer>();
    const auto threads = std::max<std::size_t>(worker_threads, 2);
    server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // httplib's default sets SO_REUSEPORT, which would let two fakes bind one fixed port.
    // SO_REUSEADDR alone still allows rebinding while old connections sit in TIME_WAIT.
    auto listening = std::make_shared<std::atomic<socket_t>>(INVALID_SOCKET);
    server->set_socket_options([listening](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        *listening = sock;
    });
    server->set_read_timeout(k_read_timeout);
    server->set_write_timeout(k_write_timeout);
    server->set_payload_max_length(max_payload);
    server->set_keep_alive(k_keep_alive_max_requests, k_keep_alive_idle);
    // Only for the Keep-Alive response header; AbortableServer runs the keep-alive loop.
    server->set_keep_alive_max_count(k_keep_alive_max_requests);
    server->set_keep_alive_timeout(
        std::chrono::duration_cast<std::chrono::seconds>(k_keep_alive_idle).count());
    setup(*server);

    const int bound = port == 0 ? server->bind_to_any_port("127.0.0.1")
                                : (server->bind_to_port("127.0.0.1", port) ? port : -1);
    if (bound <= 0) {
        throw std::runtime_error("cannot bind 127.0.0.1:" + std::to_string(port));
    }
    int accepting = 0;
    socklen_t length = sizeof(accepting);
    if (const socket_t sock = *listening;
        sock == INVALID_SOCKET ||
        ::getsockopt(sock, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0 || !accepting ||
        ::listen(sock, k_listen_backlog) != 0) {
        throw std::runtime_error("cannot raise the listen backlog of 127.0.0.1:" +
                                 std::to_string(bound));
    }
    auto listen_returned = std::make_shared<std::atomic<bool>>(false);
    auto* raw = server.get();
    m_thread = std::thread([raw, listen_returned] {
        raw->listen_after_bind();
        *listen_returned = true;
    });
    // Server::stop() is a no-op until the accept loop runs; wait so that stop() works.
    const auto deadline = std::chrono::steady_clock::now() + k_start_timeout;
    while (!raw->is_running() && !*listen_returned && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    m_server = std::move(server);
    m_port = bound;
    m_running = true;
    return bound;
}

void HttpListener::stop() {
    std::lock_guard lock(m_mutex);
    if (!m_server) {
        return;
    }
    m_running = false;
    m_server->stop();
    if (m_thread.joinable()) {
        m_thread.join();
    }
    m_server.reset();
}

bool HttpListener::running() const { return m_running; }

int HttpListener::port() const { return m_port; }

} // namespace crmsync::fakes
