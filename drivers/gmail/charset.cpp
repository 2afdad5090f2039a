#include "drivers/gmail/charset.hpp"

#include "lib/util/ascii.hpp"
#include "lib/util/utf8.hpp"

#include <iconv.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <memory>

namespace crmsync::drivers::gmail {
namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD"; // U+FFFD

bool is_utf8_name(const std::string& name) {
    return name.empty() || name == "utf-8" || name == "utf8" || name == "us-ascii" ||
           name == "ascii";
}

struct IconvCloser {
    void operator()(iconv_t cd) const noexcept { iconv_close(cd); }
};
using Iconv = std::unique_ptr<std::remove_pointer_t<iconv_t>, IconvCloser>;

std::string utf8_repaired(std::string_view bytes) {
    std::string out(bytes);
    util::repair_utf8(out);
    return out;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

// The "Q" encoding of RFC 2047 §4.2: '_' is a space, =XX a byte.
std::optional<std::string> decode_q(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '_') {
            out += ' ';
        } else if (text[i] == '=') {
            if (i + 2 >= text.size()) {
                return std::nullopt;
            }
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0) {
                return std::nullopt;
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// One "=?charset?enc?text?=" starting at `pos`: its decoded UTF-8 and the position after it.
std::optional<std::pair<std::string, std::size_t>> encoded_word(std::string_view value,
                                                                std::size_t pos) {
    if (value.substr(pos, 2) != "=?") {
        return std::nullopt;
    }
    const auto q1 = value.find('?', pos + 2);
    if (q1 == std::string_view::npos || q1 + 2 >= value.size() || value[q1 + 2] != '?') {
        return std::nullopt;
    }
    const auto end = value.find("?=", q1 + 3);
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    std::string charset(value.substr(pos + 2, q1 - pos - 2));
    if (const auto star = charset.find('*'); star != std::string::npos) {
        charset.resize(star); // RFC 2231 language suffix
    }
    const char encoding =
        static_cast<char>(std::toupper(static_cast<unsigned char>(value[q1 + 1])));
    const auto text = value.substr(q1 + 3, end - q1 - 3);
    std::optional<std::string> bytes;
    if (encoding == 'B') {
        bytes = decode_base64url(text);
    } else if (encoding == 'Q') {
        bytes = decode_q(text);
    }
    if (!bytes) {
        return std::nullopt;
    }
    return std::make_pair(to_utf8(*bytes, charset), end + 2);
}

} // namespace

std::string to_utf8(std::string_view bytes, std::string_view charset, bool* unknown_charset) {
    if (unknown_charset != nullptr) {
        *unknown_charset = false;
    }
    const std::string name = util::ascii_lower(charset);
    if (is_utf8_name(name)) {
        return utf8_repaired(bytes);
    }
    Iconv cd(iconv_open("UTF-8", name.c_str()));
    if (cd.get() == reinterpret_cast<iconv_t>(-1)) {
        cd.release();
        if (unknown_charset != nullptr) {
            *unknown_charset = true;
        }
        return utf8_repaired(bytes);
    }
    std::string out;
    out.reserve(bytes.size() * 2);
    std::string input(bytes);
    char* in = input.data();
    std::size_t in_left = input.size();
    std::array<char, 4096> buffer{};
    while (in_left > 0) {
        char* dst = buffer.data();
        std::size_t dst_left = buffer.size();
        const std::size_t rc = iconv(cd.get(), &in, &in_left, &dst, &dst_left);
        out.append(buffer.data(), buffer.size() - dst_left);
        if (rc != static_cast<std::size_t>(-1)) {
            continue;
        }
        if (errno == E2BIG) {
            continue;
        }
        // EILSEQ (a byte invalid in the charset) or EINVAL (a sequence cut at the end): one
        // replacement character, then go on after the offending byte.
        out += k_replacement;
        ++in;
        --in_left;
        iconv(cd.get(), nullptr, nullptr, nullptr, nullptr); // reset the shift state
    }
    // Flush a stateful encoding's final shift sequence.
    char* dst = buffer.data();
    std::size_t dst_left = buffer.size();
    iconv(cd.get(), nullptr, nullptr, &dst, &dst_left);
    out.append(buffer.data(), buffer.size() - dst_left);
    util::repair_utf8(out);
    return out;
}

std::optional<std::string> decode_base64url(std::string_view text) {
    std::string out;
    out.reserve(text.size() * 3 / 4);
    unsigned buffer = 0;
    int bits = 0;
    bool padding = false;
    for (const char c : text) {
        int v = -1;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '-' || c == '+') {
            v = 62;
        } else if (c == '_' || c == '/') {
            v = 63;
        } else if (c == '=') {
            padding = true;
            continue;
        } else if (c == ' ' || c == '\r' || c == '\n' || c == '\t') {
            continue;
        } else {
            return std::nullopt;
        }
        if (padding) {
            return std::nullopt; // data after padding
        }
        buffer = (buffer << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xFFU);
        }
    }
    if (bits >= 6) {
        return std::nullopt; // a lone sixth of a byte: an impossible length
    }
    return out;
}

std::string decode_header_words(std::string_view value) {
    std::string out;
    std::string pending_space; // whitespace after an encoded word, kept unless another follows
    bool after_word = false;
    for (std::size_t pos = 0; pos < value.size();) {
        if (const auto word = encoded_word(value, pos)) {
            pending_space.clear(); // only whitespace between two encoded words: dropped
            out += word->first;
            pos = word->second;
            after_word = true;
            continue;
        }
        const char c = value[pos];
        if (after_word && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
            pending_space += c;
            ++pos;
            continue;
        }
        out += pending_space;
        pending_space.clear();
        after_word = false;
        out += c;
        ++pos;
    }
    out += pending_space;
    util::repair_utf8(out);
    return out;
}

} // namespace crmsync::drivers::gmail
