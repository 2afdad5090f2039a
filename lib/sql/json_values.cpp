#include "lib/sql/json_values.hpp"

#include "lib/util/json_doc.hpp"
#include "lib/util/time.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>

namespace crmsync::sql {
namespace {

constexpr std::string_view k_nul_replacement = "\xEF\xBF\xBD";

std::string scrub_nul(std::string text) {
    for (auto pos = text.find('\0'); pos != std::string::npos; pos = text.find('\0', pos)) {
        text.replace(pos, 1, k_nul_replacement);
    }
    return text;
}

void scrub_nul_tree(nlohmann::json& node) {
    if (node.is_string()) {
        auto& s = node.get_ref<std::string&>();
        if (s.find('\0') != std::string::npos) {
            s = scrub_nul(std::move(s));
        }
    } else if (node.is_array()) {
        for (auto& child : node) {
            scrub_nul_tree(child);
        }
    } else if (node.is_object()) {
        nlohmann::json copy = nlohmann::json::object();
        bool renamed = false;
        for (auto it = node.begin(); it != node.end(); ++it) {
            scrub_nul_tree(it.value());
            if (it.key().find('\0') != std::string::npos) {
                renamed = true;
            }
        }
        if (renamed) {
            for (auto it = node.begin(); it != node.end(); ++it) {
                copy[scrub_nul(it.key())] = it.value();
            }
            node = std::move(copy);
        }
    }
}

std::string describe(const nlohmann::json& value) {
    std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return text.size() > 40 ? text.substr(0, 40) + "..." : text;
}

std::string describe(simdjson::dom::element value) {
    return describe(util::json_doc::Simdjson::to_nlohmann(value));
}

// Whether a normalized decimal without fraction lies in the 64-bit integer range.
bool fits_int64(std::string_view number) {
    const bool negative = !number.empty() && number.front() == '-';
    const std::string_view digits = number.substr(negative ? 1 : 0);
    const std::string_view limit = negative ? "9223372036854775808" : "9223372036854775807";
    return digits.size() < limit.size() || (digits.size() == limit.size() && digits <= limit);
}

template <typename Value>
bool fail(std::string& problem, std::string_view expected, const Value& value) {
    problem = fmt::format("expected {}, got {}", expected, describe(value));
    return false;
}

} // namespace

std::optional<std::string> normalize_decimal(std::string_view text) {
    std::size_t i = 0;
    std::string sign;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
        sign = text[i] == '-' ? "-" : "";
        ++i;
    }
    std::string digits;
    long long point = -1;
    for (; i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.');
         ++i) {
        if (text[i] == '.') {
            if (point >= 0) {
                return std::nullopt;
            }
            point = static_cast<long long>(digits.size());
        } else {
            digits += text[i];
        }
    }
    if (digits.empty()) {
        return std::nullopt;
    }
    if (point < 0) {
        point = static_cast<long long>(digits.size());
    }
    if (i < text.size()) {
        if (text[i] != 'e' && text[i] != 'E') {
            return std::nullopt;
        }
        ++i;
        bool negative = false;
        if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
            negative = text[i] == '-';
            ++i;
        }
        if (i >= text.size() || text.size() - i > 5) {
            return std::nullopt;
        }
        long long exponent = 0;
        for (; i < text.size(); ++i) {
            if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
                return std::nullopt;
            }
            exponent = exponent * 10 + (text[i] - '0');
        }
        point += negative ? -exponent : exponent;
    }
    if (point <= 0) {
        digits.insert(0, static_cast<std::size_t>(-point) + 1, '0');
        point = 1;
    } else if (point > static_cast<long long>(digits.size())) {
        digits.append(static_cast<std::size_t>(point) - digits.size(), '0');
    }
    std::string int_part = digits.substr(0, static_cast<std::size_t>(point));
    std::string frac_part = digits.substr(static_cast<std::size_t>(point));
    while (int_part.size() > 1 && int_part.front() == '0') {
        int_part.erase(0, 1);
    }
    while (!frac_part.empty() && frac_part.back() == '0') {
        frac_part.pop_back();
    }
    if (int_part == "0" && frac_part.empty()) {
        sign.clear();
    }
    return sign + int_part + (frac_part.empty() ? "" : "." + frac_part);
}

