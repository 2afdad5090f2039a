#include "lib/core/error.hpp"
#include "lib/http/http_client.hpp"
#include "lib/rest/auth.hpp"
#include "lib/util/redact.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using crmsync::Error;
using crmsync::ErrorKind;
namespace http = crmsync::http;
namespace rest = crmsync::rest;
namespace util = crmsync::util;

namespace {

std::vector<std::pair<std::string, std::string>> headers_of(rest::Auth& auth) {
    http::HttpRequest request;
    auth.apply(request);
    return request.headers;
}

using Headers = std::vector<std::pair<std::string, std::string>>;

} // namespace

TEST_CASE("rest::Auth", "[unit][http]") {
    util::clear_secrets_for_tests();

    SECTION("sends Basic auth, and neither the password nor its encoding reaches a log") {
        auto auth = rest::basic_auth("agent", "s3cret-pw");
        CHECK(headers_of(*auth) == Headers{{"Authorization", "Basic YWdlbnQ6czNjcmV0LXB3"}});
        CHECK(util::redact("pw s3cret-pw hdr YWdlbnQ6czNjcmV0LXB3") == "pw *** hdr ***");
        CHECK_FALSE(auth->renew());
    }
    SECTION("sends an API key in the header named") {
        auto auth = rest::api_key_header("x-apikey", "key-123456");
        CHECK(headers_of(*auth) == Headers{{"x-apikey", "key-123456"}});
        CHECK(util::redact("key-123456") == "***");
        CHECK(auth->hint().find("x-apikey") != std::string::npos);
    }
    SECTION("sends a fixed Bearer token") {
        auto auth = rest::bearer_token("tok-abcdef");
        CHECK(headers_of(*auth) == Headers{{"Authorization", "Bearer tok-abcdef"}});
        CHECK(util::redact("tok-abcdef") == "***");
    }
    SECTION("asks the token callback before every request, in the scheme given") {
        int asked = 0;
        auto auth = rest::token_callback(
            [&] {
                ++asked;
                return std::string("zoho-token-1");
            },
            {}, "Zoho-oauthtoken");
        CHECK(headers_of(*auth) == Headers{{"Authorization", "Zoho-oauthtoken zoho-token-1"}});
        headers_of(*auth);
        CHECK(asked == 2);
        CHECK(util::redact("zoho-token-1") == "***");
    }
    SECTION("renewing a callback token forgets the refused one and is true for a new token") {
        std::string current = "token-old";
        int forgotten = 0;
        auto auth = rest::token_callback([&] { return current; },
                                         [&] {
                                             ++forgotten;
                                             current = "token-new";
                                         });
        headers_of(*auth);
        CHECK(auth->renew());
        CHECK(forgotten == 1);
        CHECK(headers_of(*auth) == Headers{{"Authorization", "Bearer token-new"}});
    }
    SECTION("renewing is false when the callback hands back the refused token") {
        auto auth = rest::token_callback([] { return std::string("same-token"); });
        headers_of(*auth);
        CHECK_FALSE(auth->renew());
    }
    SECTION("an empty token from the callback is an auth error") {
        auto auth = rest::token_callback([] { return std::string(); });
        http::HttpRequest request;
        try {
            auth->apply(request);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::auth);
        }
    }
    util::clear_secrets_for_tests();
}
