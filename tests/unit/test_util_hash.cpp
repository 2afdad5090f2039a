#include "lib/util/hash.hpp"

#include <catch2/catch.hpp>

namespace util = crmsync::util;

TEST_CASE("util::md5_hex", "[unit]") {
    SECTION("matches the RFC 1321 test vectors in lower-case hex") {
        CHECK(util::md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
        CHECK(util::md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
        CHECK(util::md5_hex("The quick brown fox jumps over the lazy dog") ==
              "9e107d9d372bb6826bd81d3542a419d6");
    }
    SECTION("gives dbsync2's transaction id md5($id + fired)") {
        const auto id = util::md5_hex(std::string("CONTACT1") + "2024-01-01T10:00:00.000Z");
        CHECK(id.rfind("c72c96f3", 0) == 0);
        CHECK(id == "c72c96f39227010db05095fa0b0ba21b");
    }
    SECTION("gives dbsync2's recording id md5(connection id + location)") {
        const auto id = util::md5_hex(std::string("conn1") + "gs://bucket/rec1.mp3");
        CHECK(id.rfind("6a42c0ec", 0) == 0);
        CHECK(id == "6a42c0ec6d8321294ba0f41fd5e7ae56");
    }
    SECTION("hashes bytes, including NUL") {
        CHECK(util::md5_hex(std::string("a\0b", 3)) != util::md5_hex("a"));
    }
}

TEST_CASE("util::md5_int64", "[unit]") {
    SECTION("is the first 8 bytes of the MD5, big-endian, as a signed integer") {
        CHECK(util::md5_int64("abc") == -8070080442485551184LL);
    }
}

TEST_CASE("util::hmac_sha256_base64", "[unit]") {
    SECTION("matches RFC 4231 test case 2") {
        CHECK(util::hmac_sha256_base64("Jefe", "what do ya want for nothing?") ==
              "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
    }
    SECTION("matches RFC 4231 test case 1") {
        CHECK(util::hmac_sha256_base64(std::string(20, '\x0b'), "Hi There") ==
              "sDRMYdjbOFNcqK/OrwvxK4gdwgDJgz2nJuk3bC4yz/c=");
    }
}

TEST_CASE("util::base64_encode", "[unit]") {
    SECTION("matches the RFC 4648 test vectors") {
        CHECK(util::base64_encode("") == "");
        CHECK(util::base64_encode("f") == "Zg==");
        CHECK(util::base64_encode("fo") == "Zm8=");
        CHECK(util::base64_encode("foo") == "Zm9v");
        CHECK(util::base64_encode("foobar") == "Zm9vYmFy");
    }
}
