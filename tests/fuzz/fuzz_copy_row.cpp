// The bulk-load text encoder (sql::append_tab_text_row), as COPY and as LOAD DATA write it: any
// row of values and NULLs encodes to exactly one line that the server's reader decodes back to
// the same row.

#include "lib/sql/tab_text.hpp"
#include "tests/support/tab_text_decode.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

using namespace crmsync;

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
    bool has_nul = false;
    for (const auto& v : values) {
        row.push_back(&v);
        has_nul = has_nul || (v && v->find('\0') != std::string::npos);
    }
    for (const auto nul : {sql::TabTextNul::absent, sql::TabTextNul::escaped}) {
        if (nul == sql::TabTextNul::absent && has_nul) {
            continue; // PostgreSQL's writer scrubs NULs before a COPY
        }
        std::string line;
        sql::append_tab_text_row(line, row, nul);
        const auto decoded = testing::decode_tab_text_line(line, nul == sql::TabTextNul::escaped);
        if (!decoded || *decoded != values) {
            std::abort();
        }
    }
    return 0;
}
