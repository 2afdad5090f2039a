#include "lib/http/multi_client.hpp"

#include "lib/core/error.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace crmsync::http {
namespace {

// libcurl's multi interface failing as a whole (out of memory, a broken wakeup pipe) is no
// answer of the server: no transfer of this client can go on, so it is thrown.
void throw_unless_ok(CURLMcode code, const char* call) {
    if (code != CURLM_OK) {
        throw Error(ErrorKind::internal,
                    fmt::format("libcurl's {} failed: {}", call, curl_multi_strerror(code)));
    }
}

} // namespace

struct MultiClient::Transfer {
    CurlEasy handle;
    CurlSlist headers;
    HttpRequest request;
    HttpResponse response;
    char error_buffer[CURL_ERROR_SIZE] = {};
    detail::BodyBuffer body;
    std::function<void(TransferResult&&)> done;
};

MultiClient::MultiClient(std::size_t max_in_flight, HttpClientOptions options)
    : m_max_in_flight(std::max<std::size_t>(1, max_in_flight)), m_options(std::move(options)) {
    ensure_curl_global_init();
    m_multi.reset(curl_multi_init());
    if (!m_multi) {
        throw Error(ErrorKind::internal, "libcurl could not create a multi handle");
    }
    curl_multi_setopt(m_multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(m_max_in_flight));
    curl_multi_setopt(m_multi.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(m_max_in_flight));
}

MultiClient::~MultiClient() {
    for (auto& [easy, transfer] : m_active) {
        curl_multi_remove_handle(m_multi.get(), easy);
    }
    m_active.clear();
    m_idle.clear();
}

void MultiClient::start(HttpRequest request, std::function<void(TransferResult&&)> done) {
    auto transfer = std::make_unique<Transfer>();
    if (!m_idle.empty()) {
        transfer->handle = std::move(m_idle.back());
        m_idle.pop_back();
    } else {
        transfer->handle.reset(curl_easy_init());
        if (!transfer->handle) {
            throw Error(ErrorKind::internal, "libcurl could not create a handle");
        }
    }
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    CURL* easy = transfer->handle.get();
    detail::prepare_transfer(easy, transfer->request, transfer->response, transfer->headers,
                             transfer->error_buffer, transfer->body, m_options);
    throw_unless_ok(curl_multi_add_handle(m_multi.get(), easy), "curl_multi_add_handle");
    m_active.emplace(easy, std::move(transfer));
}

void MultiClient::poll(std::chrono::milliseconds timeout) {
    int running = 0;
    throw_unless_ok(curl_multi_perform(m_multi.get(), &running), "curl_multi_perform");
    int messages = 0;
    bool finished_any = false;
    while (CURLMsg* msg = curl_multi_info_read(m_multi.get(), &messages)) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        CURL* easy = msg->easy_handle;
        const CURLcode code = msg->data.result;
        curl_multi_remove_handle(m_multi.get(), easy);
        auto node = m_active.extract(easy);
        if (node.empty()) {
            continue;
        }
        auto transfer = std::move(node.mapped());
        TransferResult result;
        result.answered = detail::finish_transfer(
            easy, code, transfer->error_buffer, transfer->body, transfer->response, result.failure);
        result.response = std::move(transfer->response);
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
        m_idle.push_back(std::move(transfer->handle));
        finished_any = true;
        transfer->done(std::move(result));
    }
    if (!finished_any && !m_active.empty()) {
        int ready = 0;
        throw_unless_ok(
            curl_multi_poll(m_multi.get(), nullptr, 0, static_cast<int>(timeout.count()), &ready),
            "curl_multi_poll");
    }
}

void MultiClient::wait(std::chrono::milliseconds timeout) {
    int ready = 0;
    throw_unless_ok(
        curl_multi_poll(m_multi.get(), nullptr, 0, static_cast<int>(timeout.count()), &ready),
        "curl_multi_poll");
}

void MultiClient::wakeup() { curl_multi_wakeup(m_multi.get()); }

RateLimiter::RateLimiter(double rate, double burst)
    : m_rate(rate), m_burst(std::max(burst, 1.0)), m_tokens(m_burst),
      m_last(std::chrono::steady_clock::now()) {}

void RateLimiter::refill(std::chrono::steady_clock::time_point now) {
    const double seconds = std::chrono::duration<double>(now - m_last).count();
    if (seconds > 0) {
        m_tokens = std::min(m_burst, m_tokens + seconds * m_rate);
        m_last = now;
    }
}

bool RateLimiter::try_acquire(std::chrono::steady_clock::time_point now) {
    if (m_rate <= 0) {
        return true;
    }
    refill(now);
    if (m_tokens >= 1.0) {
        m_tokens -= 1.0;
        return true;
    }
    return false;
}

std::chrono::milliseconds RateLimiter::wait_time(std::chrono::steady_clock::time_point now) {
    if (m_rate <= 0) {
        return std::chrono::milliseconds(0);
    }
    refill(now);
    if (m_tokens >= 1.0) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(static_cast<long long>((1.0 - m_tokens) / m_rate * 1000.0) +
                                     1);
}

} // namespace crmsync::http
