// The time parsers behind --since/--until, checkpoints, API times and Date headers, and the
// durations of --lookback/--max-runtime: any text parses or gives nullopt, never a crash, and
// what parses formats back to text that parses to the same instant.

#include "lib/util/time.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace crmsync;

namespace {

bool year_in_format_range(SystemTime t) {
    const std::chrono::year_month_day ymd{std::chrono::floor<std::chrono::days>(t)};
    return ymd.year() >= std::chrono::year{0} && ymd.year() <= std::chrono::year{9999};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (const auto t = util::parse_iso8601(text); t && year_in_format_range(*t)) {
        if (util::parse_iso8601(util::format_iso8601(*t)) != t) {
            std::abort();
        }
        (void)util::format_sql_timestamp(*t);
        (void)util::format_date(*t);
    }
    if (const auto t = util::parse_http_date(text); t && year_in_format_range(*t)) {
        const auto again = util::parse_http_date(util::format_http_date(*t));
        if (again != std::chrono::floor<std::chrono::seconds>(*t)) {
            std::abort();
        }
    }
    if (const auto d = util::parse_duration(text); d && d->count() < 0) {
        std::abort();
    }
    return 0;
}
