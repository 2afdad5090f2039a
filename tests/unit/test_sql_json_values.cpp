#include "lib/sql/json_values.hpp"
#include "lib/util/utf8.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

using crmsync::sql::ColumnType;
using crmsync::sql::Value;
using nlohmann::json;
namespace sql = crmsync::sql;
namespace util = crmsync::util;

namespace {

const std::string k_fffd = "\xEF\xBF\xBD";

// The converted value, or "<rejected: problem>" so failures read well.
std::string convert(const json& value, ColumnType type) {
    Value out = std::string("stale");
    std::string problem;
    if (!sql::to_column_value(value, type, out, problem)) {
        CHECK_FALSE(problem.empty());
        return "<rejected: " + problem + ">";
    }
    return out ? *out : "<NULL>";
}

bool rejected(const json& value, ColumnType type) {
    return convert(value, type).rfind("<rejected", 0) == 0;
}

} // namespace

TEST_CASE("sql::to_column_value for numbers", "[unit]") {
    SECTION("integers are written in full") {
        CHECK(convert(42, ColumnType::number) == "42");
        CHECK(convert(-7, ColumnType::number) == "-7");
        CHECK(convert(9007199254740993LL, ColumnType::number) == "9007199254740993");
        CHECK(convert(18446744073709551615ULL, ColumnType::number) == "18446744073709551615");
    }
    SECTION("floats are written as plain decimals") {
        CHECK(convert(12.5, ColumnType::number) == "12.5");
        CHECK(convert(0.1, ColumnType::number) == "0.1");
        CHECK(convert(-0.25, ColumnType::number) == "-0.25");
        CHECK(convert(1e20, ColumnType::number) == "100000000000000000000");
        CHECK(convert(1.5e-7, ColumnType::number) == "0.00000015");
    }
    SECTION("numeric strings are normalised, exponent forms included") {
        CHECK(convert("12.50", ColumnType::number) == "12.5");
        CHECK(convert("007", ColumnType::number) == "7");
        CHECK(convert("1e3", ColumnType::number) == "1000");
        CHECK(convert("1.5E-2", ColumnType::number) == "0.015");
        CHECK(convert("-2.5e+2", ColumnType::number) == "-250");
    }
    SECTION("a non-numeric string is rejected with a problem naming the value") {
        Value out;
        std::string problem;
        CHECK_FALSE(sql::to_column_value(json("abc"), ColumnType::number, out, problem));
        CHECK(problem.find("abc") != std::string::npos);
        CHECK(problem.find("number") != std::string::npos);
        CHECK_FALSE(out.has_value());
    }
    SECTION("booleans, objects and arrays are not numbers") {
        CHECK(rejected(true, ColumnType::number));
        CHECK(rejected(json::object({{"a", 1}}), ColumnType::number));
        CHECK(rejected(json::array({1}), ColumnType::number));
        CHECK(rejected("12abc", ColumnType::number));
        CHECK(rejected("1,5", ColumnType::number));
    }
    SECTION("an empty string and null are NULL") {
        CHECK(convert("", ColumnType::number) == "<NULL>");
        CHECK(convert(nullptr, ColumnType::number) == "<NULL>");
    }
    SECTION("integer columns take whole numbers only") {
        CHECK(convert(12, ColumnType::integer) == "12");
        CHECK(convert("12.0", ColumnType::integer) == "12");
        CHECK(convert(3.0, ColumnType::integer) == "3");
        CHECK(convert("1e3", ColumnType::integer) == "1000");
        CHECK(rejected(12.5, ColumnType::integer));
        CHECK(rejected("12.5", ColumnType::integer));
        CHECK(convert("", ColumnType::integer) == "<NULL>");
    }
    SECTION("integer columns reject whole numbers beyond 64 bits") {
        CHECK(rejected(1e30, ColumnType::integer));
        CHECK(rejected("1e30", ColumnType::integer));
        CHECK(rejected("9223372036854775808", ColumnType::integer));
        CHECK(convert("9223372036854775807", ColumnType::integer) == "9223372036854775807");
        CHECK(convert("-9223372036854775808", ColumnType::integer) == "-9223372036854775808");
        CHECK(rejected("-9223372036854775809", ColumnType::integer));
    }
}

