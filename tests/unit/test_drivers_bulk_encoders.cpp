// The bulk-load text encoders: COPY's text format (drivers/postgres/bulk_copy) and LOAD DATA's
// (drivers/mysql/load_data). Each row must encode to one line that the server's reader decodes
// back to exactly the same values and NULLs, whatever bytes the values hold.

#include "drivers/mysql/load_data.hpp"
#include "drivers/postgres/bulk_copy.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace crmsync;

namespace {

// Reads one encoded line back as the server does. `nul_escape`: LOAD DATA also writes \0.
// Returns nothing when the line is not one the server would read as a single row.
std::optional<std::vector<sql::Value>> decode_line(const std::string& line, bool nul_escape) {
    if (line.empty() || line.back() != '\n') {
        return std::nullopt;
    }
    std::vector<sql::Value> row;
    std::string field;
    bool null = false;
    for (std::size_t i = 0; i + 1 < line.size(); ++i) {
        const char c = line[i];
        if (c == '\t') {
            row.push_back(null ? sql::Value{} : sql::Value{field});
            field.clear();
            null = false;
        } else if (c == '\n' || c == '\r') {
            return std::nullopt; // a raw line break would split the row
        } else if (c == '\\') {
            if (i + 2 >= line.size()) {
                return std::nullopt;
            }
            switch (line[++i]) {
            case 'N':
                if (!field.empty()) {
                    return std::nullopt;
                }
                null = true;
                break;
            case 't':
                field += '\t';
                break;
            case 'n':
                field += '\n';
                break;
            case 'r':
                field += '\r';
                break;
            case '\\':
                field += '\\';
                break;
            case '0':
                if (!nul_escape) {
                    return std::nullopt;
                }
                field += '\0';
                break;
            default:
                return std::nullopt; // an escape neither encoder writes
            }
        } else {
            field += c;
        }
    }
    row.push_back(null ? sql::Value{} : sql::Value{field});
    return row;
}

std::string encode(const std::vector<sql::Value>& values, bool load_data) {
    std::vector<const sql::Value*> row;
    for (const auto& v : values) {
        row.push_back(&v);
    }
    std::string out;
    if (load_data) {
        drivers::mysql::append_load_data_row(out, row);
    } else {
        drivers::postgres::append_copy_row(out, row);
    }
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

TEST_CASE("append_copy_row writes one COPY text line that reads back as the same row") {
    for (const auto& row : hostile_rows(false)) {
        const auto line = encode(row, false);
        INFO(line);
        const auto decoded = decode_line(line, false);
        REQUIRE(decoded);
        CHECK(*decoded == row);
    }
    CHECK(encode({std::string("a\\b"), sql::Value{}, std::string("c\td")}, false) ==
          "a\\\\b\t\\N\tc\\td\n");
}

TEST_CASE("append_load_data_row writes one LOAD DATA line that reads back as the same row") {
    for (const auto& row : hostile_rows(true)) {
        const auto line = encode(row, true);
        INFO(line);
        const auto decoded = decode_line(line, true);
        REQUIRE(decoded);
        CHECK(*decoded == row);
    }
    CHECK(encode({std::string("a\\b", 3), std::string("n\0l", 3), sql::Value{}}, true) ==
          std::string("a\\\\b\tn\\0l\t\\N\n"));
}
