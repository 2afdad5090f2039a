#include "tests/fakes/bitrix24/rest_filter.hpp"

#include "tests/fakes/bitrix24/rest_time.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace crmsync::fakes::bitrix24 {
namespace {

struct Prefix {
    std::string_view text;
    FilterOp op;
};

// Longest prefixes first, so that "!=%" is not read as "!" + "=%".
constexpr std::array<Prefix, 15> k_prefixes{{
    {"!=%", FilterOp::not_like},
    {"!%=", FilterOp::not_like},
    {"!@", FilterOp::not_in},
    {"!%", FilterOp::not_contains},
    {"!=", FilterOp::not_equal},
    {">=", FilterOp::greater_equal},
    {"<=", FilterOp::less_equal},
    {"=%", FilterOp::like},
    {"%=", FilterOp::like},
    {"@", FilterOp::in},
    {"%", FilterOp::contains},
    {">", FilterOp::greater},
    {"<", FilterOp::less},
    {"=", FilterOp::equal},
    {"!", FilterOp::not_equal},
}};

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool is_pattern_op(FilterOp op) {
    return op == FilterOp::contains || op == FilterOp::not_contains || op == FilterOp::like ||
           op == FilterOp::not_like;
}

bool is_range_op(FilterOp op) {
    return op == FilterOp::greater || op == FilterOp::greater_equal || op == FilterOp::less ||
           op == FilterOp::less_equal;
}

std::optional<std::size_t> field_index(std::span<const FieldSpec> fields, std::string_view name) {
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (fields[i].name == name) {
            return i;
        }
    }
    return std::nullopt;
}

std::string raw_text(const Params& value) {
    if (value.is_string()) {
        return value.get<std::string>();
    }
    if (value.is_boolean()) {
        return value.get<bool>() ? "1" : "";
    }
    if (value.is_null()) {
        return "";
    }
    return value.dump();
}

// False when the value cannot be read as the field's kind.
bool convert(const Params& value, FieldKind kind, FilterOp op, const FilterContext& context,
             FilterValue& out) {
    out.text = raw_text(value);
    if (is_pattern_op(op)) {
        return true;
    }
    if (value.is_null() || (value.is_string() && out.text.empty())) {
        out.null = true; // Bitrix reads an empty value as "IS NULL or empty".
        return true;
    }
    switch (kind) {
    case FieldKind::text:
        return value.is_primitive();
    case FieldKind::integer:
        if (const auto number = integer_of(value)) {
            out.number = *number;
            return true;
        }
        if (context.strictness == Strictness::lenient && value.is_primitive()) {
            out.number = php_intval(value);
            return true;
        }
        return false;
    case FieldKind::datetime:
        if (value.is_string()) {
            if (const auto seconds = parse_time(out.text, context.offset_minutes)) {
                out.number = *seconds;
                return true;
            }
        }
        return false;
    }
    return false;
}

std::string text_of(const FieldValue& value, FieldKind kind) {
    if (value.null) {
        return "";
    }
    return kind == FieldKind::text ? std::string(value.text) : std::to_string(value.number);
}

bool is_empty(const FieldValue& value, FieldKind kind) {
    return value.null || (kind == FieldKind::text && value.text.empty());
}

bool equal(const FieldValue& field, const FilterValue& value, FieldKind kind) {
    if (value.null) {
        return is_empty(field, kind);
    }
    if (field.null) {
        return false;
    }
    return kind == FieldKind::text ? field.text == value.text : field.number == value.number;
}

// <0, 0, >0 like strcmp; callers have checked that neither side is null.
int compare(const FieldValue& field, const FilterValue& value, FieldKind kind) {
    if (kind == FieldKind::text) {
        const auto c = field.text.compare(value.text);
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    return field.number < value.number ? -1 : (field.number > value.number ? 1 : 0);
}

bool contains_ci(std::string_view text, std::string_view needle) {
    return std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                       [](char a, char b) { return lower(a) == lower(b); }) != text.end();
}

} // namespace

bool like_match(std::string_view text, std::string_view pattern) {
    // Iterative wildcard matching with one backtrack point for the last '%'.
    std::size_t t = 0;
    std::size_t p = 0;
    std::size_t star = std::string_view::npos;
    std::size_t star_t = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '_' || lower(pattern[p]) == lower(text[t]))) {
            ++t;
            ++p;
        } else if (p < pattern.size() && pattern[p] == '%') {
            star = p++;
            star_t = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++star_t;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '%') {
        ++p;
    }
    return p == pattern.size();
}

