#pragma once

// Request parameters as Bitrix24's PHP back end sees them (reference apis.md §1.1): a query
// string or form body with PHP's bracket syntax (`filter[>ID]=5&select[]=ID`), or a JSON body.
// Both become one ordered JSON object, so that `order` keeps the client's key order. Query
// values are always strings, as in PHP; JSON bodies keep their types.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmsync::fakes::bitrix24 {

using Params = nlohmann::ordered_json;

/// Percent-decoding with '+' as a space (application/x-www-form-urlencoded).
std::string url_decode(std::string_view text);

/// Encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

/// Parses `a=1&b[]=2&b[]=3&c[x][y]=4` into {"a":"1","b":["2","3"],"c":{"x":{"y":"4"}}}.
/// As in PHP: a later duplicate wins, `[]` appends, and a level whose keys are exactly 0..n-1 in
/// order becomes an array. Never throws; malformed pairs are kept as literally as PHP would.
Params parse_php_query(std::string_view text);

/// Copies every top-level key of `from` into `into`, replacing equal keys.
void merge_params(Params& into, const Params& from);

/// Top-level parameter by case-insensitive name (Bitrix accepts `FILTER` and `filter`, §1.1);
/// nullptr if absent.
const Params* find_param(const Params& params, std::string_view name);

/// An integer from a JSON integer, a whole float or a string of digits with optional sign and
/// surrounding blanks; nullopt for anything else.
std::optional<std::int64_t> integer_of(const Params& value);

/// PHP's intval(): leading digits of a string, 0 when there are none; bools as 0/1.
std::int64_t php_intval(const Params& value);

/// Serializes a PHP associative array the way json_encode does: a list when the keys are
/// exactly "0".."n-1" in order, `[]` when empty (reference §1.6), an object otherwise.
/// `values` are already serialized JSON texts.
std::string php_array_json(const std::vector<std::pair<std::string, std::string>>& values);

} // namespace crmsync::fakes::bitrix24
