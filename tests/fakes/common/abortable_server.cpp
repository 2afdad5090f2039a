#include "tests/fakes/common/abortable_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_read_buffer_size = std::size_t{16} * 1024;
// Keep-alive waits are sliced so that stop() is noticed quickly.
constexpr int k_poll_slice_ms = 100;

int to_ms(time_t sec, time_t usec) { return static_cast<int>(sec * 1000 + usec / 1000); }

bool wait_for(socket_t sock, short events, int timeout_ms) {
    pollfd pfd{sock, events, 0};
    for (;;) {
        const int rc = ::poll(&pfd, 1, timeout_ms);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        // POLLHUP/POLLERR count as ready: the next read or write reports the condition.
        return rc > 0;
    }
}

void address_of(const sockaddr_storage& addr, std::string& ip, int& port) {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    if (addr.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &in->sin_addr, buf.data(), buf.size());
        port = ntohs(in->sin_port);
    } else if (addr.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, buf.data(), buf.size());
        port = ntohs(in6->sin6_port);
    }
    ip = buf.data();
}

// The same contract as httplib's internal SocketStream, plus abort().
class ConnectionStream final : public httplib::Stream {
public:
    ConnectionStream(socket_t sock, int read_timeout_ms, int write_timeout_ms)
        : m_sock(sock), m_read_timeout_ms(read_timeout_ms), m_write_timeout_ms(write_timeout_ms) {}

    bool is_readable() const override {
        return has_buffered_input() || wait_for(m_sock, POLLIN, m_read_timeout_ms);
    }

    bool is_writable() const override {
        return !m_aborted && wait_for(m_sock, POLLOUT, m_write_timeout_ms);
    }

    ssize_t read(char* ptr, size_t size) override {
        if (!has_buffered_input()) {
            if (!wait_for(m_sock, POLLIN, m_read_timeout_ms)) {
                return -1;
            }
            if (size >= m_buffer.size()) {
                return receive(ptr, size);
            }
            const auto n = receive(m_buffer.data(), m_buffer.size());
            if (n <= 0) {
                return n;
            }
            m_begin = 0;
            m_end = static_cast<std::size_t>(n);
        }
        const auto n = std::min(size, m_end - m_begin);
        std::memcpy(ptr, m_buffer.data() + m_begin, n);
        m_begin += n;
        return static_cast<ssize_t>(n);
    }

    ssize_t write(const char* ptr, size_t size) override {
        if (m_aborted || !wait_for(m_sock, POLLOUT, m_write_timeout_ms)) {
            return -1;
        }
        for (;;) {
            // MSG_NOSIGNAL: a client that went away must not SIGPIPE the test process.
            const auto n = ::send(m_sock, ptr, size, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return n;
        }
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        sockaddr_storage addr{};
        socklen_t len = sizeof(addr);
        if (::getpeername(m_sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
            address_of(addr, ip, port);
        }
    }

    void get_local_ip_and_port(std::string& ip, int& port) const override {
        sockaddr_storage addr{};
        socklen_t len = sizeof(addr);
        if (::getsockname(m_sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
            address_of(addr, ip, port);
        }
    }

    socket_t socket() const override { return m_sock; }

    void abort() { m_aborted = true; }
    bool aborted() const { return m_aborted; }
    bool has_buffered_input() const { return m_begin < m_end; }

private:
    ssize_t receive(char* ptr, std::size_t size) const {
        for (;;) {
            const auto n = ::recv(m_sock, ptr, size, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return n;
        }
    }

    socket_t m_sock;
    int m_read_timeout_ms;
    int m_write_timeout_ms;
    bool m_aborted = false;
    std::array<char, k_read_buffer_size> m_buffer{};
    std::size_t m_begin = 0;
    std::size_t m_end = 0;
};

// A worker thread serves one connection at a time, so the handler's connection is this one.
thread_local ConnectionStream* t_current_stream = nullptr;

} // namespace

void AbortableServer::abort_current_connection() {
    if (t_current_stream != nullptr) {
        t_current_stream->abort();
    }
}

void AbortableServer::set_keep_alive(std::size_t max_requests,
                                     std::chrono::milliseconds idle_timeout) {
    m_keep_alive_max_requests = std::max<std::size_t>(max_requests, 1);
    m_keep_alive_idle = idle_timeout;
}

bool AbortableServer::process_and_close_socket(socket_t sock) {
    // httplib writes headers and body separately; with Nagle on, the body waits for the
    // client's delayed ACK (40 ms per response on Linux).
    int no_delay = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &no_delay, sizeof(no_delay));
    ConnectionStream stream(sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                            to_ms(write_timeout_sec_, write_timeout_usec_));
    t_current_stream = &stream;
    bool ok = true;
    for (std::size_t served = 0; served < m_keep_alive_max_requests; ++served) {
        if (!stream.has_buffered_input()) {
            bool readable = false;
            for (auto waited = std::chrono::milliseconds(0);
                 waited < m_keep_alive_idle && svr_sock_ != INVALID_SOCKET;
                 waited += std::chrono::milliseconds(k_poll_slice_ms)) {
                if (wait_for(sock, POLLIN, k_poll_slice_ms)) {
                    readable = true;
                    break;
                }
            }
            if (!readable) {
                break;
            }
        }
        const bool last = served + 1 == m_keep_alive_max_requests || svr_sock_ == INVALID_SOCKET;
        bool connection_closed = false;
        ok = process_request(stream, last, connection_closed, nullptr);
        if (!ok || connection_closed || stream.aborted()) {
            break;
        }
    }
    t_current_stream = nullptr;
    if (stream.aborted()) {
        // Linger 0 turns close() into an RST: the client gets no response at all.
        linger hard_reset{1, 0};
        ::setsockopt(sock, SOL_SOCKET, SO_LINGER, &hard_reset, sizeof(hard_reset));
    } else {
        ::shutdown(sock, SHUT_RDWR);
    }
    ::close(sock);
    return ok;
}

} // namespace crmsync::fakes
