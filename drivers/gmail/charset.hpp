#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace crmsync::drivers::gmail {

// `bytes` in the character set `charset` (a MIME charset name: "utf-8", "ISO-8859-2",
// "windows-1250", "us-ascii"...; empty means US-ASCII, read as UTF-8) as UTF-8. Bytes that are
// invalid in that charset become U+FFFD; a charset iconv does not know is read as UTF-8 (and
// repaired the same way), with `unknown_charset` set when given. Never throws for bad input.
std::string to_utf8(std::string_view bytes, std::string_view charset,
                    bool* unknown_charset = nullptr);

// base64url (RFC 4648 §5) with or without '=' padding; standard '+' '/' are accepted too, and
// whitespace is skipped. nullopt for other characters.
std::optional<std::string> decode_base64url(std::string_view text);

// A header value with its RFC 2047 encoded words ("=?iso-8859-2?Q?Pawe=B3?=",
// "=?UTF-8?B?...?=") decoded to UTF-8; whitespace between two encoded words is dropped as the
// RFC says. A malformed word stays as it is. The result is valid UTF-8.
std::string decode_header_words(std::string_view value);

} // namespace crmsync::drivers::gmail
