#include "lib/util/utf8.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace util = crmsync::util;

namespace {

const std::string k_fffd = "\xEF\xBF\xBD";

std::size_t count_fffd(const std::string& text) {
    std::size_t n = 0;
    for (auto pos = text.find(k_fffd); pos != std::string::npos; pos = text.find(k_fffd, pos + 3)) {
        ++n;
    }
    return n;
}

} // namespace

TEST_CASE("util::repair_utf8", "[unit]") {
    SECTION("valid ASCII and multibyte text is left alone and nothing is counted") {
        std::string text = "Z\xC3\xA4hler \xE2\x82\xAC \xF0\x9F\x98\x80 plain";
        const std::string before = text;
        CHECK(util::repair_utf8(text) == 0);
        CHECK(text == before);
        std::string empty;
        CHECK(util::repair_utf8(empty) == 0);
        CHECK(empty.empty());
    }
    SECTION("a bad or a good sequence is found at every offset of a long ASCII run") {
        // The scan skips ASCII eight bytes at a time: try both sides of every word boundary.
        for (std::size_t at = 0; at < 40; ++at) {
            INFO("offset " << at);
            std::string bad(40, 'a');
            bad[at] = '\xFF';
            CHECK_FALSE(util::is_valid_utf8(bad));
            CHECK(util::repair_utf8(bad) == 1);
            CHECK(bad == std::string(at, 'a') + k_fffd + std::string(39 - at, 'a'));

            std::string good = std::string(at, 'a') + "\xE2\x82\xAC" + std::string(40, 'b');
            const std::string before = good;
            CHECK(util::is_valid_utf8(good));
            CHECK(util::repair_utf8(good) == 0);
            CHECK(good == before);

            std::string cut = std::string(at, 'a') + "\xE2\x82";
            CHECK_FALSE(util::is_valid_utf8(cut));
            CHECK(util::repair_utf8(cut) == 2);
        }
    }
    SECTION("a lead byte without its continuation (C3 28) becomes U+FFFD, the ( stays") {
        std::string text = "a\xC3\x28z";
        CHECK(util::repair_utf8(text) == 1);
        CHECK(text == "a" + k_fffd + "(z");
    }
    SECTION("a byte that never occurs in UTF-8 (FF) becomes U+FFFD") {
        std::string text = "x\xFFy";
        CHECK(util::repair_utf8(text) == 1);
        CHECK(text == "x" + k_fffd + "y");
    }
    SECTION("a sequence truncated at the end is replaced and the prefix kept") {
        for (const std::string bad : {"ab\xE2\x82", "ab\xF0\x9F\x98", "ab\xC3"}) {
            std::string text = bad;
            const auto count = util::repair_utf8(text);
            CHECK(count >= 1);
            CHECK(util::is_valid_utf8(text));
            CHECK(text.rfind("ab", 0) == 0);
            CHECK(count_fffd(text) == count);
            CHECK(text.find("\xE2\x82") == std::string::npos);
        }
    }
    SECTION("a truncated sequence in the middle does not swallow the next character") {
        std::string text = "\xE2\x82z";
        util::repair_utf8(text);
        CHECK(util::is_valid_utf8(text));
        CHECK(text.back() == 'z');
    }
    SECTION("overlong encodings are replaced") {
        std::string two = "\xC0\xAF";       // '/' in two bytes
        std::string three = "\xE0\x80\xAF"; // '/' in three bytes
        CHECK(util::repair_utf8(two) == 2);
        CHECK(two == k_fffd + k_fffd);
        CHECK(util::repair_utf8(three) == 3);
        CHECK(util::is_valid_utf8(three));
        CHECK(three.find('/') == std::string::npos);
    }
    SECTION("UTF-16 surrogates encoded in UTF-8 are replaced") {
        std::string text = "\xED\xA0\x80";
        CHECK(util::repair_utf8(text) == 3);
        CHECK(text == k_fffd + k_fffd + k_fffd);
    }
    SECTION("code points above U+10FFFF are replaced") {
        std::string text = "\xF4\x90\x80\x80";
        CHECK(util::repair_utf8(text) >= 1);
        CHECK(util::is_valid_utf8(text));
    }
    SECTION("the count is the number of replacement characters written") {
        std::string text = "\xFF ok \xC3\x28 \xED\xA0\x80 \xC3\xA4";
        const auto count = util::repair_utf8(text);
        CHECK(count == 5);
        CHECK(count_fffd(text) == 5);
        CHECK(text.find("\xC3\xA4") != std::string::npos);
    }
}

TEST_CASE("util::is_valid_utf8 and util::utf8_prefix", "[unit]") {
    SECTION("is_valid_utf8 accepts well-formed and rejects ill-formed text") {
        CHECK(util::is_valid_utf8(""));
        CHECK(util::is_valid_utf8("Z\xC3\xA4hler \xF0\x9F\x98\x80"));
        CHECK_FALSE(util::is_valid_utf8("\xC3\x28"));
        CHECK_FALSE(util::is_valid_utf8("\xED\xA0\x80"));
        CHECK_FALSE(util::is_valid_utf8("\xC0\xAF"));
    }
    SECTION("utf8_prefix never cuts a code point") {
        const std::string text = "a\xC3\xA4\xF0\x9F\x98\x80";
        CHECK(util::utf8_prefix(text, 100) == text);
        CHECK(util::utf8_prefix(text, 1) == "a");
        CHECK(util::utf8_prefix(text, 2) == "a");
        CHECK(util::utf8_prefix(text, 3) == "a\xC3\xA4");
        CHECK(util::utf8_prefix(text, 6) == "a\xC3\xA4");
        CHECK(util::utf8_prefix(text, 7) == text);
        CHECK(util::utf8_prefix(text, 0).empty());
    }
}
