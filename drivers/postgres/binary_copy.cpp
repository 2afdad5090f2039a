#include "drivers/postgres/binary_copy.hpp"

#include <array>
#include <charconv>
#include <limits>
#include <string_view>

namespace crmsync::drivers::postgres {
namespace {

// pg_type OIDs of the built-in types (fixed since PostgreSQL 7.x: src/include/catalog/pg_type.dat).
constexpr unsigned k_bool_oid = 16;
constexpr unsigned k_int8_oid = 20;
constexpr unsigned k_int2_oid = 21;
constexpr unsigned k_int4_oid = 23;
constexpr unsigned k_text_oid = 25;
constexpr unsigned k_json_oid = 114;
constexpr unsigned k_varchar_oid = 1043;
constexpr unsigned k_timestamp_oid = 1114;
constexpr unsigned k_timestamptz_oid = 1184;
constexpr unsigned k_numeric_oid = 1700;
constexpr unsigned k_jsonb_oid = 3802;

// Numbers longer than this many digits on either side of the point go as text: far beyond
// anything an API sends, and the server's own limits then apply unchanged.
constexpr std::size_t k_max_numeric_digits = 1000;

// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
constexpr long long k_postgres_epoch_days = 10957;

// `v` in its low `bytes` bytes, big-endian (network order, as COPY's binary format wants).
void put_be(std::string& out, std::uint64_t v, unsigned bytes) {
    // One append rather than a push_back (and its capacity check) per byte.
    std::array<char, 8> big_endian{};
    for (unsigned i = 0; i < bytes; ++i) {
        big_endian[i] = static_cast<char>((v >> (8 * (bytes - 1 - i))) & 0xFF);
    }
    out.append(big_endian.data(), bytes);
}

void put_u16(std::string& out, std::uint16_t v) { put_be(out, v, 2); }
void put_u32(std::string& out, std::uint32_t v) { put_be(out, v, 4); }

// Whether a value of `size` bytes (plus `extra`) fits a field's signed 32-bit length.
bool fits_field(std::size_t size, std::size_t extra) {
    return size + extra <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max());
}

bool all_digits(std::string_view s) {
    for (const char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return !s.empty();
}

// A plain decimal integer ("-12", "007"), as int8in/int4in/int2in read it, within [min, max].
std::optional<long long> parse_integer(std::string_view s, long long min, long long max) {
    const std::string_view digits = s.substr(!s.empty() && s.front() == '-' ? 1 : 0);
    if (!all_digits(digits)) {
        return std::nullopt;
    }
    long long v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
        return std::nullopt;
    }
    return v;
}

// The bytes of an integer type.
unsigned integer_size(BinaryType type) {
    return type == BinaryType::int2 ? 2 : type == BinaryType::int4 ? 4 : 8;
}

// parse_integer within the range of an integer type.
std::optional<long long> parse_integer_of(std::string_view s, BinaryType type) {
    const unsigned bits = 8 * integer_size(type);
    const long long max =
        bits == 64 ? std::numeric_limits<long long>::max() : (1LL << (bits - 1)) - 1;
    return parse_integer(s, -max - 1, max);
}

// "1"/"t"/"true" or "0"/"f"/"false" (canonical text is "1"/"0").
std::optional<bool> parse_boolean(std::string_view s) {
    if (s == "1" || s == "t" || s == "true") {
        return true;
    }
    if (s == "0" || s == "f" || s == "false") {
        return false;
    }
    return std::nullopt;
}

// A plain decimal ("-123.4500", "007"): its digits before and after the point.
struct DecimalParts {
    bool negative = false;
    std::string_view whole;
    std::string_view fraction;
};

std::optional<DecimalParts> split_decimal(std::string_view s) {
    DecimalParts parts;
    parts.negative = !s.empty() && s.front() == '-';
    if (parts.negative) {
        s.remove_prefix(1);
    }
    const auto point = s.find('.');
    parts.whole = s.substr(0, point);
    parts.fraction = point == std::string_view::npos ? std::string_view() : s.substr(point + 1);
    if (!all_digits(parts.whole) ||
        (point != std::string_view::npos && !all_digits(parts.fraction)) ||
        parts.whole.size() > k_max_numeric_digits || parts.fraction.size() > k_max_numeric_digits) {
        return std::nullopt;
    }
    return parts;
}

// A plain decimal as PostgreSQL's numeric: base-10000 digits, the weight of the first one, the
// sign and the display scale (the digits written after the point, as numeric_in keeps them).
bool append_numeric(std::string& out, std::string_view s) {
    const auto parts = split_decimal(s);
    if (!parts) {
        return false;
    }
    const bool negative = parts->negative;
    std::string_view whole = parts->whole;
    const std::string_view fraction = parts->fraction;
    while (!whole.empty() && whole.front() == '0') {
        whole.remove_prefix(1);
    }
    // Groups of four decimal digits, aligned on the point.
    std::vector<std::uint16_t> groups;
    const std::size_t lead = whole.size() % 4 == 0 ? 4 : whole.size() % 4;
    for (std::size_t i = 0; i < whole.size();) {
        const std::size_t n = i == 0 ? lead : 4;
        std::uint16_t g = 0;
        for (std::size_t j = i; j < i + n; ++j) {
            g = static_cast<std::uint16_t>(g * 10 + (whole[j] - '0'));
        }
        groups.push_back(g);
        i += n;
    }
    int weight = static_cast<int>(groups.size()) - 1;
    for (std::size_t i = 0; i < fraction.size(); i += 4) {
        std::uint16_t g = 0;
        for (std::size_t j = i; j < i + 4; ++j) {
            g = static_cast<std::uint16_t>(g * 10 + (j < fraction.size() ? fraction[j] - '0' : 0));
        }
        groups.push_back(g);
    }
    // The server strips zero groups itself; stripping here keeps the weight of a pure fraction
    // ("0.0001") exact without counting on it.
    std::size_t first = 0;
    while (first < groups.size() && groups[first] == 0) {
        ++first;
        --weight;
    }
    std::size_t last = groups.size();
    while (last > first && groups[last - 1] == 0) {
        --last;
    }
    const std::size_t ndigits = last - first;
    const bool zero = ndigits == 0;
    put_u32(out, static_cast<std::uint32_t>(8 + 2 * ndigits));
    put_u16(out, static_cast<std::uint16_t>(ndigits));
    put_u16(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(zero ? 0 : weight)));
    put_u16(out, negative && !zero ? 0x4000 : 0x0000);
    put_u16(out, static_cast<std::uint16_t>(fraction.size()));
    for (std::size_t i = first; i < last; ++i) {
        put_u16(out, groups[i]);
    }
    return true;
}

