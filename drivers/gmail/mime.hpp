#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace crmsync::drivers::gmail {

// The readable text of one message, taken from its MIME tree (MessagePart JSON of
// users.messages.get?format=full).
struct MailText {
    std::string text;      // UTF-8, "\n" line ends; empty when nothing readable was found
    std::string mime_type; // "text/plain" or "text/html" (the part the text came from)
    std::string charset;   // as the part declared it ("" when it did not)
    std::string part_id;
    std::string problem; // why `text` is empty, or a note ("unknown charset x, read as UTF-8")
};

// Walks the tree depth first and takes the first text/plain part that is not an attachment
// (no filename, no "Content-Disposition: attachment"); when there is none, the first such
// text/html part, converted with html_to_text. The body's `data` is base64url of bytes whose
// Content-Transfer-Encoding Gmail has already undone: it is not decoded again (a quoted-
// printable part keeps "=3D" literal). The bytes are converted from the part's declared
// charset to UTF-8 (invalid bytes -> U+FFFD); CRLF and CR become "\n". Never throws.
MailText message_text(const nlohmann::json& payload);

// The value of the first header `name` (case-insensitive) in a part's "headers", with RFC 2047
// words decoded; nullopt when absent.
std::optional<std::string> header_value(const nlohmann::json& part, std::string_view name);

// A parameter of a structured header value: "charset" of `text/plain; charset="iso-8859-2"`.
// Case-insensitive name, quotes removed; "" when absent.
std::string header_parameter(std::string_view value, std::string_view name);

} // namespace crmsync::drivers::gmail
