#pragma once

#include "lib/http/curl_handles.hpp"

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace crmsync::http {

inline constexpr std::chrono::milliseconds k_connect_timeout{10'000};
inline constexpr std::chrono::milliseconds k_default_request_timeout{60'000};

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::chrono::milliseconds timeout = k_default_request_timeout;
};

struct HttpResponse {
    long status = 0;
    std::string body;
    std::map<std::string, std::string> headers; // names lower-cased; last value wins
    std::chrono::milliseconds elapsed{0};

    const std::string* header(const std::string& lower_name) const;
};

// Outcome of one attempt that never produced an HTTP status (refused, reset, timeout, TLS...).
struct TransportFailure {
    int curl_code = 0;
    std::string message; // curl's error buffer, never containing request headers
};

struct HttpClientOptions {
    bool verify_tls = true;
    std::string user_agent = "crmsync/" CRMSYNC_VERSION;
};

namespace detail {
// Sets every option of one transfer on `handle` (reset first): URL, method, body, headers,
// timeouts, TLS, and the callbacks that fill `response`. `headers` and `error_buffer` must
// outlive the transfer. Shared by HttpClient and MultiClient.
void prepare_transfer(CURL* handle, const HttpRequest& request, HttpResponse& response,
                      CurlSlist& headers, char* error_buffer, const HttpClientOptions& options);
// Fills status and elapsed time after a transfer; returns false with `failure` on an error.
bool finish_transfer(CURL* handle, CURLcode code, const char* error_buffer, HttpResponse& response,
                     TransportFailure& failure);
} // namespace detail

// One libcurl easy handle, reused across requests so connections stay alive. Not thread safe:
// give each worker thread its own client.
class HttpClient {
public:
    explicit HttpClient(HttpClientOptions options = {});

    // Performs exactly one attempt. Returns true and fills `response` when an HTTP status came
    // back (any status); returns false and fills `failure` on a transport failure.
    bool perform(const HttpRequest& request, HttpResponse& response, TransportFailure& failure);

private:
    HttpClientOptions m_options;
    CurlEasy m_handle;
};

} // namespace crmsync::http
