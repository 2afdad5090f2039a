#pragma once

#include <string>
#include <string_view>

namespace crmsync::util {

// ASCII case folding for the names that are ASCII by definition: HTTP header names, URL schemes
// and hosts, MIME tokens, catalog type names. Only A-Z change; other bytes (UTF-8 included) are
// kept, whatever the C library's locale would say.
std::string ascii_lower(std::string_view text);

// Whether `a` and `b` are equal when ASCII letters are folded.
bool ascii_iequals(std::string_view a, std::string_view b);

// Whether `text` starts with `prefix` when ASCII letters are folded.
bool ascii_istarts_with(std::string_view text, std::string_view prefix);

} // namespace crmsync::util
