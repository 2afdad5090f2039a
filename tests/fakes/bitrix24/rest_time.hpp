#pragma once

// Date-time text of the Bitrix24 REST API (reference apis.md §1.2: "YYYY-MM-DDThh:mm:ss±hh:mm",
// in the portal's time zone, not the user's), with whole seconds since the Unix epoch as the
// internal representation.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::fakes::bitrix24 {

/// "2024-04-25T17:59:11+03:00" for 14:59:11 UTC and `offset_minutes` = 180.
std::string format_time(std::int64_t epoch_seconds, int offset_minutes);

/// Reads a filter value. Accepted (reference §1.4 leaves the formats open, ISO 8601 is the
/// documented type): "YYYY-MM-DD", "YYYY-MM-DDThh:mm[:ss[.fraction]]", a space instead of the
/// 'T', each with an optional "Z", "±hh:mm" or "±hhmm". Without a zone the portal's offset
/// applies. Returns nullopt for anything else, including a '+' that a client forgot to
/// URL-encode and so arrives as a space, which PHP would not read either.
std::optional<std::int64_t> parse_time(std::string_view text, int default_offset_minutes);

} // namespace crmsync::fakes::bitrix24
