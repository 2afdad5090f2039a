// Target URLs, webhook URLs and percent-coding: any text gives a URL or Error(usage), never a
// crash; percent_decode undoes percent_encode; redact_url never shows a parsed password.

#include "lib/core/error.hpp"
#include "lib/util/url.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace crmsync;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (util::percent_decode(util::percent_encode(text)) != text) {
        std::abort();
    }
    (void)util::percent_decode(text);
    const std::string redacted = util::redact_url(text);
    try {
        const auto url = util::parse_database_url(text);
        // A password long enough not to occur by chance elsewhere must not survive redaction.
        if (url.password.size() >= 8 && redacted.find(url.password) != std::string::npos &&
            text.find(url.password) == text.rfind(url.password)) {
            std::abort();
        }
    } catch (const Error&) {
    }
    try {
        (void)util::parse_http_url(text);
    } catch (const Error&) {
    }
    return 0;
}
