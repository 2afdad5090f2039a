#include "lib/sql/tab_text.hpp"

#include <string_view>

namespace crmsync::sql {

void append_tab_text_row(std::string& out, const std::vector<const Value*>& row, TabTextNul nul) {
    const bool escape_nul = nul == TabTextNul::escaped;
    const auto escaped = [escape_nul](char c) {
        return c == '\\' || c == '\t' || c == '\n' || c == '\r' || (c == '\0' && escape_nul);
    };
    for (std::size_t i = 0; i < row.size(); ++i) {
        if (i > 0) {
            out += '\t';
        }
        const Value& value = *row[i];
        if (!value) {
            out += "\\N";
            continue;
        }
        // Runs of plain bytes are appended whole; only the escaped bytes go one by one.
        const std::string_view text = *value;
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t end = start;
            while (end < text.size() && !escaped(text[end])) {
                ++end;
            }
            out.append(text.data() + start, end - start);
            if (end == text.size()) {
                break;
            }
            out += '\\';
            switch (text[end]) {
            case '\t':
                out += 't';
                break;
            case '\n':
                out += 'n';
                break;
            case '\r':
                out += 'r';
                break;
            case '\0':
                out += '0';
                break;
            default:
                out += text[end]; // the backslash itself
            }
            start = end + 1;
        }
    }
    out += '\n';
}

} // namespace crmsync::sql