namespace {

template <typename Doc> std::string json_text(typename Doc::Arg value);

// The integer's digits, as dump() writes them.
template <typename Doc> std::string integer_text(typename Doc::Arg value) {
    return util::json_doc::Kind::int64 == Doc::kind(value) ? std::to_string(Doc::int64(value))
                                                           : std::to_string(Doc::uint64(value));
}

template <typename Doc>
bool column_value(typename Doc::Arg value, ColumnType type, Value& out, std::string& problem) {
    using util::json_doc::Kind;
    out.reset();
    const Kind kind = Doc::kind(value);
    if (kind == Kind::null) {
        return true;
    }
    const bool is_string = kind == Kind::string;
    const bool is_integer = kind == Kind::int64 || kind == Kind::uint64;
    const bool empty_string = is_string && Doc::string(value).empty();
    switch (type) {
    case ColumnType::key:
        if (is_string) {
            out = scrub_nul(std::string(Doc::string(value)));
            return true;
        }
        if (is_integer) {
            out = integer_text<Doc>(value);
            return true;
        }
        return fail(problem, "an identifier", value);
    case ColumnType::text:
        if (is_string) {
            out = scrub_nul(std::string(Doc::string(value)));
        } else if (kind == Kind::boolean) {
            out = Doc::boolean(value) ? "true" : "false";
        } else {
            out = json_text<Doc>(value);
        }
        return true;
    case ColumnType::number:
    case ColumnType::integer: {
        if (empty_string) {
            return true;
        }
        std::optional<std::string> number;
        if (is_integer) {
            number = integer_text<Doc>(value);
        } else if (kind == Kind::floating) {
            number = normalize_decimal(fmt::format("{}", Doc::floating(value)));
        } else if (is_string) {
            number = normalize_decimal(Doc::string(value));
        }
        if (!number) {
            return fail(problem, type == ColumnType::integer ? "an integer" : "a number", value);
        }
        if (type == ColumnType::integer && number->find('.') != std::string::npos) {
            return fail(problem, "an integer", value);
        }
        if (type == ColumnType::integer && !fits_int64(*number)) {
            return fail(problem, "a 64-bit integer", value);
        }
        out = std::move(number);
        return true;
    }
    case ColumnType::boolean:
        if (empty_string) {
            return true;
        }
        if (kind == Kind::boolean) {
            out = Doc::boolean(value) ? "1" : "0";
            return true;
        }
        if ((kind == Kind::int64 && (Doc::int64(value) == 0 || Doc::int64(value) == 1)) ||
            (kind == Kind::uint64 && (Doc::uint64(value) == 0 || Doc::uint64(value) == 1))) {
            out = integer_text<Doc>(value);
            return true;
        }
        if (is_string) {
            const auto s = Doc::string(value);
            if (s == "true" || s == "1") {
                out = "1";
                return true;
            }
            if (s == "false" || s == "0") {
                out = "0";
                return true;
            }
        }
        return fail(problem, "a boolean", value);
    case ColumnType::timestamp:
        if (empty_string) {
            return true;
        }
        if (is_string) {
            if (const auto t = util::parse_iso8601(Doc::string(value))) {
                std::string text = util::format_sql_timestamp(*t);
                // A zone offset can carry 9999-12-31 into a year no column type holds.
                if (text.size() < 5 || text[4] != '-' || text.front() == '-') {
                    return fail(problem, "a time between the years 0 and 9999", value);
                }
                out = std::move(text);
                return true;
            }
        }
        return fail(problem, "an ISO-8601 time", value);
    case ColumnType::json:
        out = json_text<Doc>(value);
        return true;
    }
    return fail(problem, "a known type", value);
}

} // namespace

