#include "lib/util/redact.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace util = crmsync::util;

TEST_CASE("util::redact", "[unit]") {
    util::clear_secrets_for_tests();

    SECTION("text without registered secrets is unchanged") {
        CHECK(util::redact("Bearer abcdef") == "Bearer abcdef");
    }
    SECTION("a registered secret is replaced wherever it occurs") {
        util::register_secret("s3cr3t-token");
        CHECK(util::redact("Bearer s3cr3t-token, again s3cr3t-token.") == "Bearer ***, again ***.");
    }
    SECTION("the percent-encoded form of a secret is replaced too") {
        util::register_secret("p@ss:w/rd");
        const auto out = util::redact("postgres://u:p%40ss%3Aw%2Frd@h/db and p@ss:w/rd");
        CHECK(out == "postgres://u:***@h/db and ***");
    }
    SECTION("several secrets are all replaced") {
        util::register_secret("first-secret");
        util::register_secret("second-secret");
        CHECK(util::redact("first-secret/second-secret") == "***/***");
    }
    SECTION("a secret shorter than four bytes is masked where it stands alone") {
        util::register_secret("abc");
        util::register_secret("");
        CHECK(util::redact("abc def") == "*** def");
        CHECK(util::redact("password=abc;") == "password=***;");
    }
    SECTION("a one-character secret is masked too") {
        util::register_secret("7");
        CHECK(util::redact("pw 7") == "pw ***");
    }
    SECTION("a short secret inside a longer word leaves the word readable") {
        util::register_secret("ab");
        CHECK(util::redact("about tab abc") == "about tab abc");
    }
    SECTION("clear_secrets_for_tests forgets every secret") {
        util::register_secret("forget-me");
        util::clear_secrets_for_tests();
        CHECK(util::redact("forget-me") == "forget-me");
    }

    util::clear_secrets_for_tests();
}
