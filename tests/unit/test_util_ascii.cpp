#include "lib/util/ascii.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;

TEST_CASE("util::ascii_lower folds A-Z only", "[unit]") {
    CHECK(util::ascii_lower("Content-Type: TEXT/Plain") == "content-type: text/plain");
    CHECK(util::ascii_lower("") == "");
    // UTF-8 letters and other bytes stay as they are (std::tolower under a Latin-1 locale
    // would change 0xC4, breaking the character).
    CHECK(util::ascii_lower("\xC3\x84RGER@B\xC3\xBC"
                            "CHER.DE") == "\xC3\x84rger@b\xC3\xBC"
                                          "cher.de");
    CHECK(util::ascii_lower(std::string("A\0B", 3)) == std::string("a\0b", 3));
    CHECK(util::ascii_lower("@[`{") == "@[`{");
}

TEST_CASE("util::ascii_iequals and ascii_istarts_with", "[unit]") {
    CHECK(util::ascii_iequals("Retry-After", "retry-after"));
    CHECK(util::ascii_iequals("", ""));
    CHECK_FALSE(util::ascii_iequals("Retry-After", "retry-afte"));
    CHECK_FALSE(util::ascii_iequals("a", "b"));
    CHECK_FALSE(util::ascii_iequals("\xC3\x84", "\xC3\xA4")); // Ä and ä are not ASCII
    CHECK(util::ascii_istarts_with("HTTP://example.com", "http://"));
    CHECK(util::ascii_istarts_with("http://", "http://"));
    CHECK_FALSE(util::ascii_istarts_with("http:/", "http://"));
    CHECK_FALSE(util::ascii_istarts_with("https://example.com", "http://"));
}
