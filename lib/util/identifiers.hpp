#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>

namespace crmsync::util {

// Turns a name that came from data (a custom field, a prefix) into a column or table name that
// every dialect accepts when quoted:
// - control characters and the characters that quote identifiers or mark placeholders in SOCI
//   or ODBC (" ' ` [ ] : ? \) become '_'; surrounding spaces are trimmed; empty becomes "field";
// - longer than `max_bytes`, it is cut on a code point and suffixed "_<8 hex of md5(name)>".
std::string sanitize_identifier(std::string_view name, std::size_t max_bytes);

// The key under which two identifiers collide in a case- and accent-insensitive database
// (MySQL, SQL Server): ASCII lower-cased, every non-ASCII code point folded to '?'. It errs on
// the side of reporting a collision; a false one only costs a suffix.
std::string collision_key(std::string_view identifier);

// Hands out collision-free identifiers. Names taken first (the fixed columns) keep their
// spelling; a later name that collides gets "_<8 hex of md5(original)>", so the mapping of a
// given field does not depend on which other fields exist.
class IdentifierAllocator {
public:
    explicit IdentifierAllocator(std::size_t max_bytes) : m_max_bytes(max_bytes) {}

    // Reserves an identifier as is (a fixed column); returns false if it was taken.
    bool reserve(std::string_view identifier);

    // Returns the identifier to use for `original` (sanitised, unique).
    std::string allocate(std::string_view original);

private:
    std::size_t m_max_bytes;
    std::set<std::string> m_taken;
};

// name@domain without spaces, quotes, angle brackets, commas or control characters: an
// address that can go into a mail header as it is.
bool is_plain_mail_address(std::string_view value);

} // namespace crmsync::util