TEST_CASE("sql::to_column_value for booleans", "[unit]") {
    SECTION("true and false become 1 and 0") {
        CHECK(convert(true, ColumnType::boolean) == "1");
        CHECK(convert(false, ColumnType::boolean) == "0");
    }
    SECTION("0, 1 and their strings are accepted") {
        CHECK(convert(1, ColumnType::boolean) == "1");
        CHECK(convert(0, ColumnType::boolean) == "0");
        CHECK(convert("true", ColumnType::boolean) == "1");
        CHECK(convert("false", ColumnType::boolean) == "0");
        CHECK(convert("1", ColumnType::boolean) == "1");
        CHECK(convert("0", ColumnType::boolean) == "0");
    }
    SECTION("anything else is rejected") {
        CHECK(rejected("yes", ColumnType::boolean));
        CHECK(rejected(2, ColumnType::boolean));
        CHECK(rejected(0.5, ColumnType::boolean));
        CHECK(rejected(json::object(), ColumnType::boolean));
    }
    SECTION("an empty string and null are NULL") {
        CHECK(convert("", ColumnType::boolean) == "<NULL>");
        CHECK(convert(nullptr, ColumnType::boolean) == "<NULL>");
    }
}

TEST_CASE("sql::to_column_value for timestamps", "[unit]") {
    SECTION("ISO-8601 times become YYYY-MM-DD HH:MM:SS.mmm in UTC") {
        CHECK(convert("2024-01-01T10:00:00.123Z", ColumnType::timestamp) ==
              "2024-01-01 10:00:00.123");
        CHECK(convert("2024-01-01T12:00:00+02:00", ColumnType::timestamp) ==
              "2024-01-01 10:00:00.000");
        CHECK(convert("2024-01-01 10:00:00", ColumnType::timestamp) == "2024-01-01 10:00:00.000");
        CHECK(convert("2024-01-01", ColumnType::timestamp) == "2024-01-01 00:00:00.000");
        CHECK(convert("2024-01-01T10:00:00.123456Z", ColumnType::timestamp) ==
              "2024-01-01 10:00:00.123");
    }
    SECTION("an empty string and null are NULL") {
        CHECK(convert("", ColumnType::timestamp) == "<NULL>");
        CHECK(convert(nullptr, ColumnType::timestamp) == "<NULL>");
    }
    SECTION("anything that is not an ISO-8601 time is rejected") {
        CHECK(rejected("yesterday", ColumnType::timestamp));
        CHECK(rejected("2024-02-30", ColumnType::timestamp));
        CHECK(rejected(1704103200, ColumnType::timestamp));
        CHECK(rejected(true, ColumnType::timestamp));
    }
}

TEST_CASE("sql::to_column_value for times past the year 9999", "[unit]") {
    SECTION("a zone offset that carries the time into the year 10000 is rejected") {
        CHECK(rejected("9999-12-31T23:30:00-05:00", ColumnType::timestamp));
        CHECK(convert("9999-12-31T23:30:00Z", ColumnType::timestamp) == "9999-12-31 23:30:00.000");
    }
}

