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
// The largest response body an API answer may have once decoded (gzip is accepted, so a small
// transfer can decode to gigabytes).
inline constexpr std::size_t k_default_max_response_bytes = std::size_t{256} << 20;

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
    // Names lower-cased; the last line of a name wins, but content-encoding lines are joined
    // with ", " (one list of codings).
    std::map<std::string, std::string> headers;
    std::chrono::milliseconds elapsed{0};

    const std::string* header(const std::string& lower_name) const;
};

// Outcome of one attempt that never produced an HTTP status (refused, reset, timeout, TLS...).
// A body over HttpClientOptions::max_response_bytes is such a failure too (curl_code
// CURLE_FILESIZE_EXCEEDED, not retryable): repeating the request would fetch it again.
struct TransportFailure {
    int curl_code = 0;
    std::string message; // curl's error buffer, never containing request headers
    long status = 0;     // the HTTP status if one arrived before the failure (a body too large)
};

struct HttpClientOptions {
    bool verify_tls = true;
    std::string user_agent = "crmsync/" CRMSYNC_VERSION;
    // Bodies longer than this (declared or decoded) end the transfer with a TransportFailure.
    std::size_t max_response_bytes = k_default_max_response_bytes;
};

namespace detail {
// Where a transfer's body goes: `body`, up to `limit` decoded bytes; more sets `too_large`.
struct BodyBuffer {
    std::string* body = nullptr;
    std::size_t limit = k_default_max_response_bytes;
    bool too_large = false;
    std::string source; // the URL without secrets, for the error message
};
// Sets every option of one transfer on `handle` (reset first): URL, method, body, headers,
// timeouts, TLS, size cap, and the callbacks that fill `response`. `headers`, `error_buffer`
// and `body` must outlive the transfer. Shared by HttpClient and MultiClient.
void prepare_transfer(CURL* handle, const HttpRequest& request, HttpResponse& response,
                      CurlSlist& headers, char* error_buffer, BodyBuffer& body,
                      const HttpClientOptions& options);
// Fills status and elapsed time after a transfer; returns false with `failure` on an error
// (a body over the cap included).
bool finish_transfer(CURL* handle, CURLcode code, const char* error_buffer, const BodyBuffer& body,
                     HttpResponse& response, TransportFailure& failure);
// Undoes the body's Content-Encoding in place, from the last coding applied (gzip or x-gzip;
// identity is none), under the body cap. Returns false with `failure` for a body over the cap
// (CURLE_FILESIZE_EXCEEDED), a corrupt one or one in a coding that was not asked for
// (CURLE_BAD_CONTENT_ENCODING, retried like a cut transfer). Called by finish_transfer.
bool decode_body(const BodyBuffer& body, HttpResponse& response, TransportFailure& failure);
// "response from URL larger than N MiB" (or N bytes for a cap that is no whole MiB).
std::string too_large_message(const std::string& source, std::size_t limit);
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