int two_digits(std::string_view s, std::size_t at) {
    return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

bool leap_year(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Days from 1970-01-01 to the given day of the proleptic Gregorian calendar.
long long days_from_civil(int y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return static_cast<long long>(era) * 146097 + doe - 719468;
}

// "YYYY-MM-DD HH:MM:SS" with up to six decimals of a second (crmsync's canonical form, in UTC
// like the session): microseconds since 2000-01-01. Years 1 to 9999, valid days, no leap
// second, no 24:00 (the server's text input handles those forms its own way).
std::optional<long long> parse_timestamp_micros(std::string_view s) {
    constexpr std::string_view shape = "dddd-dd-dd dd:dd:dd";
    if (s.size() < shape.size() || s.size() == shape.size() + 1 || s.size() > shape.size() + 7) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) {
            return std::nullopt;
        }
    }
    long long micros = 0;
    if (s.size() > shape.size()) {
        if (s[shape.size()] != '.' || !all_digits(s.substr(shape.size() + 1))) {
            return std::nullopt;
        }
        std::string_view fraction = s.substr(shape.size() + 1);
        for (std::size_t i = 0; i < 6; ++i) {
            micros = micros * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
        }
    }
    const int year = two_digits(s, 0) * 100 + two_digits(s, 2);
    const int month = two_digits(s, 5);
    const int day = two_digits(s, 8);
    const int hour = two_digits(s, 11);
    const int minute = two_digits(s, 14);
    const int second = two_digits(s, 17);
    constexpr std::array<int, 12> month_days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 ||
        day > month_days[static_cast<std::size_t>(month - 1)] +
                  (month == 2 && leap_year(year) ? 1 : 0) ||
        hour > 23 || minute > 59 || second > 59) {
        return std::nullopt;
    }
    const long long days = days_from_civil(year, month, day) - k_postgres_epoch_days;
    return ((days * 24 + hour) * 60 + minute) * 60'000'000LL + second * 1'000'000LL + micros;
}

} // namespace

