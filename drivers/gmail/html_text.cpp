#include "drivers/gmail/html_text.hpp"

#include "lib/util/ascii.hpp"
#include "lib/util/utf8.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <string_view>

namespace crmsync::drivers::gmail {
namespace {

void append_code_point(std::string& out, std::uint32_t cp) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        cp = 0xFFFD;
    }
    if (cp == 0xA0) {
        out += ' '; // a non-breaking space reads as a space for templates
    } else if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

const std::map<std::string, std::uint32_t, std::less<>>& named_entities() {
    static const std::map<std::string, std::uint32_t, std::less<>> entities{
        {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},
        {"apos", '\''},    {"nbsp", 0xA0},     {"copy", 0xA9},    {"reg", 0xAE},
        {"trade", 0x2122}, {"hellip", 0x2026}, {"ndash", 0x2013}, {"mdash", 0x2014},
        {"lsquo", 0x2018}, {"rsquo", 0x2019},  {"ldquo", 0x201C}, {"rdquo", 0x201D},
        {"bull", 0x2022},  {"euro", 0x20AC},   {"laquo", 0xAB},   {"raquo", 0xBB},
        {"middot", 0xB7},  {"deg", 0xB0},      {"auml", 0xE4},    {"ouml", 0xF6},
        {"uuml", 0xFC},    {"Auml", 0xC4},     {"Ouml", 0xD6},    {"Uuml", 0xDC},
        {"szlig", 0xDF},   {"eacute", 0xE9},   {"egrave", 0xE8},  {"aacute", 0xE1},
        {"oacute", 0xF3},  {"Oacute", 0xD3},   {"ccedil", 0xE7},  {"ntilde", 0xF1},
        {"zwnj", 0x200C},  {"zwj", 0x200D},    {"shy", 0xAD},     {"times", 0xD7}};
    return entities;
}

// Decodes the entity at text[pos] == '&'; returns the characters consumed (0: not an entity).
std::size_t decode_entity_at(std::string_view text, std::size_t pos, std::string& out) {
    const auto semi = text.find(';', pos + 1);
    if (semi == std::string_view::npos || semi - pos > 12) {
        return 0;
    }
    const auto name = text.substr(pos + 1, semi - pos - 1);
    if (name.size() >= 2 && name[0] == '#') {
        std::uint32_t cp = 0;
        const bool hex = name[1] == 'x' || name[1] == 'X';
        const auto digits = name.substr(hex ? 2 : 1);
        const auto [ptr, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
        if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size()) {
            return 0;
        }
        append_code_point(out, cp);
        return semi - pos + 1;
    }
    const auto it = named_entities().find(name);
    if (it == named_entities().end()) {
        return 0;
    }
    append_code_point(out, it->second);
    return semi - pos + 1;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

// The tag's name, lower case, without '/' ("br", "p", "/p" -> "p"); `closing` tells.
std::string tag_name(std::string_view tag, bool& closing) {
    std::size_t i = 0;
    closing = false;
    if (i < tag.size() && tag[i] == '/') {
        closing = true;
        ++i;
    }
    std::size_t end = i;
    while (end < tag.size() && (std::isalnum(static_cast<unsigned char>(tag[end])) != 0)) {
        ++end;
    }
    return util::ascii_lower(tag.substr(i, end - i));
}

bool is_block(const std::string& name) {
    static const char* const blocks[] = {
        "p",   "div",     "tr",         "li",      "h1",      "h2",     "h3",    "h4",
        "h5",  "h6",      "ul",         "ol",      "table",   "hr",     "dt",    "dd",
        "pre", "address", "blockquote", "section", "article", "header", "footer"};
    return std::any_of(std::begin(blocks), std::end(blocks),
                       [&](const char* b) { return name == b; });
}

// Joins the pieces into lines: each line trimmed, blank runs collapsed, ends trimmed.
std::string tidy_lines(const std::string& text) {
    std::string out;
    std::size_t start = 0;
    bool blank_pending = false;
    while (start <= text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        std::string_view line(text.data() + start, end - start);
        while (!line.empty() && is_space(line.front())) {
            line.remove_prefix(1);
        }
        while (!line.empty() && is_space(line.back())) {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            blank_pending = !out.empty();
        } else {
            if (!out.empty()) {
                out += blank_pending ? "\n\n" : "\n";
            }
            out += line;
            blank_pending = false;
        }
        start = end + 1;
    }
    return out;
}

} // namespace

std::string decode_entities(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] == '&') {
            const auto used = decode_entity_at(text, i, out);
            if (used > 0) {
                i += used;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::string html_to_text(std::string_view html) {
    std::string out;
    out.reserve(html.size());
    bool space_pending = false;
    const auto emit_break = [&](const char* what) {
        out += what;
        space_pending = false;
    };
    for (std::size_t i = 0; i < html.size();) {
        const char c = html[i];
        if (c == '<') {
            if (html.substr(i, 4) == "<!--") {
                const auto end = html.find("-->", i + 4);
                i = end == std::string_view::npos ? html.size() : end + 3;
                continue;
            }
            const auto end = html.find('>', i + 1);
            if (end == std::string_view::npos) {
                break; // an unterminated tag: the rest is markup
            }
            bool closing = false;
            const std::string name = tag_name(html.substr(i + 1, end - i - 1), closing);
            i = end + 1;
            if (!closing &&
                (name == "script" || name == "style" || name == "head" || name == "title")) {
                // Skip to the matching end tag: its content is not text.
                const std::string close = "</" + name;
                std::size_t found = i;
                while (true) {
                    found = html.find("</", found);
                    if (found == std::string_view::npos) {
                        i = html.size();
                        break;
                    }
                    if (util::ascii_lower(html.substr(found, close.size())) == close) {
                        const auto gt = html.find('>', found);
                        i = gt == std::string_view::npos ? html.size() : gt + 1;
                        break;
                    }
                    found += 2;
                }
                continue;
            }
            if (name == "br") {
                emit_break("\n");
            } else if (name == "p") {
                // A paragraph stands apart: a blank line around it (tidy_lines merges runs).
                emit_break("\n\n");
            } else if (is_block(name)) {
                if (!out.empty() && out.back() != '\n') {
                    emit_break("\n");
                }
                space_pending = false;
            } else if (name == "td" || name == "th") {
                space_pending = true;
            }
            continue;
        }
        if (is_space(c)) {
            space_pending = true;
            ++i;
            continue;
        }
        if (space_pending && !out.empty() && out.back() != '\n') {
            out += ' ';
        }
        space_pending = false;
        if (c == '&') {
            const auto used = decode_entity_at(html, i, out);
            if (used > 0) {
                i += used;
                continue;
            }
        }
        out += c;
        ++i;
    }
    std::string text = tidy_lines(out);
    util::repair_utf8(text);
    return text;
}

} // namespace crmsync::drivers::gmail
