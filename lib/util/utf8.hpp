#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace crmsync::util {

// Replaces every ill-formed UTF-8 sequence with U+FFFD in place and returns how many were
// replaced. APIs do send such bytes; a JSON parser would otherwise reject the whole page.
std::size_t repair_utf8(std::string& text);

bool is_valid_utf8(std::string_view text);

// Longest prefix of `text` of at most `max_bytes` bytes that does not cut a code point.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

} // namespace crmsync::util