bool to_column_value(const nlohmann::json& value, ColumnType type, Value& out,
                     std::string& problem) {
    return column_value<util::json_doc::Nlohmann>(value, type, out, problem);
}

namespace {

constexpr auto k_replace_invalid = nlohmann::json::error_handler_t::replace;

// nlohmann's own writer, the one dump() uses, writing straight into a string. One per text: a
// dump() per member would build a writer (with a localeconv() call) and a string each time.
// (detail:: is nlohmann's internal API; the package's version is fixed.)
using JsonWriter = nlohmann::detail::serializer<nlohmann::json>;

JsonWriter writer_into(std::string& out) {
    return JsonWriter(nlohmann::detail::output_adapter<char, std::string>(out), ' ',
                      k_replace_invalid);
}

// How a JSON string writes each byte: 0 as it is, else the letter after the backslash (u for
// a four-digit code). The same escapes as nlohmann's dump() without ensure_ascii.
constexpr std::array<char, 256> k_json_escape = [] {
    std::array<char, 256> escape{};
    for (int c = 0; c < 0x20; ++c) {
        escape[static_cast<std::size_t>(c)] = 'u';
    }
    escape['\b'] = 'b';
    escape['\t'] = 't';
    escape['\n'] = 'n';
    escape['\f'] = 'f';
    escape['\r'] = 'r';
    escape['"'] = '"';
    escape['\\'] = '\\';
    return escape;
}();

// True when a byte of `word` needs an escape in a JSON string: below 0x20, '"' or '\\'.
// Exact as a whole (which byte it is, the caller finds byte by byte).
constexpr bool word_needs_escape(std::uint64_t word) {
    constexpr std::uint64_t k_ones = 0x0101010101010101ULL;
    constexpr std::uint64_t k_highs = 0x8080808080808080ULL;
    const auto has_zero_byte = [](std::uint64_t v) { return (v - k_ones) & ~v & k_highs; };
    const std::uint64_t below_space = (word - k_ones * 0x20) & ~word & k_highs;
    return (below_space | has_zero_byte(word ^ (k_ones * '"')) |
            has_zero_byte(word ^ (k_ones * '\\'))) != 0;
}

// Writes `text` as a JSON string, as dump() would. Plain runs are appended whole, found eight
// bytes at a time: nlohmann's writer decodes every byte through its UTF-8 automaton, which was
// the single largest cost of writing _raw texts. A text with bytes over 0x7F is checked for
// valid UTF-8 afterwards; an invalid one (which the API's parsed values never hold) is written
// again by nlohmann's writer, for its replacement characters.
void write_string(JsonWriter& writer, std::string& out, std::string_view text) {
    static constexpr char k_hex[] = "0123456789abcdef";
    const std::size_t start = out.size();
    out += '"';
    const char* run = text.data();
    const char* const end = run + text.size();
    const char* p = run;
    std::uint64_t seen_bits = 0; // every byte ORed in: a high bit tells of a non-ASCII byte
    while (p != end) {
        if (end - p >= 8) {
            std::uint64_t word = 0;
            std::memcpy(&word, p, sizeof word);
            if (!word_needs_escape(word)) {
                seen_bits |= word;
                p += 8;
                continue;
            }
        }
        // A word with an escape (or the tail): byte by byte.
        for (const char* const stop = end - p >= 8 ? p + 8 : end; p != stop; ++p) {
            const auto byte = static_cast<unsigned char>(*p);
            seen_bits |= byte;
            const char escape = k_json_escape[byte];
            if (escape == 0) {
                continue;
            }
            out.append(run, p);
            out += '\\';
            out += escape;
            if (escape == 'u') {
                out += "00";
                out += k_hex[byte >> 4];
                out += k_hex[byte & 0xF];
            }
            run = p + 1;
        }
    }
    out.append(run, end);
    out += '"';
    if ((seen_bits & 0x8080808080808080ULL) != 0 && !util::is_valid_utf8(text)) {
        out.resize(start);
        writer.dump(nlohmann::json(std::string(text)), false, false, 0);
    }
}

std::atomic<JsonMemberOrder> g_member_order{JsonMemberOrder::by_name};

bool by_name() {
    return g_member_order.load(std::memory_order_relaxed) == JsonMemberOrder::by_name;
}

// Calls visit(name, member) for each member of `object` in the order g_member_order sets.
template <typename Visit> void for_each_member(const nlohmann::json& value, Visit visit) {
    const auto& object = value.get_ref<const nlohmann::json::object_t&>();
    if (by_name() || object.size() < 2) {
        for (const auto& [key, member] : object) {
            visit(std::string_view(key), member);
        }
        return;
    }
    // The map holds the members by name already: ordering them by length alone, keeping that
    // order among names of one length, gives jsonb's order.
    using Member = nlohmann::json::object_t::value_type;
    constexpr std::size_t k_on_stack = 64;
    std::array<const Member*, k_on_stack> on_stack{};
    std::vector<const Member*> on_heap;
    const Member** members = on_stack.data();
    if (object.size() > k_on_stack) {
        on_heap.resize(object.size());
        members = on_heap.data();
    }
    std::size_t n = 0;
    for (const auto& member : object) {
        members[n++] = &member;
    }
    // Insertion sort: stable, and no allocation (std::stable_sort takes a buffer each call).
    for (std::size_t i = 1; i < n; ++i) {
        const Member* moving = members[i];
        std::size_t j = i;
        for (; j > 0 && members[j - 1]->first.size() > moving->first.size(); --j) {
            members[j] = members[j - 1];
        }
        members[j] = moving;
    }
    for (std::size_t i = 0; i < n; ++i) {
        visit(std::string_view(members[i]->first), members[i]->second);
    }
}

template <typename Visit> void for_each_member(simdjson::dom::element value, Visit visit) {
    using util::json_doc::Simdjson;
    const Simdjson::Members members(value, by_name() ? Simdjson::Order::by_name
                                                     : Simdjson::Order::by_length_then_name);
    for (std::size_t i = 0; i < members.size(); ++i) {
        const auto [name, member] = members[i];
        visit(name, member);
    }
}

template <typename Integer> void write_integer(std::string& out, Integer number) {
    std::array<char, 24> digits{};
    const auto result = std::to_chars(digits.data(), digits.data() + digits.size(), number);
    out.append(digits.data(), result.ptr);
}

// Floats (rare in API records and subtle to format) and binary values: nlohmann's writer.
void write_other(JsonWriter& writer, const nlohmann::json& value) {
    writer.dump(value, false, false, 0);
}

void write_other(JsonWriter& writer, simdjson::dom::element value) {
    writer.dump(util::json_doc::Simdjson::to_nlohmann(value), false, false, 0);
}

// Writes `value` as dump(-1, ' ', false, replace) would.
template <typename Doc>
void write_value(JsonWriter& writer, std::string& out, typename Doc::Arg value) {
    using util::json_doc::Kind;
    switch (Doc::kind(value)) {
    case Kind::object: {
        out += '{';
        bool first = true;
        for_each_member(value, [&](std::string_view key, typename Doc::Arg member) {
            if (!first) {
                out += ',';
            }
            first = false;
            write_string(writer, out, key);
            out += ':';
            write_value<Doc>(writer, out, member);
        });
        out += '}';
        return;
    }
    case Kind::array: {
        out += '[';
        bool first = true;
        Doc::items(value, [&](typename Doc::Arg item) {
            if (!first) {
                out += ',';
            }
            first = false;
            write_value<Doc>(writer, out, item);
        });
        out += ']';
        return;
    }
    case Kind::string:
        write_string(writer, out, Doc::string(value));
        return;
    case Kind::boolean:
        out += Doc::boolean(value) ? "true" : "false";
        return;
    case Kind::null:
        out += "null";
        return;
    case Kind::int64:
        write_integer(out, Doc::int64(value));
        return;
    case Kind::uint64:
        write_integer(out, Doc::uint64(value));
        return;
    case Kind::floating:
    case Kind::other:
        write_other(writer, value);
        return;
    }
}

template <typename Doc> std::string dump_compact(typename Doc::Arg value) {
    std::string text;
    auto writer = writer_into(text);
    write_value<Doc>(writer, text, value);
    return text;
}

template <typename Doc> std::string json_text(typename Doc::Arg value) {
    std::string text = dump_compact<Doc>(value);
    if (text.find("\\u0000") == std::string::npos) {
        return text;
    }
    // NULs to scrub (rare): the slow way, on a copy.
    nlohmann::json copy = Doc::to_nlohmann(value);
    scrub_nul_tree(copy);
    return dump_compact<util::json_doc::Nlohmann>(copy);
}

// Writes `value` as dump() would, leaving out what `prune` names (null: nothing). `writer`
// appends to `out`, and everything a dump() call writes is in `out` when it returns.
template <typename Doc>
void write_pruned(JsonWriter& writer, std::string& out, typename Doc::Arg value,
                  const JsonPrune* prune) {
    if (prune == nullptr || Doc::kind(value) != util::json_doc::Kind::object) {
        write_value<Doc>(writer, out, value);
        return;
    }
    out += '{';
    bool first = true;
    for_each_member(value, [&](std::string_view key, typename Doc::Arg member) {
        if (std::find(prune->drop.begin(), prune->drop.end(), key) != prune->drop.end()) {
            return;
        }
        if (!first) {
            out += ',';
        }
        first = false;
        write_string(writer, out, key);
        out += ':';
        const JsonPrune* items = nullptr;
        for (const auto& [name, of_items] : prune->items_of) {
            items = name == key ? &of_items : items;
        }
        if (items == nullptr || Doc::kind(member) != util::json_doc::Kind::array) {
            write_value<Doc>(writer, out, member);
            return;
        }
        out += '[';
        bool first_item = true;
        Doc::items(member, [&](typename Doc::Arg item) {
            if (!first_item) {
                out += ',';
            }
            first_item = false;
            write_pruned<Doc>(writer, out, item, items);
        });
        out += ']';
    });
    out += '}';
}

void apply_prune(nlohmann::json& value, const JsonPrune& prune) {
    if (!value.is_object()) {
        return;
    }
    for (const auto& name : prune.drop) {
        value.erase(name);
    }
    for (const auto& [name, items] : prune.items_of) {
        const auto member = value.find(name);
        if (member != value.end() && member->is_array()) {
            for (auto& item : *member) {
                apply_prune(item, items);
            }
        }
    }
}

template <typename Doc>
std::string json_text_pruned(typename Doc::Arg value, const JsonPrune& prune) {
    std::string text;
    auto writer = writer_into(text);
    write_pruned<Doc>(writer, text, value, &prune);
    if (text.find("\\u0000") == std::string::npos) {
        return text;
    }
    // NULs to scrub (rare): the slow way, on a copy.
    nlohmann::json copy = Doc::to_nlohmann(value);
    apply_prune(copy, prune);
    return json_text<util::json_doc::Nlohmann>(copy);
}

// Which columns read which member of a record, built once from a table's sources, so that a
// record in simdjson's document is walked once per row. Simdjson::find walks the whole object
// for each column (a repeated name's last value may come last), which made the lookups the
// largest cost of a first load.
class SourceIndex {
public:
    explicit SourceIndex(const std::vector<std::string>& sources) : m_sources(sources) {
        std::size_t capacity = 8;
        while (capacity < 2 * sources.size()) {
            capacity *= 2;
        }
        m_slots.assign(capacity, Slot{});
        m_next_column.assign(sources.size(), k_none);
        // Backwards, so each name's chain lists its columns in table order.
        for (std::size_t column = sources.size(); column-- > 0;) {
            if (sources[column].empty()) {
                continue;
            }
            Slot& slot = m_slots[find_slot(sources[column])];
            if (slot.first_column != k_none) {
                m_next_column[column] = slot.first_column;
            }
            slot.hash = hash_of(sources[column]);
            slot.first_column = static_cast<std::uint32_t>(column);
        }
    }

