// http::gunzip_body: gzip streams made by zlib (an encoder independent of the libdeflate
// decoder under test), decoded whole, cut, corrupted, with lying trailers and against the cap.

#include "lib/http/gzip_body.hpp"
#include "tests/fakes/common/json_reply.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace http = crmsync::http;
using crmsync::fakes::gzip_fast;
using http::GunzipOutcome;

namespace {

// A text that compresses but not to nothing: every line differs.
std::string sample_text(std::size_t lines) {
    std::string text;
    for (std::size_t i = 0; i < lines; ++i) {
        text += "{\"id\":\"C" + std::to_string(i * 7919) + "\",\"name\":\"Zoë Ñandú\"}\n";
    }
    return text;
}

// Sets the gzip trailer's ISIZE (the last four bytes) to `size`.
void set_trailer_size(std::string& gzipped, std::uint32_t size) {
    for (std::size_t i = 0; i < 4; ++i) {
        gzipped[gzipped.size() - 4 + i] = static_cast<char>((size >> (8 * i)) & 0xFF);
    }
}

} // namespace

TEST_CASE("http::gunzip_body decodes one member or several, under the cap", "[unit][http]") {
    const std::string text = sample_text(2000);
    std::string body = gzip_fast(text);
    REQUIRE(body.size() < text.size() / 2);

    SECTION("one member") {
        REQUIRE(http::gunzip_body(body, 1 << 20) == GunzipOutcome::decoded);
        CHECK(body == text);
    }
    SECTION("members one after another decode to their texts joined (RFC 1952 2.2)") {
        const std::string second = sample_text(3);
        body += gzip_fast(second);
        body += gzip_fast("");
        REQUIRE(http::gunzip_body(body, 1 << 20) == GunzipOutcome::decoded);
        CHECK(body == text + second);
    }
    SECTION("an empty text") {
        body = gzip_fast("");
        REQUIRE(http::gunzip_body(body, 0) == GunzipOutcome::decoded);
        CHECK(body.empty());
    }
    SECTION("a text of exactly the cap passes; one byte more is too large and left as it was") {
        std::string at_cap = body;
        REQUIRE(http::gunzip_body(at_cap, text.size()) == GunzipOutcome::decoded);
        CHECK(at_cap == text);
        const std::string wire = body;
        CHECK(http::gunzip_body(body, text.size() - 1) == GunzipOutcome::too_large);
        CHECK(body == wire);
    }
    SECTION("a trailer that understates the size is no way around the cap") {
        set_trailer_size(body, 10);
        CHECK(http::gunzip_body(body, text.size() - 1) == GunzipOutcome::too_large);
    }
}

TEST_CASE("http::gunzip_body refuses what is not a whole, intact gzip stream", "[unit][http]") {
    const std::string text = sample_text(500);
    const std::string good = gzip_fast(text);
    std::string body;

    SECTION("cut short") {
        for (const std::size_t cut :
             {std::size_t{1}, std::size_t{4}, std::size_t{9}, good.size() / 2, good.size() - 10}) {
            body = good.substr(0, good.size() - cut);
            CHECK(http::gunzip_body(body, 1 << 20) == GunzipOutcome::corrupt);
        }
    }
    SECTION("a byte changed in the compressed data or in the CRC") {
        for (const std::size_t at : {good.size() / 2, good.size() - 6}) {
            body = good;
            body[at] = static_cast<char>(body[at] ^ 0x20);
            CHECK(http::gunzip_body(body, 1 << 20) == GunzipOutcome::corrupt);
        }
    }
    SECTION("a trailer size that does not match, smaller or larger") {
        for (const std::uint32_t lie : {static_cast<std::uint32_t>(text.size() - 1),
                                        static_cast<std::uint32_t>(text.size() + 1)}) {
            body = good;
            set_trailer_size(body, lie);
            CHECK(http::gunzip_body(body, 1 << 20) == GunzipOutcome::corrupt);
        }
    }
    SECTION("plain text, and plain text after a good member") {
        body = text;
        CHECK(http::gunzip_body(body, 1 << 20) == GunzipOutcome::corrupt);
        body = good + "\n";
        CHECK(http::gunzip_body(body, 1 << 20) == GunzipOutcome::corrupt);
    }
}
