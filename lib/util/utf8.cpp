#include "lib/util/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace crmsync::util {
namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD";

// Length of the well-formed sequence starting at text[pos], or 0 (Unicode 15, table 3-7).
std::size_t sequence_length(std::string_view text, std::size_t pos) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char b0 = byte(pos);
    const std::size_t left = text.size() - pos;
    if (b0 < 0x80) {
        return 1;
    }
    const auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
        return i < text.size() && byte(i) >= lo && byte(i) <= hi;
    };
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        return left >= 2 && cont(pos + 1) ? 2 : 0;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
        const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
        return left >= 3 && cont(pos + 1, lo, hi) && cont(pos + 2) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
        const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
        return left >= 4 && cont(pos + 1, lo, hi) && cont(pos + 2) && cont(pos + 3) ? 4 : 0;
    }
    return 0;
}

// The first position at or after `pos` whose byte is not ASCII, or text.size(). Eight bytes at a
// time: API pages are mostly ASCII, and this scan runs over every page.
std::size_t skip_ascii(std::string_view text, std::size_t pos) {
    constexpr std::uint64_t k_high_bits = 0x8080808080808080ULL;
    while (pos + 8 <= text.size()) {
        std::uint64_t word = 0;
        std::memcpy(&word, text.data() + pos, 8);
        if ((word & k_high_bits) != 0) {
            break;
        }
        pos += 8;
    }
    while (pos < text.size() && static_cast<unsigned char>(text[pos]) < 0x80) {
        ++pos;
    }
    return pos;
}

} // namespace

std::size_t repair_utf8(std::string& text) {
    std::size_t pos = 0;
    // Fast path: most payloads are valid; only copy when a bad sequence shows up.
    while ((pos = skip_ascii(text, pos)) < text.size()) {
        const std::size_t len = sequence_length(text, pos);
        if (len == 0) {
            break;
        }
        pos += len;
    }
    if (pos == text.size()) {
        return 0;
    }
    std::string out(text.substr(0, pos));
    out.reserve(text.size() + 16);
    std::size_t replaced = 0;
    while (pos < text.size()) {
        const std::size_t len = sequence_length(text, pos);
        if (len == 0) {
            out += k_replacement;
            ++replaced;
            ++pos;
        } else {
            out.append(text, pos, len);
            pos += len;
        }
    }
    text = std::move(out);
    return replaced;
}

bool is_valid_utf8(std::string_view text) {
    std::size_t pos = 0;
    while ((pos = skip_ascii(text, pos)) < text.size()) {
        const std::size_t len = sequence_length(text, pos);
        if (len == 0) {
            return false;
        }
        pos += len;
    }
    return true;
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) {
        return text;
    }
    std::size_t end = max_bytes;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
        --end;
    }
    return text.substr(0, end);
}

} // namespace crmsync::util
