#pragma once

// Time formats the fakes send and read (Dialfire: reference dbsync2.md §2.3, §2.5; the HTTP
// Date header), with milliseconds since the Unix epoch (UTC) as the single internal representation.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::fakes {

constexpr std::int64_t k_ms_per_second = 1000;
constexpr std::int64_t k_ms_per_day = 86'400'000;

/// "2024-01-01T10:00:00.000Z": the form of every timestamp the fake sends.
std::string format_iso_ms(std::int64_t epoch_ms);

/// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 7231 IMF-fixdate), for the Date header.
std::string format_http_date(std::int64_t epoch_ms);

/// Parses the request side: "2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05" and
/// "2006-01-02T15:04:05.9" ... ".999999999" (fraction truncated to ms), each with an optional
/// trailing "Z". Returns nullopt for anything else, including out-of-range fields.
std::optional<std::int64_t> parse_api_time(std::string_view text);

/// Floors to 00:00:00.000 UTC of the same day.
std::int64_t start_of_day(std::int64_t epoch_ms);

} // namespace crmsync::fakes