    // Whether this index was built from these sources (a spec's sources may change between
    // rows, and an address may be reused by another spec).
    bool built_from(const std::vector<std::string>& sources) const { return m_sources == sources; }

    // visit(column) for each column whose source is `name`.
    template <typename Visit> void columns_of(std::string_view name, Visit&& visit) const {
        for (std::uint32_t column = m_slots[find_slot(name)].first_column; column != k_none;
             column = m_next_column[column]) {
            visit(std::size_t{column});
        }
    }

private:
    static constexpr std::uint32_t k_none = UINT32_MAX;
    struct Slot {
        std::size_t hash = 0;
        std::uint32_t first_column = k_none; // k_none: an empty slot
    };

    static std::size_t hash_of(std::string_view name) {
        return std::hash<std::string_view>{}(name);
    }

    // The slot holding `name`, or the empty slot where it would go (open addressing, at most
    // half full).
    std::size_t find_slot(std::string_view name) const {
        const std::size_t hash = hash_of(name);
        const std::size_t mask = m_slots.size() - 1;
        for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
            const Slot& slot = m_slots[i];
            if (slot.first_column == k_none ||
                (slot.hash == hash && m_sources[slot.first_column] == name)) {
                return i;
            }
        }
    }

    std::vector<std::string> m_sources;
    std::vector<Slot> m_slots;
    std::vector<std::uint32_t> m_next_column; // the next column with the same source
};

