// The bulk-load text encoder (lib/sql/tab_text) in both of its forms: COPY's text format
// (PostgreSQL) and LOAD DATA's (MySQL/MariaDB, NUL escaped). Each row must encode to one line
// that the server's reader decodes back to exactly the same values and NULLs, whatever bytes the
// values hold.

#include "lib/sql/tab_text.hpp"
#include "tests/support/tab_text_decode.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

using namespace crmsync;
using crmsync::testing::decode_tab_text_line;

namespace {

std::string encode(const std::vector<sql::Value>& values, bool load_data) {
    std::vector<const sql::Value*> row;
    for (const auto& v : values) {
        row.push_back(&v);
    }
    std::string out;
    sql::append_tab_text_row(out, row,
                             load_data ? sql::TabTextNul::escaped : sql::TabTextNul::absent);
    return out;
}

// Values every encoder must carry: each byte alone, the escapes inside text and at its ends,
// what looks like an escape or \N, empty text against NULL.
std::vector<std::vector<sql::Value>> hostile_rows(bool with_nul) {
    std::vector<std::vector<sql::Value>> rows;
    for (int b = 0; b < 256; ++b) {
        if (b == 0 && !with_nul) {
            continue; // PostgreSQL text holds no NUL: the writer scrubs them before COPY
        }
        rows.push_back({std::string(1, static_cast<char>(b)), sql::Value{}, std::string("x")});
    }
    rows.push_back({std::string("\\N"), std::string(""), sql::Value{}});
    rows.push_back({std::string("a\tb\nc\rd\\e"), std::string("\\\\t"), std::string("\n\n")});
    rows.push_back({std::string("{\"k\":\"v\\\\\"}"), std::string("\xC3\xA9\xE2\x82\xAC"),
                    std::string("trailing\\")});
    rows.push_back({sql::Value{}});
    rows.push_back({std::string("")});
    // Random text, biased to the bytes that need escaping, from a fixed seed.
    std::mt19937 random(20261204);
    const std::string specials = with_nul ? std::string("\\\t\n\r\0N", 6) : "\\\t\n\rN";
    for (int r = 0; r < 500; ++r) {
        std::vector<sql::Value> row;
        const int columns = 1 + static_cast<int>(random() % 6);
        for (int c = 0; c < columns; ++c) {
            if (random() % 7 == 0) {
                row.emplace_back();
                continue;
            }
            std::string text;
            const int length = static_cast<int>(random() % 40);
            for (int i = 0; i < length; ++i) {
                text += random() % 3 == 0 ? specials[random() % specials.size()]
                                          : static_cast<char>(32 + random() % 95);
            }
            row.emplace_back(std::move(text));
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

} // namespace

TEST_CASE("append_tab_text_row writes one COPY text line that reads back as the same row") {
    for (const auto& row : hostile_rows(false)) {
        const auto line = encode(row, false);
        INFO(line);
        const auto decoded = decode_tab_text_line(line, false);
        REQUIRE(decoded);
        CHECK(*decoded == row);
    }
    CHECK(encode({std::string("a\\b"), sql::Value{}, std::string("c\td")}, false) ==
          "a\\\\b\t\\N\tc\\td\n");
}

TEST_CASE("append_tab_text_row writes one LOAD DATA line that reads back as the same row") {
    for (const auto& row : hostile_rows(true)) {
        const auto line = encode(row, true);
        INFO(line);
        const auto decoded = decode_tab_text_line(line, true);
        REQUIRE(decoded);
        CHECK(*decoded == row);
    }
    CHECK(encode({std::string("a\\b", 3), std::string("n\0l", 3), sql::Value{}}, true) ==
          std::string("a\\\\b\tn\\0l\t\\N\n"));
}