TEST_CASE("sql::to_column_value for keys, text and json", "[unit]") {
    SECTION("keys take strings and integers") {
        CHECK(convert("6EU52ECUGEJPHEJV", ColumnType::key) == "6EU52ECUGEJPHEJV");
        CHECK(convert(123, ColumnType::key) == "123");
        CHECK(rejected(1.5, ColumnType::key));
        CHECK(rejected(json::object(), ColumnType::key));
        CHECK(rejected(true, ColumnType::key));
    }
    SECTION("text keeps strings as they are, an empty string included") {
        CHECK(convert("hello", ColumnType::text) == "hello");
        CHECK(convert("", ColumnType::text) == "");
        CHECK(convert("Z\xC3\xA4hler", ColumnType::text) == "Z\xC3\xA4hler");
    }
    SECTION("text takes numbers, booleans, objects and arrays as their JSON text") {
        CHECK(convert(12, ColumnType::text) == "12");
        CHECK(convert(12.5, ColumnType::text) == "12.5");
        CHECK(convert(true, ColumnType::text) == "true");
        CHECK(convert(json::object({{"a", 1}}), ColumnType::text) == "{\"a\":1}");
        CHECK(convert(json::array({1, "x"}), ColumnType::text) == "[1,\"x\"]");
    }
    SECTION("NUL characters become U+FFFD in text and keys") {
        const json value = std::string("a\0b", 3);
        CHECK(convert(value, ColumnType::text) == "a" + k_fffd + "b");
        CHECK(convert(value, ColumnType::key) == "a" + k_fffd + "b");
    }
    SECTION("json columns take any value as JSON text") {
        CHECK(convert(json::object({{"a", "x"}}), ColumnType::json) == "{\"a\":\"x\"}");
        CHECK(convert("s", ColumnType::json) == "\"s\"");
        CHECK(convert(nullptr, ColumnType::json) == "<NULL>");
    }
    SECTION("null is NULL for every type") {
        for (auto type :
             {ColumnType::key, ColumnType::text, ColumnType::number, ColumnType::integer,
              ColumnType::boolean, ColumnType::timestamp, ColumnType::json}) {
            CHECK(convert(nullptr, type) == "<NULL>");
        }
    }
}

TEST_CASE("sql::normalize_decimal", "[unit]") {
    SECTION("plain decimals lose leading and trailing zeros only") {
        CHECK(sql::normalize_decimal("0") == "0");
        CHECK(sql::normalize_decimal("12") == "12");
        CHECK(sql::normalize_decimal("007") == "7");
        CHECK(sql::normalize_decimal("1.50") == "1.5");
        CHECK(sql::normalize_decimal("12345678901234567890.123456789") ==
              "12345678901234567890.123456789");
        CHECK(sql::normalize_decimal("-12.5") == "-12.5");
        CHECK(sql::normalize_decimal("+3") == "3");
    }
    SECTION("exponents are expanded") {
        CHECK(sql::normalize_decimal("1.5e3") == "1500");
        CHECK(sql::normalize_decimal("1e-2") == "0.01");
        CHECK(sql::normalize_decimal("1E+2") == "100");
        CHECK(sql::normalize_decimal("-1.5e3") == "-1500");
        CHECK(sql::normalize_decimal("0.000123e2") == "0.0123");
        CHECK(sql::normalize_decimal("123e-5") == "0.00123");
    }
    SECTION("a missing integer or fraction part is filled in") {
        CHECK(sql::normalize_decimal(".5") == "0.5");
        CHECK(sql::normalize_decimal("5.") == "5");
    }
    SECTION("negative zero is zero") {
        CHECK(sql::normalize_decimal("-0") == "0");
        CHECK(sql::normalize_decimal("-0.000") == "0");
        CHECK(sql::normalize_decimal("-0e5") == "0");
    }
    SECTION("anything that is not a number gives nullopt") {
        for (const char* bad : {"", "abc", ".", "-", "e5", "1e", "1e+", "1.2.3", "1,5", " 1", "1 ",
                                "0x10", "NaN", "Infinity", "1e5x", "--1"}) {
            INFO(bad);
            CHECK_FALSE(sql::normalize_decimal(bad).has_value());
        }
    }
    SECTION("absurd exponents are refused rather than expanded") {
        CHECK_FALSE(sql::normalize_decimal("1e1000000").has_value());
    }
}

