#pragma once

// Reads back what drivers::postgres::append_binary_field wrote, independently of it, as the
// text PostgreSQL's output functions would print (numeric_out, timestamp_out in UTC, int8out,
// boolout), and the canonical text the encoder should have been given for it. Used by the
// round-trip unit test and the fuzz target.

#include "drivers/postgres/binary_copy.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::testing {

inline std::uint64_t read_be(std::string_view bytes, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        v = (v << 8) | static_cast<unsigned char>(bytes.at(at + i));
    }
    return v;
}

// The field's value (after its 4-byte length) as the server prints it; nullopt for NULL or a
// malformed field.
inline std::optional<std::string> decode_pg_binary(std::string_view field,
                                                   drivers::postgres::BinaryType type) {
    using drivers::postgres::BinaryType;
    if (field.size() < 4) {
        return std::nullopt;
    }
    const auto length = static_cast<std::int32_t>(read_be(field, 0, 4));
    if (length < 0 || field.size() != 4 + static_cast<std::size_t>(length)) {
        return std::nullopt;
    }
    const std::string_view value = field.substr(4);
    switch (type) {
    case BinaryType::bytes:
        return std::string(value);
    case BinaryType::jsonb:
        if (value.empty() || value[0] != '\x01') {
            return std::nullopt;
        }
        return std::string(value.substr(1));
    case BinaryType::int2:
        return value.size() == 2 ? std::optional<std::string>(std::to_string(
                                       static_cast<std::int16_t>(read_be(value, 0, 2))))
                                 : std::nullopt;
    case BinaryType::int4:
        return value.size() == 4 ? std::optional<std::string>(std::to_string(
                                       static_cast<std::int32_t>(read_be(value, 0, 4))))
                                 : std::nullopt;
    case BinaryType::int8:
        return value.size() == 8 ? std::optional<std::string>(std::to_string(
                                       static_cast<std::int64_t>(read_be(value, 0, 8))))
                                 : std::nullopt;
    case BinaryType::boolean:
        if (value.size() != 1 || (value[0] != 0 && value[0] != 1)) {
            return std::nullopt;
        }
        return std::string(value[0] ? "t" : "f");
    case BinaryType::numeric: {
        if (value.size() < 8) {
            return std::nullopt;
        }
        const auto ndigits = static_cast<std::size_t>(read_be(value, 0, 2));
        const auto weight = static_cast<std::int16_t>(read_be(value, 2, 2));
        const auto sign = read_be(value, 4, 2);
        const auto dscale = static_cast<std::size_t>(read_be(value, 6, 2));
        if (value.size() != 8 + 2 * ndigits || (sign != 0 && sign != 0x4000)) {
            return std::nullopt;
        }
        // Every base-10000 digit as four decimal digits, positioned by the weight.
        std::string whole;
        std::string fraction;
        for (long g = std::max<long>(weight, 0); g >= 0; --g) {
            const long i = weight - g;
            const auto d = i >= 0 && static_cast<std::size_t>(i) < ndigits
                               ? read_be(value, 8 + 2 * static_cast<std::size_t>(i), 2)
                               : 0;
            if (d > 9999) {
                return std::nullopt;
            }
            char buf[8];
            std::snprintf(buf, sizeof buf, "%04u", static_cast<unsigned>(d));
            whole += buf;
        }
        for (long g = -1; fraction.size() < dscale; --g) {
            const long i = weight - g;
            const auto d = i >= 0 && static_cast<std::size_t>(i) < ndigits
                               ? read_be(value, 8 + 2 * static_cast<std::size_t>(i), 2)
                               : 0;
            char buf[8];
            std::snprintf(buf, sizeof buf, "%04u", static_cast<unsigned>(d));
            fraction += buf;
        }
        // Digits past the scale would be cut by the server: the encoder must not write any.
        for (std::size_t i = 0; i < ndigits; ++i) {
            const long position = weight - static_cast<long>(i); // of this base-10000 digit
            const auto d = read_be(value, 8 + 2 * i, 2);
            if (position < 0 && static_cast<std::size_t>(-position) * 4 > dscale + 3 && d != 0) {
                return std::nullopt;
            }
        }
        if (fraction.size() > dscale &&
            fraction.find_first_not_of('0', dscale) != std::string::npos) {
            return std::nullopt;
        }
        while (whole.size() > 1 && whole.front() == '0') {
            whole.erase(0, 1);
        }
        std::string out = (sign == 0x4000 ? "-" : "") + whole;
        if (dscale > 0) {
            out += "." + fraction.substr(0, dscale);
        }
        return out;
    }
    case BinaryType::timestamp: {
        if (value.size() != 8) {
            return std::nullopt;
        }
        using namespace std::chrono;
        const auto micros = static_cast<std::int64_t>(read_be(value, 0, 8));
        const sys_days epoch = year{2000} / January / 1;
        const auto at = epoch + std::chrono::microseconds(micros);
        const auto day = floor<days>(at);
        const year_month_day ymd{day};
        const hh_mm_ss<std::chrono::microseconds> time{
            std::chrono::duration_cast<std::chrono::microseconds>(at - day)};
        char buf[64];
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02ld:%02ld:%02ld.%06ld",
                      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                      static_cast<unsigned>(ymd.day()), static_cast<long>(time.hours().count()),
                      static_cast<long>(time.minutes().count()),
                      static_cast<long>(time.seconds().count()),
                      static_cast<long>(time.subseconds().count()));
        return std::string(buf);
    }
    }
    return std::nullopt;
}

// What the server's output would print for `text` read by its text input, for the plain forms
// the encoder takes: integers without leading zeros, numerics with the scale as written and a
// zero never negative, timestamps with six decimals, booleans as t/f.
inline std::string expected_pg_text(std::string text, drivers::postgres::BinaryType type) {
    using drivers::postgres::BinaryType;
    switch (type) {
    case BinaryType::int2:
    case BinaryType::int4:
    case BinaryType::int8:
        return std::to_string(std::stoll(text));
    case BinaryType::boolean:
        return text == "1" || text == "t" || text == "true" ? "t" : "f";
    case BinaryType::numeric: {
        const bool negative = !text.empty() && text[0] == '-';
        if (negative) {
            text.erase(0, 1);
        }
        const auto point = text.find('.');
        std::string whole = text.substr(0, point);
        const std::string fraction = point == std::string::npos ? "" : text.substr(point + 1);
        while (whole.size() > 1 && whole.front() == '0') {
            whole.erase(0, 1);
        }
        const bool zero = whole.find_first_not_of('0') == std::string::npos &&
                          fraction.find_first_not_of('0') == std::string::npos;
        return (negative && !zero ? "-" : "") + whole + (fraction.empty() ? "" : "." + fraction);
    }
    case BinaryType::timestamp: {
        const auto point = text.find('.');
        std::string fraction = point == std::string::npos ? "" : text.substr(point + 1);
        fraction.resize(6, '0');
        return text.substr(0, point) + "." + fraction;
    }
    case BinaryType::bytes:
    case BinaryType::jsonb:
        return text;
    }
    return text;
}

} // namespace crmsync::testing
