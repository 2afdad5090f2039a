// PostgreSQL's binary COPY encoding: the bytes of each type, and every text the encoder must
// leave to the server's text input. (What the server stores from both is compared in the
// integration test "PostgreSQL's binary COPY stores what its text COPY stores".)

#include "drivers/postgres/binary_copy.hpp"
#include "tests/support/pg_binary_decode.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace crmsync;
using drivers::postgres::append_binary_field;
using drivers::postgres::BinaryType;

namespace {

// The field's bytes after its 4-byte length, which must match them; "refused" when the
// encoder leaves the text to the server.
std::string field(const sql::Value& value, BinaryType type) {
    std::string out = "keep";
    if (!append_binary_field(out, value, type)) {
        REQUIRE(out == "keep");
        return "refused";
    }
    REQUIRE(out.size() >= 8);
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(out[i]); };
    const std::uint32_t length = (static_cast<std::uint32_t>(byte(4)) << 24) |
                                 (static_cast<std::uint32_t>(byte(5)) << 16) |
                                 (static_cast<std::uint32_t>(byte(6)) << 8) | byte(7);
    if (length == 0xFFFFFFFFU) {
        REQUIRE(out.size() == 8);
        return "NULL";
    }
    REQUIRE(out.size() == 8 + length);
    return out.substr(8);
}

std::string be16(std::int16_t v) {
    const auto u = static_cast<std::uint16_t>(v);
    return {static_cast<char>(u >> 8), static_cast<char>(u & 0xFF)};
}

std::string be32(std::int32_t v) {
    const auto u = static_cast<std::uint32_t>(v);
    return be16(static_cast<std::int16_t>(u >> 16)) + be16(static_cast<std::int16_t>(u & 0xFFFF));
}

std::string be64(std::int64_t v) {
    const auto u = static_cast<std::uint64_t>(v);
    return be32(static_cast<std::int32_t>(u >> 32)) +
           be32(static_cast<std::int32_t>(u & 0xFFFFFFFFU));
}

// numeric's binary form: ndigits, weight, sign, dscale, then the base-10000 digits.
std::string numeric(std::int16_t weight, bool negative, std::int16_t dscale,
                    const std::vector<std::int16_t>& digits) {
    std::string out = be16(static_cast<std::int16_t>(digits.size())) + be16(weight) +
                      be16(negative ? 0x4000 : 0) + be16(dscale);
    for (const auto d : digits) {
        out += be16(d);
    }
    return out;
}

} // namespace

TEST_CASE("binary COPY writes only the column types it knows") {
    using drivers::postgres::binary_type_of;
    CHECK(binary_type_of(25) == BinaryType::bytes);       // text
    CHECK(binary_type_of(1043) == BinaryType::bytes);     // varchar
    CHECK(binary_type_of(114) == BinaryType::bytes);      // json
    CHECK(binary_type_of(3802) == BinaryType::jsonb);     // jsonb
    CHECK(binary_type_of(20) == BinaryType::int8);        // bigint
    CHECK(binary_type_of(23) == BinaryType::int4);        // integer
    CHECK(binary_type_of(21) == BinaryType::int2);        // smallint
    CHECK(binary_type_of(1700) == BinaryType::numeric);   // numeric
    CHECK(binary_type_of(16) == BinaryType::boolean);     // boolean
    CHECK(binary_type_of(1184) == BinaryType::timestamp); // timestamptz
    CHECK(binary_type_of(1114) == BinaryType::timestamp); // timestamp
    CHECK_FALSE(binary_type_of(1082));                    // date
    CHECK_FALSE(binary_type_of(1042));                    // char(n)
    CHECK_FALSE(binary_type_of(1007));                    // integer[]
    CHECK_FALSE(binary_type_of(701));                     // double precision
    CHECK_FALSE(binary_type_of(16384));                   // a domain or an enum
}

TEST_CASE("binary COPY fields: NULL, text and jsonb") {
    CHECK(field(std::nullopt, BinaryType::int8) == "NULL");
    CHECK(field(std::nullopt, BinaryType::bytes) == "NULL");
    CHECK(field(std::string(), BinaryType::bytes).empty());
    CHECK(field(std::string("a\tb\n\\N\r"), BinaryType::bytes) == "a\tb\n\\N\r");
    CHECK(field(std::string("Z\xC3\xA4hler \xF0\x9F\x98\x80"), BinaryType::bytes) ==
          "Z\xC3\xA4hler \xF0\x9F\x98\x80");
    CHECK(field(std::string(R"({"a":1})"), BinaryType::jsonb) ==
          std::string("\x01") + R"({"a":1})");
}