TEST_CASE("sql::to_json_text", "[unit]") {
    SECTION("writes compact JSON") {
        CHECK(sql::to_json_text(json::object({{"a", 1}, {"b", json::array({true})}})) ==
              "{\"a\":1,\"b\":[true]}");
    }
    SECTION("scrubs NUL characters from strings and keys at any depth") {
        json record = json::object();
        record["plain"] = std::string("x\0y", 3);
        record["nested"] = json::array({json::object({{"deep", std::string("\0", 1)}})});
        record[std::string("k\0ey", 4)] = 1;
        const auto text = sql::to_json_text(record);
        CHECK(text.find("\\u0000") == std::string::npos);
        CHECK(text.find('\0') == std::string::npos);
        const auto back = json::parse(text);
        CHECK(back["plain"] == "x" + k_fffd + "y");
        CHECK(back["nested"][0]["deep"] == k_fffd);
        CHECK(back.contains("k" + k_fffd + "ey"));
    }
    SECTION("replaces invalid UTF-8 so the text is valid JSON") {
        json record = json::object({{"bad", std::string("a\xFF"
                                                        "b")}});
        const auto text = sql::to_json_text(record);
        CHECK(util::is_valid_utf8(text));
        CHECK_NOTHROW(json::parse(text));
    }
    SECTION("keeps a literal backslash-u0000 text that is not a NUL") {
        json record = json::object({{"s", "\\u0000"}});
        CHECK(json::parse(sql::to_json_text(record))["s"] == "\\u0000");
    }
}

TEST_CASE("sql::to_json_text writes what nlohmann's dump() writes, byte for byte", "[unit]") {
    // Change detection hashes these texts: a byte of difference from the writer used before
    // would make every stored record look changed once.
    const auto dumped = [](const json& value) {
        return value.dump(-1, ' ', false, json::error_handler_t::replace);
    };
    SECTION("every character below 0x80 and every kind of value") {
        std::string all_ascii;
        for (int c = 1; c < 0x80; ++c) {
            all_ascii += static_cast<char>(c);
        }
        json record = json::object();
        record["ascii"] = all_ascii;
        record[all_ascii] = "as a key";
        record["utf8"] = "\u00e4\u20ac\U0001F600 \xE2\x80\xA8";
        record["bad_utf8"] = std::string("a\xFF\xC3(b\xED\xA0\x80");
        record[std::string("bad\xFEkey")] = 1;
        record["numbers"] = json::array({0, -1, INT64_MIN, INT64_MAX, UINT64_MAX, 1.0, -0.0, 0.1,
                                         1e300, -2.5e-300, 123456789.125, 1e21, 1e-7});
        record["nan"] = std::numeric_limits<double>::quiet_NaN();
        record["inf"] = -std::numeric_limits<double>::infinity();
        record["literals"] = json::array({true, false, nullptr});
        record["empty"] = json::array({json::object(), json::array(), ""});
        record["nested"] = json::array({json::array({json::object({{"a", json::array({1})}})})});
        record["binary"] = json::binary({1, 2, 3});
        CHECK(sql::to_json_text(record) == dumped(record));
        CHECK(sql::to_json_text(record["numbers"]) == dumped(record["numbers"]));
        CHECK(sql::to_json_text(json("x\ty")) == "\"x\\ty\"");
        CHECK(sql::to_json_text(json(nullptr)) == "null");
    }
    SECTION("an escape or a multi-byte character at every place of a word, in texts up to 25") {
        // The plain runs are found eight bytes at a time: every place inside and across words.
        const std::vector<std::string> specials = {
            "\"", "\\", "\n",   "\x01",   "\x1F",   " ",          "!",   "#",
            "[",  "]",  "\x7F", "\u00fc", "\u20ac", "\U0001F4DE", "\xFF"};
        for (std::size_t length = 0; length <= 25; ++length) {
            for (std::size_t at = 0; at < length; ++at) {
                for (const auto& special : specials) {
                    std::string text(length, 'a');
                    text.replace(at, 1, special);
                    const json value = text;
                    INFO(dumped(value));
                    REQUIRE(sql::to_json_text(value) == dumped(value));
                    const json two = text + std::string(at, 'b') + special;
                    REQUIRE(sql::to_json_text(two) == dumped(two));
                }
            }
        }
    }
    SECTION("random documents") {
        std::mt19937 random(20261204);
        const auto random_string = [&random] {
            // Mostly plain text with escapes, multi-byte characters and a rare invalid byte.
            static const std::vector<std::string> pieces = {
                "a",      "Zz",     " ",          "\"",         "\\",   "/",
                "\n",     "\r\n",   "\t",         "\x01",       "\x1F", "\x7F",
                "\u00fc", "\u20ac", "\U0001F4DE", "0123456789", "\xC3", "\xFF"};
            std::string text;
            const auto length = random() % 12;
            for (std::size_t i = 0; i < length; ++i) {
                text += pieces[random() % pieces.size()];
            }
            return text;
        };
        std::function<json(int)> random_value = [&](int depth) -> json {
            switch (random() % (depth > 3 ? 6 : 8)) {
            case 0:
                return nullptr;
            case 1:
                return random() % 2 == 0;
            case 2:
                return static_cast<std::int64_t>(random()) - (1LL << 31);
            case 3:
                return static_cast<double>(static_cast<std::int32_t>(random())) / 1000.0;
            case 4:
            case 5:
                return random_string();
            case 6: {
                json array = json::array();
                for (auto n = random() % 5; n > 0; --n) {
                    array.push_back(random_value(depth + 1));
                }
                return array;
            }
            default: {
                json object = json::object();
                for (auto n = random() % 6; n > 0; --n) {
                    object[random_string()] = random_value(depth + 1);
                }
                return object;
            }
            }
        };
        for (int i = 0; i < 3000; ++i) {
            const json value = random_value(0);
            INFO(dumped(value));
            REQUIRE(sql::to_json_text(value) == dumped(value));
        }
    }
}

