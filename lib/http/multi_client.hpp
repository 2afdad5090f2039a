#pragma once

#include "lib/http/http_client.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace crmsync::http {

struct TransferResult {
    bool answered = false; // an HTTP status came back (any status)
    HttpResponse response;
    TransportFailure failure;
};

// Up to `max_in_flight` concurrent requests on one libcurl multi handle, connections kept
// alive between them. Single-threaded: start() and poll() from one thread; callbacks run
// inside poll(). One attempt per start(); retries are the caller's policy. start(), poll()
// and wait() throw Error(internal) when libcurl's multi interface itself fails (out of memory):
// the transfers in flight then never finish.
class MultiClient {
public:
    MultiClient(std::size_t max_in_flight, HttpClientOptions options = {});
    ~MultiClient();
    MultiClient(const MultiClient&) = delete;
    MultiClient& operator=(const MultiClient&) = delete;

    bool has_capacity() const { return m_active.size() < m_max_in_flight; }
    std::size_t in_flight() const { return m_active.size(); }

    void start(HttpRequest request, std::function<void(TransferResult&&)> done);
    // Moves transfers along for at most `timeout` (less when one finishes or wakeup() is
    // called) and runs the callbacks of the finished ones. Returns at once with nothing in
    // flight.
    void poll(std::chrono::milliseconds timeout);
    // Waits for at most `timeout` for a wakeup() (or its own transfers' sockets) and moves no
    // transfer along: a thread with nothing in flight here waits for work handed to it.
    void wait(std::chrono::milliseconds timeout);
    // Ends a poll() or wait() under way in another thread, or the next one to begin. The one
    // member that may be called from any thread.
    void wakeup();

private:
    struct Transfer;
    std::size_t m_max_in_flight;
    HttpClientOptions m_options;
    CurlMulti m_multi;
    std::map<CURL*, std::unique_ptr<Transfer>> m_active;
    std::vector<CurlEasy> m_idle;
};

// A token bucket: `rate` tokens per second, at most `burst` stored. rate 0 means unlimited.
class RateLimiter {
public:
    RateLimiter(double rate, double burst);
    // Takes a token if one is available at `now`.
    bool try_acquire(std::chrono::steady_clock::time_point now);
    // How long until a token is available (zero if one is).
    std::chrono::milliseconds wait_time(std::chrono::steady_clock::time_point now);

private:
    void refill(std::chrono::steady_clock::time_point now);
    double m_rate;
    double m_burst;
    double m_tokens;
    std::chrono::steady_clock::time_point m_last;
};

} // namespace crmsync::http
