#include "lib/http/http_client.hpp"

#include "lib/core/error.hpp"
#include "lib/http/gzip_body.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <vector>

namespace crmsync::http {
namespace {

// Counts the bytes on the wire: CURLOPT_MAXFILESIZE_LARGE sees only what the server declares, so
// a body without Content-Length is stopped here. A gzip body is held compressed until the
// transfer ends; finish_transfer decodes it under the same cap (a gzip bomb stops there).
size_t write_body(char* data, size_t size, size_t count, void* user) {
    auto* buffer = static_cast<detail::BodyBuffer*>(user);
    const size_t n = size * count;
    if (n > buffer->limit - std::min(buffer->limit, buffer->body->size())) {
        buffer->too_large = true;
        return 0; // any short count aborts the transfer (CURLE_WRITE_ERROR)
    }
    buffer->body->append(data, n);
    return n;
}

size_t write_header(char* data, size_t size, size_t count, void* user) {
    auto* headers = static_cast<std::map<std::string, std::string>*>(user);
    const std::string_view line(data, size * count);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        const std::string name = util::ascii_lower(std::string(line.substr(0, colon)));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
            value.remove_prefix(1);
        }
        while (!value.empty() &&
               (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
            value.remove_suffix(1);
        }
        std::string& kept = (*headers)[name];
        if (name == "content-encoding" && !kept.empty()) {
            // Codings in several lines form one list (RFC 9110 5.3), applied in order.
            kept += ", ";
            kept += value;
        } else {
            kept = std::string(value);
        }
    } else if (line.rfind("HTTP/", 0) == 0) {
        // A new status line (redirect or 100-continue): forget the previous headers.
        headers->clear();
    }
    return size * count;
}

} // namespace

void ensure_curl_global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

const std::string* HttpResponse::header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? nullptr : &it->second;
}

HttpClient::HttpClient(HttpClientOptions options) : m_options(std::move(options)) {
    ensure_curl_global_init();
    m_handle.reset(curl_easy_init());
    if (!m_handle) {
        throw Error(ErrorKind::internal, "libcurl could not create a handle");
    }
}

namespace detail {

void prepare_transfer(CURL* h, const HttpRequest& request, HttpResponse& response,
                      CurlSlist& headers, char* error_buffer, BodyBuffer& body,
                      const HttpClientOptions& options) {
    curl_easy_reset(h);
    error_buffer[0] = '\0';
    response = HttpResponse{};
    body.body = &response.body;
    body.limit = options.max_response_bytes;
    body.too_large = false;
    body.source = util::redact_url(request.url);
    headers.reset();
    const auto append = [&](const std::string& line) {
        curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
        if (appended == nullptr) {
            throw Error(ErrorKind::internal, "out of memory building request headers");
        }
        (void)headers.release();
        headers.reset(appended);
    };
    for (const auto& [name, value] : request.headers) {
        append(name + ": " + value);
    }
    if (!request.body.empty() || request.method == "POST") {
        // libcurl adds "Expect: 100-continue" to large bodies; it costs a round trip.
        append("Expect:");
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(k_connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    // gzip only: every API offers it, and brotli costs some servers more than it saves.
    // libcurl sends the header but leaves decoding to finish_transfer (see gzip_body.hpp).
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    // Refuses a declared Content-Length over the cap before any byte is read.
    constexpr auto k_off_max = static_cast<std::size_t>(std::numeric_limits<curl_off_t>::max());
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(std::min(body.limit, k_off_max)));
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, write_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.headers);
    if (request.method == "GET") {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        // The body is handed over on every attempt, never consumed: retries resend it whole.
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size()));
    }
}

std::string too_large_message(const std::string& source, std::size_t limit) {
    constexpr std::size_t mib = std::size_t{1} << 20;
    return limit % mib == 0 && limit > 0
               ? fmt::format("response from {} larger than {} MiB", source, limit / mib)
               : fmt::format("response from {} larger than {} bytes", source, limit);
}

bool finish_transfer(CURL* h, CURLcode code, const char* error_buffer, const BodyBuffer& body,
                     HttpResponse& response, TransportFailure& failure) {
    curl_off_t elapsed_us = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &elapsed_us);
    response.elapsed = std::chrono::milliseconds(elapsed_us / 1000);
    if (code == CURLE_FILESIZE_EXCEEDED || (code == CURLE_WRITE_ERROR && body.too_large)) {
        failure.curl_code = static_cast<int>(CURLE_FILESIZE_EXCEEDED);
        failure.message = too_large_message(body.source, body.limit);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &failure.status);
        response.body.clear();
        return false;
    }
    if (code != CURLE_OK) {
        failure.curl_code = static_cast<int>(code);
        failure.message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
        return false;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    return decode_body(body, response, failure);
}

bool decode_body(const BodyBuffer& body, HttpResponse& response, TransportFailure& failure) {
    const std::string* encoding = response.header("content-encoding");
    if (encoding == nullptr || response.body.empty()) {
        return true;
    }
    const auto fail = [&](CURLcode code, std::string message) {
        failure.curl_code = static_cast<int>(code);
        failure.message = std::move(message);
        failure.status = response.status;
        response.body.clear();
        return false;
    };
    // The codings in the order the server applied them; undone from the last.
    std::vector<std::string> codings;
    for (std::size_t start = 0; start <= encoding->size();) {
        const std::size_t comma = std::min(encoding->find(',', start), encoding->size());
        std::string coding = util::ascii_lower(encoding->substr(start, comma - start));
        coding.erase(0, coding.find_first_not_of(" \t"));
        coding.erase(coding.find_last_not_of(" \t") + 1);
        if (!coding.empty() && coding != "identity") {
            codings.push_back(std::move(coding));
        }
        start = comma + 1;
    }
    for (auto coding = codings.rbegin(); coding != codings.rend(); ++coding) {
        if (*coding != "gzip" && *coding != "x-gzip") {
            return fail(CURLE_BAD_CONTENT_ENCODING,
                        fmt::format("response from {} is encoded as '{}', which was not asked for",
                                    body.source, *coding));
        }
        switch (gunzip_body(response.body, body.limit)) {
        case GunzipOutcome::decoded:
            continue;
        case GunzipOutcome::too_large:
            return fail(CURLE_FILESIZE_EXCEEDED, too_large_message(body.source, body.limit));
        case GunzipOutcome::corrupt:
            return fail(CURLE_BAD_CONTENT_ENCODING,
                        fmt::format("response from {} is not valid gzip (cut short or corrupt)",
                                    body.source));
        }
    }
    return true;
}

} // namespace detail

bool HttpClient::perform(const HttpRequest& request, HttpResponse& response,
                         TransportFailure& failure) {
    CURL* h = m_handle.get();
    char error_buffer[CURL_ERROR_SIZE] = {};
    CurlSlist headers;
    detail::BodyBuffer body;
    detail::prepare_transfer(h, request, response, headers, error_buffer, body, m_options);
    const CURLcode code = curl_easy_perform(h);
    const bool ok = detail::finish_transfer(h, code, error_buffer, body, response, failure);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    return ok;
}

} // namespace crmsync::http