TEST_CASE("sql::to_json_text_without writes what to_json_text of a trimmed copy writes", "[unit]") {
    const auto trimmed = [](json record, std::initializer_list<const char*> names) {
        for (const char* name : names) {
            if (record.is_object()) {
                record.erase(name);
            }
        }
        return sql::to_json_text(record);
    };
    std::vector<json> records{
        json::object(),
        json::object({{"recordings", json::array({1, 2})}}),
        json::object({{"a", 1}, {"recordings", json::array()}, {"z", "x"}}),
        json::object({{"a", json::object({{"recordings", 1}})}, {"b", nullptr}}),
        json::object({{"\u00e9\"quoted\"", "\t\n"}, {"third_party_connections", "x"}}),
        json::object({{"bad", std::string("a\xFF"
                                          "b")},
                      {"recordings", 1}}),
        json::array({1, 2}),
        json("text"),
    };
    json with_nul = json::object();
    with_nul["plain"] = std::string("x\0y", 3);
    with_nul[std::string("k\0ey", 4)] = json::array({std::string("\0", 1)});
    with_nul["recordings"] = std::string("\0", 1);
    records.push_back(with_nul);
    for (const auto& record : records) {
        INFO(record.dump(-1, ' ', false, json::error_handler_t::replace));
        CHECK(sql::to_json_text_without(record, {"recordings", "third_party_connections"}) ==
              trimmed(record, {"recordings", "third_party_connections"}));
        CHECK(sql::to_json_text_without(record, {}) == sql::to_json_text(record));
    }
}

