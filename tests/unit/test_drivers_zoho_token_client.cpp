#include "drivers/zoho/token_client.hpp"

#include "tests/fakes/oauth/zoho_accounts_fake.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;
using Kind = state::TokenAnswer::Kind;

namespace {

http::HttpResponse answer(long status, std::string body) {
    http::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

const SystemTime k_sent{std::chrono::milliseconds(1'700'000'000'000)};

state::TokenAnswer refresh(const std::string& url, const state::Account& a) {
    http::HttpClient client;
    http::HttpResponse response;
    http::TransportFailure failure;
    REQUIRE(client.perform(drivers::zoho::refresh_request(url, a, std::chrono::seconds(5)),
                           response, failure));
    return drivers::zoho::read_refresh_answer(response, k_sent);
}

} // namespace

TEST_CASE("zoho data centres", "[unit]") {
    SECTION("canonical names, short forms accepted") {
        CHECK(drivers::zoho::canonical_dc("com") == "com");
        CHECK(drivers::zoho::canonical_dc("US") == "com");
        CHECK(drivers::zoho::canonical_dc("au") == "com.au");
        CHECK(drivers::zoho::canonical_dc("com.au") == "com.au");
        CHECK(drivers::zoho::canonical_dc("cn") == "com.cn");
        CHECK(drivers::zoho::canonical_dc("eu") == "eu");
        CHECK(drivers::zoho::canonical_dc("ca") == "ca");
        CHECK_FALSE(drivers::zoho::canonical_dc("de"));
        CHECK_FALSE(drivers::zoho::canonical_dc(""));
    }
    SECTION("accounts servers: accounts.zoho.<dc>, Canada on zohocloud.ca") {
        CHECK(drivers::zoho::accounts_url("com") == "https://accounts.zoho.com");
        CHECK(drivers::zoho::accounts_url("eu") == "https://accounts.zoho.eu");
        CHECK(drivers::zoho::accounts_url("com.au") == "https://accounts.zoho.com.au");
        CHECK(drivers::zoho::accounts_url("jp") == "https://accounts.zoho.jp");
        CHECK(drivers::zoho::accounts_url("ca") == "https://accounts.zohocloud.ca");
    }
    SECTION("the token URL, with or without an override") {
        CHECK(drivers::zoho::token_url("in", "") == "https://accounts.zoho.in/oauth/v2/token");
        CHECK(drivers::zoho::token_url("ca", "") == "https://accounts.zohocloud.ca/oauth/v2/token");
        CHECK(drivers::zoho::token_url("eu", "http://127.0.0.1:9/") ==
              "http://127.0.0.1:9/oauth/v2/token");
        CHECK(drivers::zoho::token_url("eu", "http://proxy/oauth/v2/token") ==
              "http://proxy/oauth/v2/token");
    }
}

TEST_CASE("zoho::read_refresh_answer", "[unit]") {
    SECTION("200 with an access token and api_domain") {
        const auto a = drivers::zoho::read_refresh_answer(
            answer(
                200,
                R"({"access_token":"1000.a.b","api_domain":"https://www.zohoapis.eu","token_type":"Bearer","expires_in":3600})"),
            k_sent);
        CHECK(a.kind == Kind::granted);
        CHECK(a.grant.access_token == "1000.a.b");
        CHECK(a.grant.api_domain == "https://www.zohoapis.eu");
        CHECK(a.grant.expires_at == k_sent + std::chrono::hours(1));
    }
    SECTION("HTTP 200 error bodies are failures") {
        CHECK(drivers::zoho::read_refresh_answer(answer(200, R"({"error":"invalid_code"})"), k_sent)
                  .kind == Kind::invalid_grant);
        CHECK(
            drivers::zoho::read_refresh_answer(answer(200, R"({"error":"invalid_client"})"), k_sent)
                .kind == Kind::invalid_client);
        CHECK(drivers::zoho::read_refresh_answer(
                  answer(200, R"({"error":"invalid_client_secret"})"), k_sent)
                  .kind == Kind::invalid_client);
        CHECK(drivers::zoho::read_refresh_answer(
                  answer(200, R"({"error":"unsupported_grant_type"})"), k_sent)
                  .kind == Kind::refused);
    }
    SECTION("the throttle answer, and 429, are throttled") {
        CHECK(
            drivers::zoho::read_refresh_answer(
                answer(
                    400,
                    R"({"error_description":"You have made too many requests continuously. Please try again after some time.","error":"Access Denied","status":"failure"})"),
                k_sent)
                .kind == Kind::throttled);
        CHECK(drivers::zoho::read_refresh_answer(answer(429, ""), k_sent).kind == Kind::throttled);
    }
    SECTION("5xx and damaged bodies are transient, even with an error member") {
        CHECK(drivers::zoho::read_refresh_answer(answer(502, R"({"error":"bad gateway"})"), k_sent)
                  .kind == Kind::transient);
        CHECK(drivers::zoho::read_refresh_answer(answer(200, "<html>"), k_sent).kind ==
              Kind::transient);
    }
}

TEST_CASE("zoho::refresh_request against the accounts fake", "[unit][http]") {
    fakes::ZohoAccountsFakeOptions options;
    options.data_centre = "eu";
    options.token_limit = 2;
    fakes::ZohoAccountsFake fake(options);
    fake.add_account(
        {"1000.CLIENT", "zoho-secret", "1000.refresh.one", "ZohoCRM.modules.ALL", false});
    fake.start();
    state::Account a;
    a.provider = "zoho";
    a.client_id = "1000.CLIENT";
    a.client_secret = "zoho-secret";
    a.refresh_token = "1000.refresh.one";
    a.zoho_dc = "eu";
    const std::string url = drivers::zoho::token_url("eu", fake.base_url());

    SECTION("a grant carries the data centre's api_domain") {
        const auto answer = refresh(url, a);
        CHECK(answer.kind == Kind::granted);
        CHECK(answer.grant.api_domain == "https://www.zohoapis.eu");
    }
    SECTION("the fake's per-token limit shows as throttled") {
        CHECK(refresh(url, a).kind == Kind::granted);
        CHECK(refresh(url, a).kind == Kind::granted);
        CHECK(refresh(url, a).kind == Kind::throttled);
    }
    SECTION(
        "an unknown client (another data centre) is invalid_client; a bad token invalid_grant") {
        auto other = a;
        other.client_id = "1000.OTHER";
        CHECK(refresh(url, other).kind == Kind::invalid_client);
        auto revoked = a;
        revoked.refresh_token = "1000.refresh.unknown";
        CHECK(refresh(url, revoked).kind == Kind::invalid_grant);
    }
}
