#pragma once

// `filter`, `order` and `select` of Bitrix24 list methods (reference apis.md §1.4): filter keys
// carry an operator prefix (`>ID`, `>=CREATED_TIME`, `@STAGE_ID`, `!%NAME`, ...) and the fake
// compiles them once per request into typed conditions that rows are tested against.

#include "tests/fakes/bitrix24/rest_params.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes::bitrix24 {

enum class FieldKind : std::uint8_t {
    integer,
    text,
    datetime, ///< Epoch seconds; filter values are read with parse_time().
};

struct FieldSpec {
    std::string_view name; ///< Exact, upper case: field names are case-sensitive.
    FieldKind kind;
};

/// One field of one row, as the filter sees it.
struct FieldValue {
    bool null = false;
    std::int64_t number = 0; ///< integer and datetime fields
    std::string_view text;   ///< text fields

    static FieldValue none() { return {true, 0, {}}; }
    static FieldValue of(std::int64_t number) { return {false, number, {}}; }
    static FieldValue of_text(std::string_view text) { return {false, 0, text}; }
};

enum class FilterOp : std::uint8_t {
    equal,         ///< "" and "=": an array value means "one of"; case-sensitive [U: MySQL is not]
    not_equal,     ///< "!" and "!=": an array value means "none of"
    greater,       ///< ">"
    greater_equal, ///< ">="
    less,          ///< "<"
    less_equal,    ///< "<="
    in,            ///< "@"
    not_in,        ///< "!@"
    contains,      ///< "%": LIKE '%value%', case-insensitive
    not_contains,  ///< "!%"
    like,          ///< "=%" and "%=": LIKE with the client's own % and _ wildcards
    not_like,      ///< "!=%" and "!%="
};

struct FilterValue {
    bool null = false;
    std::int64_t number = 0;
    std::string text; ///< The value as sent, for the LIKE operators and text fields.
};

struct Condition {
    std::size_t field = 0; ///< Index into the method's field list.
    FieldKind kind = FieldKind::integer;
    FilterOp op = FilterOp::equal;
    std::vector<FilterValue> values;
    bool never = false; ///< A lenient method met a value it could not read: nothing matches.
};

/// How a method treats what it does not understand. The newer controller-based methods
/// (crm.stagehistory.list, crm.category.list) answer 400 INVALID_ARG_VALUE (reference §1.4);
/// the older REST proxies (crm.status.list, crm.deal.list) silently skip unknown fields and
/// coerce values as PHP does (intval), which is the behaviour of their CCrm*::GetList code.
enum class Strictness : std::uint8_t { strict, lenient };

struct FilterContext {
    Strictness strictness = Strictness::strict;
    int offset_minutes = 0; ///< Zone of datetime values that carry none.
};

/// Compiles `filter` (an object; absent, null or an empty array mean "no filter") into `out`.
/// Returns the error_description for 400 INVALID_ARG_VALUE, or nullopt on success.
std::optional<std::string> compile_filter(const Params* filter, std::span<const FieldSpec> fields,
                                          const FilterContext& context,
                                          std::vector<Condition>& out);

[[nodiscard]] bool matches(const Condition& condition, const FieldValue& value);

struct OrderKey {
    std::size_t field = 0;
    bool descending = false;
};

/// Compiles `order` ({"FIELD":"ASC"|"DESC"}, in the client's key order) into `out`.
/// Returns the error_description for 400 INVALID_ARG_VALUE, or nullopt on success.
std::optional<std::string> compile_order(const Params* order, std::span<const FieldSpec> fields,
                                         Strictness strictness, std::vector<OrderKey>& out);

/// Ordering of two values of one field: null first, as MySQL sorts ascending.
[[nodiscard]] int compare_values(const FieldValue& a, const FieldValue& b);

/// Fields to send, per index: all for an absent or empty select or one holding "*". Unknown
/// names are ignored (reference §1.4 documents no error for them).
std::vector<bool> compile_select(const Params* select, std::span<const FieldSpec> fields);

/// SQL LIKE with % and _, ASCII case-insensitive (MySQL's default collations are).
[[nodiscard]] bool like_match(std::string_view text, std::string_view pattern);

} // namespace crmsync::fakes::bitrix24