TEST_CASE("sql::to_json_text_pruned writes what to_json_text of a pruned copy writes", "[unit]") {
    const sql::JsonPrune prune{{"secret"}, {{"log", sql::JsonPrune{{"transactions"}, {}}}}};
    const auto pruned_copy = [&](json record) {
        if (record.is_object()) {
            record.erase("secret");
            if (record.contains("log") && record["log"].is_array()) {
                for (auto& entry : record["log"]) {
                    if (entry.is_object()) {
                        entry.erase("transactions");
                    }
                }
            }
        }
        return sql::to_json_text(record);
    };
    std::vector<json> records{
        json::object({{"a", 1}}),
        json::object({{"log", json::array()}, {"secret", 1}}),
        json::object({{"log", json::array({json::object({{"task", "x"}, {"transactions", 1}}), 7,
                                           json::array({1}),
                                           json::object({{"transactions", json::array()}})})},
                      {"z", "last"}}),
        json::object({{"log", json::object({{"transactions", 1}})}}),
        json::object({{"log", "not an array"}, {"nested", json::object({{"secret", 2}})}}),
        json::object({{"log", json::array({json::object({{"bad", std::string("\xC3")}})})}}),
        json(nullptr),
    };
    json with_nul = json::object();
    with_nul["log"] = json::array(
        {json::object({{std::string("k\0", 2), 1}, {"transactions", std::string("\0", 1)}})});
    records.push_back(with_nul);
    json nul_key_outside = json::object();
    nul_key_outside[std::string("\0top", 4)] = 1;
    nul_key_outside["log"] = json::array({json::object({{"transactions", 1}, {"b", 2}})});
    records.push_back(nul_key_outside);
    for (const auto& record : records) {
        INFO(record.dump(-1, ' ', false, json::error_handler_t::replace));
        CHECK(sql::to_json_text_pruned(record, prune) == pruned_copy(record));
        CHECK(sql::to_json_text_pruned(record, {}) == sql::to_json_text(record));
    }
}

TEST_CASE("sql::row_from_json", "[unit]") {
    sql::TableSpec spec;
    spec.table.name = "things";
    spec.table.primary_key = "id";
    spec.table.columns = {{"id", ColumnType::key},         {"name", ColumnType::text},
                          {"amount", ColumnType::number},  {"active", ColumnType::boolean},
                          {"seen", ColumnType::timestamp}, {"_raw", ColumnType::json}};
    spec.sources = {"", "name", "amount", "active", "seen", ""};

    SECTION("reads sourced columns from the record and computed ones from the map") {
        const json record = {{"name", "n"},
                             {"amount", "12.50"},
                             {"active", true},
                             {"seen", "2024-01-01T10:00:00.000Z"},
                             {"ignored", 1}};
        sql::Row row;
        std::string problem;
        REQUIRE(sql::row_from_json(spec, record, {{"id", "X1"}, {"_raw", "{}"}}, row, problem));
        REQUIRE(row.size() == 6);
        CHECK(row[0] == Value("X1"));
        CHECK(row[1] == Value("n"));
        CHECK(row[2] == Value("12.5"));
        CHECK(row[3] == Value("1"));
        CHECK(row[4] == Value("2024-01-01 10:00:00.000"));
        CHECK(row[5] == Value("{}"));
    }
    SECTION("absent fields and absent computed values are NULL") {
        sql::Row row;
        std::string problem;
        REQUIRE(sql::row_from_json(spec, json::object(), {}, row, problem));
        REQUIRE(row.size() == 6);
        for (const auto& v : row) {
            CHECK_FALSE(v.has_value());
        }
    }
    SECTION("a value that does not fit fails with the column's name in the problem") {
        sql::Row row;
        std::string problem;
        CHECK_FALSE(sql::row_from_json(spec, {{"amount", "abc"}}, {{"id", "X1"}}, row, problem));
        CHECK(problem.rfind("amount: ", 0) == 0);
        CHECK(problem.find("abc") != std::string::npos);
    }
    SECTION("NUL bytes in computed values become U+FFFD instead of cutting the value") {
        sql::Row row;
        std::string problem;
        REQUIRE(sql::row_from_json(spec, json::object(), {{"id", std::string("X\0Y", 3)}}, row,
                                   problem));
        CHECK(row[0] == Value("X" + k_fffd + "Y"));
    }
    SECTION("a record that is not an object fills only computed columns") {
        sql::Row row;
        std::string problem;
        REQUIRE(sql::row_from_json(spec, json::array({1, 2}), {{"id", "X1"}}, row, problem));
        CHECK(row[0] == Value("X1"));
        CHECK_FALSE(row[1].has_value());
    }
}