std::optional<BinaryType> binary_type_of(unsigned oid) {
    switch (oid) {
    case k_text_oid:
    case k_varchar_oid:
    case k_json_oid:
        return BinaryType::bytes;
    case k_int2_oid:
        return BinaryType::int2;
    case k_int4_oid:
        return BinaryType::int4;
    case k_int8_oid:
        return BinaryType::int8;
    case k_numeric_oid:
        return BinaryType::numeric;
    case k_bool_oid:
        return BinaryType::boolean;
    case k_timestamp_oid:
    case k_timestamptz_oid:
        return BinaryType::timestamp;
    case k_jsonb_oid:
        return BinaryType::jsonb;
    default:
        return std::nullopt;
    }
}

bool append_binary_field(std::string& out, const sql::Value& value, BinaryType type) {
    if (!value) {
        put_u32(out, 0xFFFFFFFFU); // -1: NULL
        return true;
    }
    const std::string_view text = *value;
    switch (type) {
    case BinaryType::bytes:
    case BinaryType::jsonb: {
        const std::size_t version = type == BinaryType::jsonb ? 1 : 0; // jsonb's format version
        if (!fits_field(text.size(), version)) {
            return false;
        }
        put_u32(out, static_cast<std::uint32_t>(text.size() + version));
        if (version != 0) {
            out += '\x01';
        }
        out.append(text);
        return true;
    }
    case BinaryType::int2:
    case BinaryType::int4:
    case BinaryType::int8:
        if (const auto v = parse_integer_of(text, type)) {
            // Two's complement in the type's own width.
            put_u32(out, integer_size(type));
            put_be(out, static_cast<std::uint64_t>(*v), integer_size(type));
            return true;
        }
        return false;
    case BinaryType::numeric:
        return append_numeric(out, text);
    case BinaryType::boolean:
        if (const auto v = parse_boolean(text)) {
            put_u32(out, 1);
            out += *v ? '\x01' : '\x00';
            return true;
        }
        return false;
    case BinaryType::timestamp:
        if (const auto micros = parse_timestamp_micros(text)) {
            put_u32(out, 8);
            put_be(out, static_cast<std::uint64_t>(*micros), 8);
            return true;
        }
        return false;
    }
    return false;
}

bool binary_encodable(const std::vector<std::vector<const sql::Value*>>& rows,
                      const std::vector<BinaryType>& types) {
    // The same checks as append_binary_field, without writing anything.
    const auto encodable = [](std::string_view text, BinaryType type) {
        switch (type) {
        case BinaryType::bytes:
            return fits_field(text.size(), 0);
        case BinaryType::jsonb:
            return fits_field(text.size(), 1);
        case BinaryType::int2:
        case BinaryType::int4:
        case BinaryType::int8:
            return parse_integer_of(text, type).has_value();
        case BinaryType::numeric:
            return split_decimal(text).has_value();
        case BinaryType::boolean:
            return parse_boolean(text).has_value();
        case BinaryType::timestamp:
            return parse_timestamp_micros(text).has_value();
        }
        return false;
    };
    for (std::size_t c = 0; c < types.size(); ++c) {
        for (const auto& row : rows) {
            if (*row[c] && !encodable(**row[c], types[c])) {
                return false;
            }
        }
    }
    return true;
}

void append_binary_header(std::string& out) {
    out.append("PGCOPY\n\xFF\r\n\0", 11);
    put_u32(out, 0); // flags: no OIDs
    put_u32(out, 0); // no header extension
}

void append_binary_trailer(std::string& out) { put_u16(out, 0xFFFF); }

void append_binary_row(std::string& out, const std::vector<const sql::Value*>& row,
                       const std::vector<BinaryType>& types) {
    put_u16(out, static_cast<std::uint16_t>(row.size()));
    for (std::size_t c = 0; c < row.size(); ++c) {
        append_binary_field(out, *row[c], types[c]);
    }
}

} // namespace crmsync::drivers::postgres
