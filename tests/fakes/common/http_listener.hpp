#pragma once

// One AbortableServer on 127.0.0.1, served by a background thread: the start/stop plumbing
// that every HTTP fake in tests/fakes/ needs. Unlike a bare httplib::Server it can be started
// again after stop(), on the same port, which is how the webhook receiver goes "down" and
// comes back.

#include "tests/fakes/common/abortable_server.hpp"

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace crmsync::fakes {

class HttpListener {
public:
    /// Registers routes and handlers on a fresh server; called by start() before binding.
    using Setup = std::function<void(AbortableServer&)>;

    HttpListener() = default;
    ~HttpListener();
    HttpListener(const HttpListener&) = delete;
    HttpListener& operator=(const HttpListener&) = delete;

    /// Request bodies larger than this are refused with 413 unless start() says otherwise.
    static constexpr std::size_t k_default_max_payload = std::size_t{64} * 1024 * 1024;

    /// Binds 127.0.0.1:`port` (0 = any free port) with a new server prepared by `setup`, serves
    /// it on `worker_threads` threads and returns the bound port once the accept loop runs.
    /// Throws std::logic_error if already running, std::runtime_error if binding fails.
    /// Must not be called from one of this listener's own handlers.
    int start(int port, const Setup& setup, std::size_t worker_threads,
              std::size_t max_payload = k_default_max_payload);
    /// Closes the listening socket, lets in-flight requests finish and joins every thread.
    /// Idempotent. Must not be called from one of this listener's own handlers (it would wait
    /// for itself). running() turns false before in-flight requests finish.
    void stop();
    [[nodiscard]] bool running() const;
    /// The port of the last successful start(), 0 before.
    [[nodiscard]] int port() const;

private:
    std::mutex m_mutex; // Serialises start() and stop().
    std::unique_ptr<AbortableServer> m_server;
    std::thread m_thread;
    // Atomics, so that handlers may read them while stop() holds the mutex.
    std::atomic<bool> m_running{false};
    std::atomic<int> m_port{0};
};

} // namespace crmsync::fakes
