#include "lib/util/identifiers.hpp"

#include "lib/util/hash.hpp"
#include "lib/util/utf8.hpp"

#include <algorithm>
#include <cctype>

namespace crmsync::util {
namespace {

bool is_forbidden(unsigned char c) {
    return c < 0x20 || c == 0x7F || c == '"' || c == '\'' || c == '`' || c == '[' || c == ']' ||
           c == ':' || c == '?' || c == '\\';
}

std::string with_suffix(std::string_view base, std::string_view original, std::size_t max_bytes) {
    const std::string suffix = "_" + md5_hex(original).substr(0, 8);
    const std::size_t room = max_bytes > suffix.size() ? max_bytes - suffix.size() : 0;
    return std::string(utf8_prefix(base, room)) + suffix;
}

} // namespace

std::string sanitize_identifier(std::string_view name, std::size_t max_bytes) {
    std::string cleaned(name);
    repair_utf8(cleaned);
    for (char& c : cleaned) {
        if (is_forbidden(static_cast<unsigned char>(c))) {
            c = '_';
        }
    }
    const auto first = cleaned.find_first_not_of(' ');
    const auto last = cleaned.find_last_not_of(' ');
    cleaned = first == std::string::npos ? std::string{} : cleaned.substr(first, last - first + 1);
    if (cleaned.empty()) {
        cleaned = "field";
    }
    if (cleaned.size() > max_bytes) {
        return with_suffix(cleaned, name, max_bytes);
    }
    return cleaned;
}

std::string collision_key(std::string_view identifier) {
    std::string key;
    key.reserve(identifier.size());
    for (std::size_t i = 0; i < identifier.size(); ++i) {
        const auto c = static_cast<unsigned char>(identifier[i]);
        if (c < 0x80) {
            key += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if ((c & 0xC0) != 0x80) {
            key += '?';
        }
    }
    return key;
}

bool IdentifierAllocator::reserve(std::string_view identifier) {
    return m_taken.insert(collision_key(identifier)).second;
}

std::string IdentifierAllocator::allocate(std::string_view original) {
    std::string candidate = sanitize_identifier(original, m_max_bytes);
    if (m_taken.insert(collision_key(candidate)).second) {
        return candidate;
    }
    candidate = with_suffix(candidate, original, m_max_bytes);
    // A second collision would need two fields whose names hash alike; extend the hash then.
    for (int salt = 1; !m_taken.insert(collision_key(candidate)).second; ++salt) {
        candidate =
            with_suffix(candidate, std::string(original) + std::to_string(salt), m_max_bytes);
    }
    return candidate;
}

bool is_plain_mail_address(std::string_view value) {
    const auto at = value.find('@');
    return at != std::string::npos && at > 0 && at + 1 < value.size() &&
           std::none_of(value.begin(), value.end(), [](char c) {
               return std::isspace(static_cast<unsigned char>(c)) || c == '<' || c == '>' ||
                      c == ',' || c == '"' || static_cast<unsigned char>(c) < 0x20;
           });
}

} // namespace crmsync::util
