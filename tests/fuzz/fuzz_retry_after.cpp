// RetryPolicy::retry_after on any Retry-After and Date header: a wait or nullopt, never a
// crash or undefined behaviour, and never a wait of zero or less.

#include "lib/http/retry_policy.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

using namespace crmsync;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The first line is Retry-After, the rest (if any) the Date header.
    const std::string text(reinterpret_cast<const char*>(data), size);
    const auto newline = text.find('\n');
    http::HttpResponse response;
    response.status = 503;
    response.headers["retry-after"] = text.substr(0, newline);
    if (newline != std::string::npos) {
        response.headers["date"] = text.substr(newline + 1);
    }
    const SystemTime now{std::chrono::milliseconds(1'717'200'000'000)};
    if (const auto wait = http::RetryPolicy::retry_after(response, now);
        wait && wait->count() <= 0) {
        std::abort();
    }
    return 0;
}
