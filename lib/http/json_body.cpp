#include "lib/http/json_body.hpp"

#include "lib/util/json_doc.hpp"
#include "lib/util/utf8.hpp"

#include <simdjson.h>

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
            // memchr to the next backslash: most bodies have few, and this runs on every body.
            i = text.find('\\', i);
            if (i == std::string::npos) {
                break;
            }
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

namespace {

// Documents simdjson takes nest at most this deep, well below k_max_json_depth, so a document it
// refuses as too deep goes the slow way, which cuts at exactly k_max_json_depth.
constexpr std::size_t k_simdjson_max_depth = 100;
// A parser keeps the buffers of the largest document it has read (about 14 bytes per byte of
// JSON, mostly never touched). Each thread keeps one for documents up to this size.
constexpr std::size_t k_kept_parser_capacity = std::size_t{1} << 20;

// Whether `text` may hold the number -0 (an integer, not -0.0): a minus where a value starts
// (after '[', ',', ':' or at the start, spaces between), a zero, and no digit, point or exponent
// after it. Strings are not told apart (a string may hold ", -0 "), which only costs a slower
// parse; dates and ids ("2026-01-05", "a1-0f") do not match.
bool may_hold_minus_zero(std::string_view text) {
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    for (auto at = text.find("-0"); at != std::string_view::npos; at = text.find("-0", at + 1)) {
        const char next = at + 2 < text.size() ? text[at + 2] : ' ';
        if ((next >= '0' && next <= '9') || next == '.' || next == 'e' || next == 'E') {
            continue;
        }
        auto before = at;
        while (before > 0 && is_space(text[before - 1])) {
            --before;
        }
        if (before == 0 || text[before - 1] == '[' || text[before - 1] == ',' ||
            text[before - 1] == ':') {
            return true;
        }
    }
    return false;
}

// The parser for `text`: the thread's own, kept between calls, or for a large text a one-off
// one made in `one_off_parser`. Null when it cannot be allocated.
simdjson::dom::parser* parser_for(std::string& text,
                                  std::optional<simdjson::dom::parser>& one_off_parser) {
    thread_local simdjson::dom::parser kept_parser;
    thread_local bool kept_parser_ready = false;
    simdjson::dom::parser* parser = &kept_parser;
    if (text.size() > k_kept_parser_capacity) {
        parser = &one_off_parser.emplace();
        if (parser->allocate(text.size(), k_simdjson_max_depth) != simdjson::SUCCESS) {
            return nullptr;
        }
    } else if (!kept_parser_ready) {
        // The depth limit is set here; parse() grows the capacity and keeps it.
        if (kept_parser.allocate(64 << 10, k_simdjson_max_depth) != simdjson::SUCCESS) {
            return nullptr;
        }
        kept_parser_ready = true;
    }
    // simdjson reads up to SIMDJSON_PADDING bytes past the end; reserving them avoids its copy.
    text.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    return parser;
}

// The fast way: simdjson's parse (several times quicker than nlohmann's lexer, which was a fifth
// of a first load's CPU), then nlohmann's document built from it. nullopt when simdjson refuses
// the text (not JSON, too deep, numbers beyond 64 bits) or it may hold -0: the caller then
// parses with nlohmann, so the result never depends on this path.
std::optional<nlohmann::json> parse_with_simdjson(std::string& text) {
    std::optional<simdjson::dom::parser> one_off_parser;
    simdjson::dom::parser* parser = parser_for(text, one_off_parser);
    simdjson::dom::element root;
    if (parser == nullptr ||
        parser->parse(text.data(), text.size(), false).get(root) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    nlohmann::json doc;
    bool saw_zero = false;
    if (!util::json_doc::to_nlohmann(root, doc, saw_zero) ||
        (saw_zero && may_hold_minus_zero(text))) {
        return std::nullopt;
    }
    return doc;
}

// simdjson's document of `text`, kept: null where parse_with_simdjson would refuse the text,
// and also where it might hold -0 (the integer nlohmann keeps signed), so that reading the
// document gives what reading nlohmann's would.
std::shared_ptr<simdjson::dom::document> keep_simdjson_document(std::string& text) {
    if (may_hold_minus_zero(text)) {
        return nullptr;
    }
    std::optional<simdjson::dom::parser> one_off_parser;
    simdjson::dom::parser* parser = parser_for(text, one_off_parser);
    auto doc = std::make_shared<simdjson::dom::document>();
    simdjson::dom::element root;
    if (parser == nullptr ||
        parser->parse_into_document(*doc, text.data(), text.size(), false).get(root) !=
            simdjson::SUCCESS) {
        return nullptr;
    }
    return doc;
}

} // namespace

JsonBody parse_json_body(std::string text, bool keep_simdjson) {
    JsonBody body;
    body.repaired_bytes = static_cast<long>(util::repair_utf8(text));
    body.repaired_bytes += static_cast<long>(replace_lone_surrogates(text));
    if (keep_simdjson) {
        if (auto doc = keep_simdjson_document(text)) {
            body.simdjson_doc = std::move(doc);
            body.parsed_by_simdjson = true;
            return body;
        }
    }
    if (auto doc = parse_with_simdjson(text)) {
        body.doc = std::move(*doc);
        body.parsed_by_simdjson = true;
        return body;
    }
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