// The index of `spec`'s sources, kept per thread for the few tables a run writes.
const SourceIndex& source_index(const TableSpec& spec) {
    constexpr std::size_t k_kept = 32;
    thread_local std::vector<std::pair<const TableSpec*, std::unique_ptr<SourceIndex>>> kept;
    for (auto& [owner, index] : kept) {
        if (owner == &spec) {
            if (!index->built_from(spec.sources)) {
                index = std::make_unique<SourceIndex>(spec.sources);
            }
            return *index;
        }
    }
    if (kept.size() == k_kept) {
        kept.erase(kept.begin());
    }
    kept.emplace_back(&spec, std::make_unique<SourceIndex>(spec.sources));
    return *kept.back().second;
}

// The member of `record` each column reads, for the columns with a source: one walk over the
// record, a repeated name ending with its last value as Simdjson::find gives it. Indexed like
// spec.table.columns; a vector of the thread's, valid until the next call.
const std::vector<std::optional<simdjson::dom::element>>&
members_by_column(const TableSpec& spec, simdjson::dom::element record) {
    thread_local std::vector<std::optional<simdjson::dom::element>> found;
    found.assign(spec.sources.size(), std::nullopt);
    const SourceIndex& index = source_index(spec);
    for (const auto field : simdjson::dom::object(record)) {
        index.columns_of(field.key, [&](std::size_t column) { found[column] = field.value; });
    }
    return found;
}

