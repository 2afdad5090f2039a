// The PostgreSQL COPY text encoder: any row of values and NULLs encodes to exactly one line
// that COPY's text format decodes back to the same row.

#include "drivers/postgres/bulk_copy.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

using namespace crmsync;

namespace {

// COPY FROM's text format, as PostgreSQL reads it (the escapes the encoder writes and \N).
std::vector<sql::Value> decode_line(const std::string& line) {
    std::vector<sql::Value> row;
    std::string field;
    bool escaped_null = false;
    const auto finish = [&] {
        row.push_back(escaped_null ? sql::Value{} : sql::Value{field});
        field.clear();
        escaped_null = false;
    };
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (c == '\t') {
            finish();
        } else if (c == '\\') {
            if (++i == line.size()) {
                std::abort(); // a line never ends in a lone backslash
            }
            switch (line[i]) {
            case 'N':
                if (!field.empty()) {
                    std::abort();
                }
                escaped_null = true;
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
            default:
                std::abort(); // an escape the encoder never writes
            }
        } else if (c == '\n' || c == '\r') {
            std::abort(); // a raw line break would split the row
        } else {
            field += c;
        }
    }
    finish();
    return row;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // Values are separated by 0x1F; a value that is exactly "\x1E" stands for NULL.
    std::vector<sql::Value> values;
    std::string current;
    for (std::size_t i = 0; i <= size; ++i) {
        if (i == size || data[i] == 0x1F) {
            values.push_back(current == "\x1E" ? sql::Value{} : sql::Value{current});
            current.clear();
        } else {
            current += static_cast<char>(data[i]);
        }
    }
    std::vector<const sql::Value*> row;
    for (const auto& v : values) {
        row.push_back(&v);
    }
    std::string out;
    drivers::postgres::append_copy_row(out, row);
    if (out.empty() || out.back() != '\n') {
        std::abort();
    }
    out.pop_back();
    if (decode_line(out) != values) {
        std::abort();
    }
    return 0;
}
