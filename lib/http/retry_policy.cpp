#include "lib/http/retry_policy.hpp"

#include "lib/core/error.hpp"
#include "lib/http/attempt_loop.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <random>

namespace crmsync::http {
namespace {

std::mt19937_64& rng() {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    return generator;
}

std::string snippet(const std::string& body) {
    std::string s = body.substr(0, 200);
    std::replace_if(
        s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return s;
}

} // namespace

bool RetryPolicy::is_retryable_status(long status) noexcept {
    return status == 408 || status == 425 || status == 429 || status >= 500;
}

bool RetryPolicy::is_retryable_transport(int curl_code) noexcept {
    switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FILESIZE_EXCEEDED: // the same request would bring the same body
        return false;
    default:
        return true;
    }
}

std::chrono::milliseconds RetryPolicy::backoff(int attempt) const {
    const int shift = std::clamp(attempt - 1, 0, 30);
    // base * 2^shift compared as max / 2^shift first: a long --retry-base must not overflow.
    const long long base = std::max<long long>(base_delay.count(), 0);
    const long long ceiling = base > (max_delay.count() >> shift)
                                  ? max_delay.count()
                                  : std::min<long long>(max_delay.count(), base << shift);
    std::uniform_int_distribution<long long> dist(0, std::max<long long>(ceiling, 1));
    return std::chrono::milliseconds(dist(rng()));
}

std::optional<std::chrono::milliseconds> RetryPolicy::retry_after(const HttpResponse& response,
                                                                  SystemTime now) {
    const std::string* value = response.header("retry-after");
    if (value == nullptr || value->empty()) {
        return std::nullopt;
    }
    long long seconds = 0;
    auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), seconds);
    if (ptr == value->data() + value->size() && ec == std::errc::result_out_of_range) {
        // Digits beyond long long: a negative one is garbage, a positive one means "very long".
        return (*value)[0] == '-' ? std::nullopt
                                  : std::optional<std::chrono::milliseconds>(k_longest_retry_after);
    }
    if (ec == std::errc{} && ptr == value->data() + value->size()) {
        if (seconds <= 0) {
            return std::nullopt;
        }
        // Compared in seconds first: seconds * 1000 may not fit.
        if (seconds >= k_longest_retry_after.count() / 1000) {
            return k_longest_retry_after;
        }
        return std::chrono::milliseconds(seconds * 1000);
    }
    const auto when = util::parse_http_date(*value);
    if (!when) {
        return std::nullopt;
    }
    SystemTime reference = now;
    if (const std::string* date = response.header("date")) {
        if (const auto server_now = util::parse_http_date(*date)) {
            reference = *server_now;
        }
    }
    const auto wait = *when - reference;
    if (wait <= std::chrono::milliseconds(0)) {
        return std::nullopt;
    }
    return std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(wait), k_longest_retry_after);
}

HttpResponse send_with_retry(HttpClient& client, const HttpRequest& request,
                             const RetryContext& context, const BodyCheck& check) {
    // A 429 or 503 counts as an attempt here, waiting its Retry-After.
    AttemptLoop attempts(context.policy, context.clock, context.deadline, context.what,
                         {"the server",
                          "the service may be down; the next run retries from the checkpoint", "",
                          "the next run will continue from the checkpoint"});
    for (;;) {
        attempts.begin();
        HttpResponse response;
        TransportFailure failure;
        if (client.perform(request, response, failure)) {
            if (response.status >= 200 && response.status < 300) {
                if (!check || check(response)) {
                    return response;
                }
                attempts.failed(fmt::format("HTTP {} with a damaged body ({} bytes)",
                                            response.status, response.body.size()));
            } else if (response.status == 401 || response.status == 403) {
                throw Error(ErrorKind::auth,
                            fmt::format("{} was refused with HTTP {}: {}", context.what,
                                        response.status, snippet(response.body)),
                            "check the token: it must belong to this campaign and be current");
            } else if (!RetryPolicy::is_retryable_status(response.status)) {
                throw Error(ErrorKind::usage,
                            fmt::format("{} failed with HTTP {}: {}", context.what, response.status,
                                        snippet(response.body)),
                            "check the IDs and URLs on the command line");
            } else {
                std::optional<std::chrono::milliseconds> wait;
                if (response.status == 429 || response.status == 503) {
                    wait = RetryPolicy::retry_after(response, context.clock.wall_now());
                }
                attempts.failed(fmt::format("HTTP {}", response.status), wait);
            }
        } else {
            if (failure.curl_code == CURLE_FILESIZE_EXCEEDED) {
                throw Error(ErrorKind::connection,
                            fmt::format("{} failed: {}", context.what, failure.message),
                            "the service answered with far more data than expected; check the "
                            "URL, or ask for smaller pages");
            }
            if (!RetryPolicy::is_retryable_transport(failure.curl_code)) {
                throw Error(ErrorKind::connection,
                            fmt::format("{} failed: {}", context.what, failure.message),
                            "check the URL and TLS settings (--insecure-api or --insecure-webhook "
                            "skips verification, with a warning)");
            }
            attempts.failed(failure.message);
        }
        attempts.pause();
        context.stats.retries.fetch_add(1, std::memory_order_relaxed);
    }
}

} // namespace crmsync::http