// row_from_json for either kind of `computed`: Computed is a const map (values copied) or a
// non-const one (values moved).
template <typename Doc, typename Computed>
bool fill_row(const TableSpec& spec, typename Doc::Arg record, Computed& computed, Row& out,
              std::string& problem) {
    constexpr bool walk_once = std::is_same_v<Doc, util::json_doc::Simdjson>;
    const auto& columns = spec.table.columns;
    out.assign(columns.size(), std::nullopt);
    const bool is_object = Doc::kind(record) == util::json_doc::Kind::object;
    const std::vector<std::optional<simdjson::dom::element>>* members = nullptr;
    if constexpr (walk_once) {
        if (is_object) {
            members = &members_by_column(spec, record);
        }
    }
    for (std::size_t i = 0; i < columns.size(); ++i) {
        const std::string& source = spec.sources[i];
        if (source.empty()) {
            if (const auto it = computed.find(columns[i].name); it != computed.end()) {
                if constexpr (std::is_const_v<Computed>) {
                    out[i] = it->second;
                } else {
                    out[i] = std::move(it->second);
                }
                // Drivers build these from API text: a NUL would end the value when bound and
                // break COPY, so it becomes U+FFFD as in every other column.
                if (out[i] && out[i]->find('\0') != std::string::npos) {
                    out[i] = scrub_nul(std::move(*out[i]));
                }
            }
            continue;
        }
        if (!is_object) {
            continue;
        }
        const auto field = [&] {
            if constexpr (walk_once) {
                return (*members)[i];
            } else {
                return Doc::find(record, source);
            }
        }();
        if (!field) {
            continue;
        }
        std::string why;
        if (!column_value<Doc>(*field, columns[i].type, out[i], why)) {
            problem = columns[i].name + ": " + why;
            return false;
        }
    }
    return true;
}

} // namespace

