#include "lib/http/json_body.hpp"

#include "lib/util/utf8.hpp"

#include <optional>

namespace crmsync::http {
namespace {

std::optional<unsigned> hex4(const std::string& text, std::size_t at) {
    if (at + 4 > text.size()) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (std::size_t i = at; i < at + 4; ++i) {
        const char c = text[i];
        unsigned digit = 0;
        if (c >= '0' && c <= '9') {
            digit = static_cast<unsigned>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            digit = static_cast<unsigned>(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            digit = static_cast<unsigned>(c - 'A' + 10);
        } else {
            return std::nullopt;
        }
        value = value * 16 + digit;
    }
    return value;
}

bool is_high(unsigned u) { return u >= 0xD800 && u <= 0xDBFF; }
bool is_low(unsigned u) { return u >= 0xDC00 && u <= 0xDFFF; }

} // namespace

std::size_t replace_lone_surrogates(std::string& text) {
    std::size_t replaced = 0;
    // A backslash outside a string is not JSON anyway, so escapes need no string tracking.
    for (std::size_t i = 0; i + 1 < text.size();) {
        if (text[i] != '\\') {
            ++i;
            continue;
        }
        if (text[i + 1] != 'u') {
            i += 2;
            continue;
        }
        const auto unit = hex4(text, i + 2);
        if (!unit) {
            i += 2;
            continue;
        }
        if (is_high(*unit) && i + 7 < text.size() && text[i + 6] == '\\' && text[i + 7] == 'u') {
            if (const auto next = hex4(text, i + 8); next && is_low(*next)) {
                i += 12;
                continue;
            }
        }
        if (is_high(*unit) || is_low(*unit)) {
            text.replace(i + 2, 4, "fffd");
            ++replaced;
        }
        i += 6;
    }
    return replaced;
}

bool nests_as_deep_as(std::string_view text, int levels) {
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i; // the escaped character, a quote included
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '[':
        case '{':
            if (++depth >= levels) {
                return true;
            }
            break;
        case ']':
        case '}':
            --depth;
            break;
        default:
            break;
        }
    }
    return false;
}

JsonBody parse_json_body(std::string text) {
    JsonBody body;
    body.repaired_bytes = static_cast<long>(util::repair_utf8(text));
    body.repaired_bytes += static_cast<long>(replace_lone_surrogates(text));
    if (!nests_as_deep_as(text, k_max_json_depth)) {
        // Nothing to leave out: the plain parser builds the same document, without a callback
        // for every value (about 15 % of the parse).
        body.doc = nlohmann::json::parse(text, nullptr, false);
        return body;
    }
    bool deep = false;
    std::size_t element = 0;
    bool top_is_array = false;
    const auto callback = [&](int depth, nlohmann::json::parse_event_t event,
                              nlohmann::json& parsed) {
        using event_t = nlohmann::json::parse_event_t;
        if (event == event_t::object_start || event == event_t::array_start) {
            if (depth == 0) {
                top_is_array = event == event_t::array_start;
            }
            if (depth >= k_max_json_depth) {
                deep = true;
                return false;
            }
            return true;
        }
        const bool ends_element = depth == 1 && top_is_array &&
                                  (event == event_t::value || event == event_t::object_end ||
                                   event == event_t::array_end);
        if (ends_element) {
            if (deep) {
                body.too_deep.push_back(element);
            }
            deep = false;
            ++element;
        }
        if (depth == 0 && deep && !top_is_array) {
            body.too_deep.push_back(0);
        }
        (void)parsed;
        return true;
    };
    body.doc = nlohmann::json::parse(text, callback, false);
    return body;
}

} // namespace crmsync::http
