// API answers are parsed with a depth limit (http::parse_json_body); answers that do not nest
// that deep take the plain parser, and both ways must give the same document.

#include "lib/http/json_body.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

using namespace crmsync;

namespace {

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
