// API answers are parsed with a depth limit (http::parse_json_body); answers that do not nest
// that deep take the plain parser, and both ways must give the same document.

#include "lib/http/json_body.hpp"
#include "lib/util/utf8.hpp"
#include "tests/support/json_same_document.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace crmsync;

namespace {

// A random number of any kind nlohmann tells apart.
nlohmann::json json_number(std::mt19937& random) {
    switch (random() % 4) {
    case 0:
        return static_cast<std::int64_t>(random()) - (std::int64_t{1} << 31);
    case 1:
        return static_cast<std::uint64_t>(random()) << 32;
    case 2:
        return static_cast<double>(static_cast<std::int32_t>(random())) / 64.0;
    default:
        return 0;
    }
}

// A top-level array [{"id":1}, X, {"id":3}] whose middle element nests `levels` deep.
std::string array_with_nesting(int levels) {
    return R"([{"id":1},)" + std::string(static_cast<std::size_t>(levels), '[') +
           std::string(static_cast<std::size_t>(levels), ']') + R"(,{"id":3}])";
}

} // namespace

TEST_CASE("http::nests_as_deep_as counts arrays and objects, not strings", "[unit]") {
    CHECK(http::nests_as_deep_as("[]", 1));
    CHECK_FALSE(http::nests_as_deep_as("[]", 2));
    CHECK(http::nests_as_deep_as(R"([{"a":[1]}])", 3));
    CHECK_FALSE(http::nests_as_deep_as(R"([{"a":[1]}])", 4));
    CHECK_FALSE(http::nests_as_deep_as(R"(["[[[[", "{{{{"])", 2));
    CHECK_FALSE(http::nests_as_deep_as(R"(["a\"[[[[", "\\"])", 2));
    CHECK(http::nests_as_deep_as(R"(["a\\", [[]]])", 3));
    CHECK_FALSE(http::nests_as_deep_as("", 1));
    CHECK_FALSE(http::nests_as_deep_as("not json at all", 1));
}

TEST_CASE("http::parse_json_body keeps what nests under the limit whole, either way", "[unit]") {
    // With the top-level array, the middle element nests levels + 1 deep. 127 takes the plain
    // parser, 128 the one with the limit (a container with 127 around it is still built), and
    // 129 is left out and named.
    for (const int levels : {http::k_max_json_depth - 2, http::k_max_json_depth - 1}) {
        const auto text = array_with_nesting(levels);
        const auto body = http::parse_json_body(text);
        INFO("levels " << levels);
        CHECK(body.too_deep.empty());
        CHECK(body.doc == nlohmann::json::parse(text));
    }
    const auto over = http::parse_json_body(array_with_nesting(http::k_max_json_depth));
    CHECK(over.too_deep == std::vector<std::size_t>{1});
    REQUIRE(over.doc.is_array());
    CHECK(over.doc.front() == nlohmann::json{{"id", 1}});
    CHECK(over.doc.back() == nlohmann::json{{"id", 3}});

    SECTION("repairs and broken text are the same on the plain path") {
        const auto repaired = http::parse_json_body("[\"caf\xc3(\", \"\\ud800x\"]");
        CHECK(repaired.repaired_bytes == 2);
        CHECK(repaired.doc.size() == 2);
        CHECK(http::parse_json_body("[{\"a\": 1},").doc.is_discarded());
        CHECK(http::parse_json_body("").doc.is_discarded());
    }
}

TEST_CASE("http::parse_json_body builds what nlohmann's parser builds from any text", "[unit]") {
    // The body is parsed by simdjson and converted, falling back to nlohmann's parser for what
    // simdjson refuses. Whatever the text, the document must be nlohmann's, number kinds and
    // refusals included: a difference would change hashes or let through what was refused.
    const std::vector<std::string> texts = {
        R"({"a":1,"b":-1,"c":1.0,"d":-0,"e":-0.0,"f":0,"g":1e2,"h":1E-2,"i":123456789012345678})",
        R"([9223372036854775807, 9223372036854775808, 18446744073709551615,
            18446744073709551616, -9223372036854775808, -9223372036854775809,
            123456789012345678901234567890, 1e308, 2.2250738585072014e-308, 4.9e-324,
            0.1, 0.30000000000000004, 1.7976931348623157e308, 5e-324, 1e-400])",
        "[1e400]",
        "[-1e400]",
        "[NaN]",
        "[Infinity]",
        "[01]",
        "[1.]",
        "[.5]",
        "[-]",
        "[+1]",
        "[1e]",
        "[0x10]",
        "[tru]",
        "[nul]",
        "[true, false, null]",
        R"({"a":1,"a":2})",
        R"({"a":{"b":1},"a":[2]})",
        R"({"b":1,"a":1,"b":2,"c":0,"a":[3],"b":{"x":3},"":4,"ab":5,"a\u0000":6})",
        "\xEF\xBB\xBF[1]",
        "[1] [2]",
        "{} x",
        "[1,]",
        "{\"a\":1,}",
        "{'a':1}",
        "  \n\t[ 1 , 2 ]\r\n  ",
        "\"just a string\"",
        "42",
        "-0",
        "null",
        "",
        "   ",
        "[\"tab\tinside\"]",
        "[\"newline\ninside\"]",
        std::string("[\"nul\0in\"]", 10),
        "[\"\\u0000\", \"\\n\\t\\\\\\\"\\/\\b\\f\\r\"]",
        "[\"\\u00e4\\u20ac\\ud83d\\ude00\"]",
        "[\"\\uZZZZ\"]",
        "[\"\\x\"]",
        "[\"unterminated]",
        "[\"caf\xc3\xa9\"]",
        "{\"\xe2\x82\xac\":\"key\"}",
        std::string(99, '[') + std::string(99, ']'),
        std::string(101, '[') + std::string(101, ']'),
        R"({"contacts":[{"$id":"x","$md5":"y","nested":{"deep":[1,{"z":null}]}}]})",
        "[1e2, 1E+2, 1e-0, 100e-2, 0e0, -0e0, 0.0e5, -0.0e-5]"};
    for (const auto& text : texts) {
        INFO("text: " << text);
        const auto body = http::parse_json_body(text);
        const auto expected = nlohmann::json::parse(text, nullptr, false);
        CHECK(testing::same_json_document(body.doc, expected));
        CHECK(body.too_deep.empty());
    }

    SECTION("random documents, whole and mangled") {
        std::mt19937 random(4122026);
        static const std::vector<std::string> pieces = {"{",        "}",
                                                        "[",        "]",
                                                        ",",        ":",
                                                        "\"",       "\"k\"",
                                                        "\"v\\n\"", "0",
                                                        "-0",       "-",
                                                        "1",        "12",
                                                        ".5",       "e3",
                                                        "E-2",      "18446744073709551616",
                                                        "true",     "null",
                                                        " ",        "\n",
                                                        "\t",       "\\",
                                                        "\\u00e4",  "\\ud83d\\ude00",
                                                        "\\ud800",  "\xC3\xA4",
                                                        "\xFF",     "\x01",
                                                        "x"};
        int fast = 0;
        for (int i = 0; i < 5000; ++i) {
            std::string text;
            const auto length = 1 + random() % 24;
            for (std::size_t n = 0; n < length; ++n) {
                text += pieces[random() % pieces.size()];
            }
            if (i % 2 == 0) {
                // A valid document most of the time: the text above as one string member.
                text = nlohmann::json{{"s", text}, {"n", json_number(random)}}.dump(
                    -1, ' ', false, nlohmann::json::error_handler_t::replace);
            }
            INFO("text: " << text);
            const auto body = http::parse_json_body(text);
            std::string repaired = text;
            crmsync::util::repair_utf8(repaired);
            http::replace_lone_surrogates(repaired);
            REQUIRE(testing::same_json_document(body.doc,
                                                nlohmann::json::parse(repaired, nullptr, false)));
            fast += body.parsed_by_simdjson ? 1 : 0;
        }
        // Most valid documents take the fast path (a -0 or a big number sends one the slow way).
        CHECK(fast > 2000);
    }
}

TEST_CASE("http::parse_json_body takes bodies of several megabytes the fast way too", "[unit]") {
    // Past 1 MiB a body gets a parser of its own (a thread keeps one only for smaller ones).
    nlohmann::json big = nlohmann::json::array();
    for (int i = 0; i < 50000; ++i) {
        big.push_back({{"id", i}, {"name", "contact " + std::to_string(i)}, {"score", i * 0.5}});
    }
    const std::string text = big.dump();
    REQUIRE(text.size() > (std::size_t{2} << 20));
    for (int round = 0; round < 2; ++round) {
        const auto body = http::parse_json_body(text);
        CHECK(body.parsed_by_simdjson);
        CHECK(testing::same_json_document(body.doc, nlohmann::json::parse(text)));
        // A small body after the big one still parses on the thread's own parser.
        const auto small = http::parse_json_body(R"({"a":[1,2,3]})");
        CHECK(small.parsed_by_simdjson);
        CHECK(small.doc == nlohmann::json{{"a", {1, 2, 3}}});
    }
}