std::optional<std::string> compile_filter(const Params* filter, std::span<const FieldSpec> fields,
                                          const FilterContext& context,
                                          std::vector<Condition>& out) {
    out.clear();
    if (filter == nullptr || filter->is_null() || (filter->is_array() && filter->empty())) {
        return std::nullopt;
    }
    const bool strict = context.strictness == Strictness::strict;
    if (!filter->is_object()) {
        if (strict) {
            return std::string("Invalid filter: filter must be an object");
        }
        return std::nullopt;
    }
    for (const auto& item : filter->items()) {
        std::string_view key = item.key();
        FilterOp op = FilterOp::equal;
        for (const auto& prefix : k_prefixes) {
            if (key.starts_with(prefix.text)) {
                op = prefix.op;
                key.remove_prefix(prefix.text.size());
                break;
            }
        }
        const auto index = field_index(fields, key);
        if (!index) {
            if (strict) {
                return "Invalid filter: field '" + std::string(key) + "' is not allowed in filter";
            }
            continue;
        }
        Condition condition;
        condition.field = *index;
        condition.kind = fields[*index].kind;
        const auto& value = item.value();
        if (value.is_array() || value.is_object()) {
            if (op == FilterOp::equal) {
                op = FilterOp::in;
            } else if (op == FilterOp::not_equal) {
                op = FilterOp::not_in;
            } else if (op != FilterOp::in && op != FilterOp::not_in) {
                if (strict) {
                    return "Invalid filter: field '" + std::string(key) + "' has invalid value";
                }
                condition.never = true;
            }
        } else if (op == FilterOp::in || op == FilterOp::not_in) {
            op = op == FilterOp::in ? FilterOp::equal : FilterOp::not_equal;
        }
        condition.op = op;
        const auto add = [&](const Params& v) {
            FilterValue converted;
            if (!v.is_primitive() ||
                !convert(v, condition.kind, condition.op, context, converted)) {
                return false;
            }
            condition.values.push_back(std::move(converted));
            return true;
        };
        bool ok = true;
        if (value.is_array() || value.is_object()) {
            for (const auto& v : value) {
                ok = add(v) && ok;
            }
        } else {
            ok = add(value);
        }
        if (!ok) {
            if (strict) {
                return "Invalid filter: field '" + std::string(key) + "' has invalid value";
            }
            condition.never = true;
        }
        if (is_range_op(op) && condition.values.size() != 1) {
            condition.never = true;
        }
        out.push_back(std::move(condition));
    }
    return std::nullopt;
}

bool matches(const Condition& condition, const FieldValue& value) {
    if (condition.never) {
        return false;
    }
    const auto kind = condition.kind;
    const auto any_equal = [&] {
        return std::any_of(condition.values.begin(), condition.values.end(),
                           [&](const FilterValue& v) { return equal(value, v, kind); });
    };
    switch (condition.op) {
    case FilterOp::equal:
    case FilterOp::in:
        return any_equal();
    case FilterOp::not_equal:
    case FilterOp::not_in:
        return !any_equal();
    case FilterOp::greater:
    case FilterOp::greater_equal:
    case FilterOp::less:
    case FilterOp::less_equal: {
        const auto& v = condition.values.front();
        if (value.null || v.null) {
            return false;
        }
        const int c = compare(value, v, kind);
        switch (condition.op) {
        case FilterOp::greater:
            return c > 0;
        case FilterOp::greater_equal:
            return c >= 0;
        case FilterOp::less:
            return c < 0;
        default:
            return c <= 0;
        }
    }
    case FilterOp::contains:
    case FilterOp::not_contains: {
        const auto text = text_of(value, kind);
        const bool hit =
            std::any_of(condition.values.begin(), condition.values.end(),
                        [&](const FilterValue& v) { return contains_ci(text, v.text); });
        return condition.op == FilterOp::contains ? hit : !hit;
    }
    case FilterOp::like:
    case FilterOp::not_like: {
        const auto text = text_of(value, kind);
        const bool hit =
            std::any_of(condition.values.begin(), condition.values.end(),
                        [&](const FilterValue& v) { return like_match(text, v.text); });
        return condition.op == FilterOp::like ? hit : !hit;
    }
    }
    return false;
}

std::optional<std::string> compile_order(const Params* order, std::span<const FieldSpec> fields,
                                         Strictness strictness, std::vector<OrderKey>& out) {
    out.clear();
    if (order == nullptr || order->is_null() || (order->is_array() && order->empty())) {
        return std::nullopt;
    }
    const bool strict = strictness == Strictness::strict;
    if (!order->is_object()) {
        if (strict) {
            return std::string("Invalid order: order must be an object");
        }
        return std::nullopt;
    }
    for (const auto& item : order->items()) {
        const auto index = field_index(fields, item.key());
        if (!index) {
            if (strict) {
                return "Invalid order: field '" + item.key() + "' is not allowed in order";
            }
            continue;
        }
        auto direction = raw_text(item.value());
        std::transform(direction.begin(), direction.end(), direction.begin(), [](char c) {
            return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        });
        if (direction != "ASC" && direction != "DESC") {
            if (strict) {
                return "Invalid order: field '" + item.key() + "' has invalid direction";
            }
            direction = "ASC";
        }
        out.push_back({*index, direction == "DESC"});
    }
    return std::nullopt;
}

int compare_values(const FieldValue& a, const FieldValue& b) {
    if (a.null || b.null) {
        return a.null == b.null ? 0 : (a.null ? -1 : 1);
    }
    if (a.number != b.number) {
        return a.number < b.number ? -1 : 1;
    }
    const auto c = a.text.compare(b.text);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

std::vector<bool> compile_select(const Params* select, std::span<const FieldSpec> fields) {
    std::vector<bool> wanted(fields.size(), false);
    bool any = false;
    const auto take = [&](const Params& name) {
        if (!name.is_string()) {
            return;
        }
        const auto& text = name.get_ref<const std::string&>();
        if (text == "*") {
            std::fill(wanted.begin(), wanted.end(), true);
            any = true;
        } else if (const auto index = field_index(fields, text)) {
            wanted[*index] = true;
            any = true;
        }
    };
    if (select != nullptr) {
        if (select->is_array() || select->is_object()) {
            for (const auto& name : *select) {
                take(name);
            }
        } else {
            take(*select);
        }
    }
    if (!any) {
        std::fill(wanted.begin(), wanted.end(), true);
    }
    return wanted;
}

} // namespace crmsync::fakes::bitrix24
