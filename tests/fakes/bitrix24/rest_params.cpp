#include "tests/fakes/bitrix24/rest_params.hpp"

#include "tests/fakes/common/json_writer.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace crmsync::fakes::bitrix24 {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool is_index(std::string_view key) {
    return !key.empty() && key.size() < 19 &&
           std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
           (key.size() == 1 || key[0] != '0');
}

// PHP's next free index of an array: one more than the largest integer key, or 0.
std::string next_index(const Params& node) {
    std::int64_t next = 0;
    for (const auto& item : node.items()) {
        if (is_index(item.key())) {
            next = std::max<std::int64_t>(next, std::stoll(item.key()) + 1);
        }
    }
    return std::to_string(next);
}

// Objects whose keys are exactly "0".."n-1" in insertion order become arrays, recursively.
void to_lists(Params& node) {
    if (!node.is_object()) {
        return;
    }
    for (auto& item : node.items()) {
        to_lists(item.value());
    }
    std::size_t expected = 0;
    for (const auto& item : node.items()) {
        if (item.key() != std::to_string(expected)) {
            return;
        }
        ++expected;
    }
    if (expected == 0) {
        return; // An empty object stays an object; nothing in a query produces one anyway.
    }
    Params list = Params::array();
    for (auto& item : node.items()) {
        list.push_back(std::move(item.value()));
    }
    node = std::move(list);
}

void insert_pair(Params& root, const std::string& key, std::string value) {
    const auto open = key.find('[');
    if (open == std::string::npos || open == 0 || key.find(']', open) == std::string::npos) {
        if (!key.empty()) {
            root[key] = std::move(value);
        }
        return;
    }
    Params* node = &root[key.substr(0, open)];
    std::size_t pos = open;
    while (pos < key.size() && key[pos] == '[') {
        const auto close = key.find(']', pos);
        if (close == std::string::npos) {
            break; // PHP ignores a trailing unmatched bracket.
        }
        if (!node->is_object()) {
            *node = Params::object();
        }
        auto segment = key.substr(pos + 1, close - pos - 1);
        if (segment.empty()) {
            segment = next_index(*node);
        }
        node = &(*node)[segment];
        pos = close + 1;
    }
    *node = std::move(value);
}

} // namespace

std::string url_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
                   hex_value(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

std::string url_encode(std::string_view text) {
    static constexpr std::string_view k_hex = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += k_hex[u >> 4];
            out += k_hex[u & 15U];
        }
    }
    return out;
}

Params parse_php_query(std::string_view text) {
    Params root = Params::object();
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find('&', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const auto pair = text.substr(start, end - start);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            const auto key = url_decode(pair.substr(0, eq));
            auto value =
                eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
            insert_pair(root, key, std::move(value));
        }
        start = end + 1;
    }
    for (auto& item : root.items()) {
        to_lists(item.value());
    }
    return root;
}

void merge_params(Params& into, const Params& from) {
    if (!from.is_object()) {
        return;
    }
    if (!into.is_object()) {
        into = Params::object();
    }
    for (const auto& item : from.items()) {
        into[item.key()] = item.value();
    }
}

const Params* find_param(const Params& params, std::string_view name) {
    if (!params.is_object()) {
        return nullptr;
    }
    if (const auto it = params.find(std::string(name)); it != params.end()) {
        return &*it;
    }
    for (const auto& item : params.items()) {
        if (iequals(item.key(), name)) {
            return &item.value();
        }
    }
    return nullptr;
}

std::optional<std::int64_t> integer_of(const Params& value) {
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    if (value.is_number_float()) {
        const auto number = value.get<double>();
        if (std::trunc(number) == number && std::fabs(number) < 9.0e18) {
            return static_cast<std::int64_t>(number);
        }
        return std::nullopt;
    }
    if (!value.is_string()) {
        return std::nullopt;
    }
    std::string_view text = value.get_ref<const std::string&>();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
        text.remove_suffix(1);
    }
    bool negative = false;
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    const auto number = std::stoll(std::string(text));
    return negative ? -number : number;
}

std::int64_t php_intval(const Params& value) {
    if (const auto exact = integer_of(value)) {
        return *exact;
    }
    if (value.is_boolean()) {
        return value.get<bool>() ? 1 : 0;
    }
    if (value.is_number_float()) {
        const auto number = value.get<double>();
        return std::isfinite(number) && std::fabs(number) < 9.0e18
                   ? static_cast<std::int64_t>(number)
                   : 0;
    }
    if (!value.is_string()) {
        return 0;
    }
    const auto& text = value.get_ref<const std::string&>();
    std::size_t pos = 0;
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos])) != 0) {
        ++pos;
    }
    const bool negative = pos < text.size() && text[pos] == '-';
    if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
        ++pos;
    }
    std::int64_t number = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos) {
        if (number > std::numeric_limits<std::int64_t>::max() / 10 - 10) {
            break;
        }
        number = number * 10 + (text[pos] - '0');
    }
    return negative ? -number : number;
}

std::string php_array_json(const std::vector<std::pair<std::string, std::string>>& values) {
    if (values.empty()) {
        return "[]";
    }
    bool is_list = true;
    for (std::size_t i = 0; i < values.size() && is_list; ++i) {
        is_list = values[i].first == std::to_string(i);
    }
    std::string out;
    JsonWriter w(out);
    if (is_list) {
        w.begin_array();
        for (const auto& [key, json] : values) {
            w.raw(json);
        }
        w.end_array();
    } else {
        w.begin_object();
        for (const auto& [key, json] : values) {
            w.key(key).raw(json);
        }
        w.end_object();
    }
    return out;
}

} // namespace crmsync::fakes::bitrix24