TEST_CASE("binary COPY fields: integers in range, in plain decimal only") {
    CHECK(field(std::string("0"), BinaryType::int8) == be64(0));
    CHECK(field(std::string("-1"), BinaryType::int8) == be64(-1));
    CHECK(field(std::string("007"), BinaryType::int8) == be64(7));
    CHECK(field(std::string("9223372036854775807"), BinaryType::int8) == be64(INT64_MAX));
    CHECK(field(std::string("-9223372036854775808"), BinaryType::int8) == be64(INT64_MIN));
    CHECK(field(std::string("2147483647"), BinaryType::int4) == be32(INT32_MAX));
    CHECK(field(std::string("-32768"), BinaryType::int2) == be16(INT16_MIN));
    for (const char* refused : {"9223372036854775808", "-9223372036854775809", "", "-", "+1", " 1",
                                "1 ", "1.0", "1e3", "0x10", "1_000"}) {
        CAPTURE(refused);
        CHECK(field(std::string(refused), BinaryType::int8) == "refused");
    }
    CHECK(field(std::string("2147483648"), BinaryType::int4) == "refused");
    CHECK(field(std::string("32768"), BinaryType::int2) == "refused");
}

TEST_CASE("binary COPY fields: numeric digits, weight, sign and scale as numeric_in keeps them") {
    CHECK(field(std::string("0"), BinaryType::numeric) == numeric(0, false, 0, {}));
    CHECK(field(std::string("-0.00"), BinaryType::numeric) == numeric(0, false, 2, {}));
    CHECK(field(std::string("1"), BinaryType::numeric) == numeric(0, false, 0, {1}));
    CHECK(field(std::string("-1.5"), BinaryType::numeric) == numeric(0, true, 1, {1, 5000}));
    CHECK(field(std::string("12345.678"), BinaryType::numeric) ==
          numeric(1, false, 3, {1, 2345, 6780}));
    CHECK(field(std::string("10000"), BinaryType::numeric) == numeric(1, false, 0, {1}));
    CHECK(field(std::string("00012.3400"), BinaryType::numeric) ==
          numeric(0, false, 4, {12, 3400}));
    CHECK(field(std::string("0.0001"), BinaryType::numeric) == numeric(-1, false, 4, {1}));
    CHECK(field(std::string("0.00001"), BinaryType::numeric) == numeric(-2, false, 5, {1000}));
    CHECK(field(std::string("99999999.99999999"), BinaryType::numeric) ==
          numeric(1, false, 8, {9999, 9999, 9999, 9999}));
    CHECK(field(std::string("1234567.0625"), BinaryType::numeric) ==
          numeric(1, false, 4, {123, 4567, 625}));
    for (const char* refused : {"", "-", "--1", "+1", ".5", "5.", "1e5", "1,5", "NaN", "Infinity",
                                "1 ", "0x1", "1.2.3"}) {
        CAPTURE(refused);
        CHECK(field(std::string(refused), BinaryType::numeric) == "refused");
    }
    CHECK(field(std::string(1001, '9'), BinaryType::numeric) == "refused");
    CHECK(field("0." + std::string(1001, '1'), BinaryType::numeric) == "refused");
}

TEST_CASE("binary COPY fields: booleans") {
    for (const char* yes : {"1", "t", "true"}) {
        CHECK(field(std::string(yes), BinaryType::boolean) == std::string("\x01", 1));
    }
    for (const char* no : {"0", "f", "false"}) {
        CHECK(field(std::string(no), BinaryType::boolean) == std::string("\x00", 1));
    }
    for (const char* refused : {"", "yes", "TRUE", "2", " 1"}) {
        CHECK(field(std::string(refused), BinaryType::boolean) == "refused");
    }
}

