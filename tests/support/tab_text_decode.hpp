#pragma once

// Reads a line of tab-separated text back the way PostgreSQL's COPY (text format) and LOAD DATA
// read it, for the tests and the fuzz target of sql::append_tab_text_row.

#include "lib/sql/database.hpp"

#include <optional>
#include <string>
#include <vector>

namespace crmsync::testing {

/// The values of `line` (one encoded row, its newline included), or nothing when a server would
/// not read it as exactly that one row: a raw line break inside, a lone or unknown escape, \N
/// inside a value, \0 unless `nul_escape` (LOAD DATA writes NUL so).
inline std::optional<std::vector<sql::Value>> decode_tab_text_line(const std::string& line,
                                                                   bool nul_escape) {
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
                return std::nullopt; // a lone backslash at the end
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
                return std::nullopt; // an escape the encoder never writes
            }
        } else if (null) {
            return std::nullopt; // \N followed by more text
        } else {
            field += c;
        }
    }
    row.push_back(null ? sql::Value{} : sql::Value{field});
    return row;
}

} // namespace crmsync::testing