namespace {

// Sets the process-wide JSON member order for a scope, and restores the default after it.
struct MemberOrderScope {
    explicit MemberOrderScope(sql::JsonMemberOrder order) { sql::set_json_member_order(order); }
    MemberOrderScope(const MemberOrderScope&) = delete;
    MemberOrderScope& operator=(const MemberOrderScope&) = delete;
    ~MemberOrderScope() { sql::set_json_member_order(sql::JsonMemberOrder::by_name); }
};

// Whether every object in `text` (as parsed in document order) lists its names shorter first,
// names of one length by their bytes.
bool members_in_jsonb_order(const std::string& text) {
    bool ordered = true;
    std::vector<std::vector<std::string>> open; // names seen so far in each open object
    json::parser_callback_t check = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            open.emplace_back();
        } else if (event == json::parse_event_t::key) {
            const auto name = parsed.get<std::string>();
            auto& names = open.back();
            if (!names.empty()) {
                // std::string compares its bytes as unsigned char, as jsonb does.
                const auto& last = names.back();
                ordered = ordered && (last.size() < name.size() ||
                                      (last.size() == name.size() && last < name));
            }
            names.push_back(name);
        } else if (event == json::parse_event_t::object_end) {
            open.pop_back();
        }
        return true;
    };
    const json parsed = json::parse(text, check);
    return ordered && !parsed.is_discarded();
}

} // namespace

TEST_CASE("JSON texts list members in jsonb's order when asked, and by name otherwise", "[unit]") {
    const json record = json::parse(R"({"zz": 1, "a": {"ccc": 1, "bb": [{"yy": 1, "x": 2}], "d": 0},
        "bb": null, "\u00e9": true, "z": "last of one byte", "aa": [], "id": "r1"})");

    SECTION("by name, as nlohmann writes them, by default") {
        CHECK(sql::to_json_text(record) ==
              record.dump(-1, ' ', false, json::error_handler_t::replace));
    }

    SECTION("jsonb: shorter names first, one length by bytes, at every depth") {
        const MemberOrderScope scope(sql::JsonMemberOrder::jsonb);
        // "\u00e9" is two bytes, C3 A9: above 'z' (7A), so the last of the two-byte names.
        CHECK(sql::to_json_text(record) ==
              "{\"a\":{\"d\":0,\"bb\":[{\"x\":2,\"yy\":1}],\"ccc\":1},\"z\":\"last of one "
              "byte\",\"aa\":[],\"bb\":null,\"id\":\"r1\",\"zz\":1,\"\u00e9\":true}");
        CHECK(json::parse(sql::to_json_text(record)) == record);
        // Pruning keeps the order of what stays, and the text of a record with NULs (written
        // on a scrubbed copy) is ordered too.
        const sql::JsonPrune prune{{"zz"}, {{"a", sql::JsonPrune{{"ccc"}, {}}}}};
        json nested = record;
        nested["a"] = json::array({record["a"], 5});
        CHECK(sql::to_json_text_pruned(nested, prune) ==
              "{\"a\":[{\"d\":0,\"bb\":[{\"x\":2,\"yy\":1}]},5],\"z\":\"last of one "
              "byte\",\"aa\":[],\"bb\":null,\"id\":\"r1\",\"\u00e9\":true}");
        json with_nul = record;
        with_nul["nul"] = std::string("a\0b", 3);
        CHECK(members_in_jsonb_order(sql::to_json_text(with_nul)));
        CHECK(sql::to_json_text(with_nul).find("\"nul\":\"a\uFFFDb\"") != std::string::npos);
    }

    SECTION("jsonb: objects with more members than fit the writer's stack array") {
        const MemberOrderScope scope(sql::JsonMemberOrder::jsonb);
        json wide = json::object();
        for (int i = 0; i < 300; ++i) {
            wide[std::string(static_cast<std::size_t>(i % 7 + 1), static_cast<char>('a' + i % 26)) +
                 std::to_string(i)] = i;
        }
        const std::string text = sql::to_json_text(wide);
        CHECK(members_in_jsonb_order(text));
        CHECK(json::parse(text) == wide);
    }
}