TEST_CASE("binary COPY fields: timestamps in microseconds since 2000, canonical form only") {
    const auto micros = [](const char* text) {
        return field(std::string(text), BinaryType::timestamp);
    };
    CHECK(micros("2000-01-01 00:00:00") == be64(0));
    CHECK(micros("2000-01-01 00:00:00.000001") == be64(1));
    CHECK(micros("2000-01-01 00:00:00.5") == be64(500000));
    CHECK(micros("1999-12-31 23:59:59.999") == be64(-1000));
    CHECK(micros("1970-01-01 00:00:00.000") == be64(-946684800000000LL));
    CHECK(micros("0001-01-01 00:00:00") == be64(-63082281600000000LL));
    CHECK(micros("9999-12-31 23:59:59.999") == be64(252455615999999000LL));
    CHECK(micros("2024-02-29 12:00:00.001") == be64(762523200001000LL));
    CHECK(micros("2100-03-01 00:00:00") == be64(3160857600000000LL));
    for (const char* refused : {"",
                                "0000-01-01 00:00:00",
                                "2023-02-29 00:00:00",
                                "2100-02-29 00:00:00",
                                "2024-04-31 00:00:00",
                                "2024-13-01 00:00:00",
                                "2024-00-10 00:00:00",
                                "2024-01-00 00:00:00",
                                "2024-01-01 24:00:00",
                                "2024-01-01 00:60:00",
                                "2024-01-01 23:59:60",
                                "2024-01-01T00:00:00",
                                "2024-01-01 00:00:00Z",
                                "2024-01-01 00:00:00+02",
                                "2024-01-01 00:00:00.",
                                "2024-01-01 00:00:00.1234567",
                                "2024-01-01",
                                "24-01-01 00:00:00",
                                "2024-1-01 00:00:00",
                                "infinity",
                                "-infinity",
                                "2024-01-01 00:00:00 BC",
                                "2024-01-01 0a:00:00"}) {
        CAPTURE(refused);
        CHECK(micros(refused) == "refused");
    }
}

TEST_CASE("binary COPY framing: header, rows and end marker") {
    std::string out;
    drivers::postgres::append_binary_header(out);
    CHECK(out == std::string("PGCOPY\n\xFF\r\n\0", 11) + be32(0) + be32(0));
    out.clear();
    const sql::Value id = std::string("k1");
    const sql::Value none;
    const sql::Value count = std::string("42");
    const std::vector<BinaryType> types = {BinaryType::bytes, BinaryType::bytes, BinaryType::int8};
    CHECK(drivers::postgres::binary_encodable({{&id, &none, &count}}, types));
    CHECK_FALSE(drivers::postgres::binary_encodable({{&id, &none, &id}}, types));
    drivers::postgres::append_binary_row(out, {&id, &none, &count}, types);
    CHECK(out == be16(3) + be32(2) + "k1" + be32(-1) + be32(8) + be64(42));
    out.clear();
    drivers::postgres::append_binary_trailer(out);
    CHECK(out == be16(-1));
}

namespace {

// A text that looks like a value of `type` more often than not: digits, signs, points and
// separators in the places the canonical forms have them, with random slips.
std::string near_miss(std::mt19937& rng, BinaryType type) {
    const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    const auto digits = [&](int n) {
        std::string s;
        for (int i = 0; i < n; ++i) {
            s += static_cast<char>('0' + pick(10));
        }
        return s;
    };
    std::string s;
    switch (type) {
    case BinaryType::timestamp: {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", pick(10000), pick(14),
                      pick(33), pick(26), pick(62), pick(62));
        s = buf;
        if (pick(3) > 0) {
            s += "." + digits(pick(8));
        }
        break;
    }
    case BinaryType::numeric:
        s = (pick(3) == 0 ? "-" : "") + digits(pick(45));
        if (pick(2) == 0) {
            s += "." + digits(pick(45));
        }
        break;
    default:
        s = (pick(3) == 0 ? "-" : "") + digits(pick(21));
        break;
    }
    // A slip now and then: a byte replaced by one of the separators or a letter.
    if (!s.empty() && pick(8) == 0) {
        s[static_cast<std::size_t>(pick(static_cast<int>(s.size())))] = "-.: T+eZx"[pick(9)];
    }
    return s;
}

} // namespace

TEST_CASE("binary COPY fields read back as the server would print their text, for 200,000 "
          "near-canonical texts") {
    std::mt19937 rng(20261204);
    const std::vector<BinaryType> types = {BinaryType::int2,    BinaryType::int4,
                                           BinaryType::int8,    BinaryType::numeric,
                                           BinaryType::boolean, BinaryType::timestamp};
    std::size_t accepted = 0;
    for (int i = 0; i < 200000; ++i) {
        const BinaryType type = types[static_cast<std::size_t>(i) % types.size()];
        const sql::Value value =
            type == BinaryType::boolean
                ? std::string(std::vector<const char*>{"1", "0", "t", "f", "true", "false", "yes",
                                                       "", "2"}[rng() % 9])
                : near_miss(rng, type);
        std::string out;
        const bool took = append_binary_field(out, value, type);
        const sql::Value* cell = &value;
        // The batch check takes exactly what the encoder takes.
        REQUIRE(drivers::postgres::binary_encodable({{cell}}, {type}) == took);
        if (!took) {
            continue;
        }
        ++accepted;
        const auto printed = testing::decode_pg_binary(out, type);
        CAPTURE(*value);
        REQUIRE(printed);
        REQUIRE(*printed == testing::expected_pg_text(*value, type));
    }
    // Most of them are taken: the check above is not one that passes on refusals alone.
    CHECK(accepted > 100000);
}
