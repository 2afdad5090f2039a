#pragma once

#include "lib/core/clock.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::util {

// Parses ISO-8601 / RFC 3339 the way the APIs write it: "2024-01-01", "2024-01-01T10:00:00",
// "2024-01-01T10:00:00.123Z", "2024-01-01 10:00:00.5+02:00". No zone means UTC.
// Returns nullopt for anything else (never guesses).
std::optional<SystemTime> parse_iso8601(std::string_view text);

// "2024-01-01T10:00:00.123Z": how checkpoints are stored and shown.
std::string format_iso8601(SystemTime t);

// "2024-01-01 10:00:00.123": the UTC literal written into timestamp columns of every dialect.
std::string format_sql_timestamp(SystemTime t);

// "2024-01-01".
std::string format_date(SystemTime t);

// RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), plus the two obsolete forms.
std::optional<SystemTime> parse_http_date(std::string_view text);
std::string format_http_date(SystemTime t);

// The longest duration parse_duration accepts: 100 years.
inline constexpr std::chrono::milliseconds k_max_duration{100LL * 366 * 86'400'000};

// "90s", "10m", "2h", "1d", "1500ms" or a bare number of seconds; nullopt if malformed or
// longer than k_max_duration.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

} // namespace crmsync::util