void set_json_member_order(JsonMemberOrder order) {
    g_member_order.store(order, std::memory_order_relaxed);
}

std::string to_json_text(const nlohmann::json& record) {
    return json_text<util::json_doc::Nlohmann>(record);
}

template <SimdjsonElement E> std::string to_json_text(const E& record) {
    return json_text<util::json_doc::Simdjson>(record);
}
template std::string to_json_text(const simdjson::dom::element&);

std::string to_json_text_pruned(const nlohmann::json& value, const JsonPrune& prune) {
    return json_text_pruned<util::json_doc::Nlohmann>(value, prune);
}

template <SimdjsonElement E>
std::string to_json_text_pruned(const E& value, const JsonPrune& prune) {
    return json_text_pruned<util::json_doc::Simdjson>(value, prune);
}
template std::string to_json_text_pruned(const simdjson::dom::element&, const JsonPrune&);

std::string to_json_text_without(const nlohmann::json& object,
                                 std::initializer_list<const char*> left_out) {
    return to_json_text_pruned(object, JsonPrune{{left_out.begin(), left_out.end()}, {}});
}

template <SimdjsonElement E>
std::string to_json_text_without(const E& object, std::initializer_list<const char*> left_out) {
    return to_json_text_pruned(object, JsonPrune{{left_out.begin(), left_out.end()}, {}});
}
template std::string to_json_text_without(const simdjson::dom::element&,
                                          std::initializer_list<const char*>);

bool row_from_json(const TableSpec& spec, const nlohmann::json& record,
                   const std::map<std::string, Value>& computed, Row& out, std::string& problem) {
    return fill_row<util::json_doc::Nlohmann>(spec, record, computed, out, problem);
}

bool row_from_json(const TableSpec& spec, const nlohmann::json& record,
                   std::map<std::string, Value>&& computed, Row& out, std::string& problem) {
    return fill_row<util::json_doc::Nlohmann>(spec, record, computed, out, problem);
}

template <SimdjsonElement E>
bool row_from_json(const TableSpec& spec, const E& record, std::map<std::string, Value>&& computed,
                   Row& out, std::string& problem) {
    return fill_row<util::json_doc::Simdjson>(spec, record, computed, out, problem);
}
template bool row_from_json(const TableSpec&, const simdjson::dom::element&,
                            std::map<std::string, Value>&&, Row&, std::string&);

} // namespace crmsync::sql
