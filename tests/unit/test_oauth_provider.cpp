#include "lib/oauth/provider.hpp"

#include "drivers/google/token_client.hpp"
#include "drivers/zoho/token_client.hpp"
#include "lib/core/error.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;

TEST_CASE("oauth::ProviderTable", "[unit]") {
    oauth::ProviderTable table;
    table.add(drivers::google::make_oauth_provider(""));
    table.add(drivers::zoho::make_oauth_provider("http://127.0.0.1:9"));

    SECTION("finds a provider by the name accounts store") {
        REQUIRE(table.find("google") != nullptr);
        CHECK(table.find("google")->title() == "Google");
        REQUIRE(table.find("zoho") != nullptr);
        CHECK(table.find("zoho")->authorization_scheme() == "Zoho-oauthtoken");
        CHECK(table.find("bitrix24") == nullptr);
    }
    SECTION("lists the names in the order they were added") {
        CHECK(table.names() == std::vector<std::string>{"google", "zoho"});
    }
    SECTION("refuses a second provider of the same name") {
        CHECK_THROWS_AS(table.add(drivers::google::make_oauth_provider("")), Error);
    }
}

TEST_CASE("oauth::Provider of Google and Zoho", "[unit]") {
    state::Account zoho;
    zoho.provider = "zoho";
    zoho.zoho_dc = "com.au";

    SECTION("Google asks its own endpoint unless an override is given, with no budget") {
        const auto google = drivers::google::make_oauth_provider("");
        CHECK(google->token_url(zoho) == drivers::google::k_token_url);
        CHECK(drivers::google::make_oauth_provider("http://127.0.0.1:9/token")->token_url(zoho) ==
              "http://127.0.0.1:9/token");
        CHECK_FALSE(google->request_budget());
        CHECK(google->authorization_scheme() == "Bearer");
        CHECK(google->client_hint(zoho).empty());
    }
    SECTION("Zoho asks the account's data centre and grants 10 tokens per 10 minutes") {
        const auto provider = drivers::zoho::make_oauth_provider("");
        CHECK(provider->token_url(zoho) == "https://accounts.zoho.com.au/oauth/v2/token");
        const auto budget = provider->request_budget();
        REQUIRE(budget);
        CHECK(budget->requests == 10);
        CHECK(budget->window == std::chrono::minutes(10));
        CHECK(provider->client_hint(zoho) == " and the data centre (this account uses 'com.au')");
    }
    SECTION("Zoho's HTTP 200 error body is read as a refusal, not a grant") {
        const auto provider = drivers::zoho::make_oauth_provider("");
        http::HttpResponse response;
        response.status = 200;
        response.body = R"({"error":"invalid_code"})";
        CHECK(provider->read_refresh_answer(response, SystemTime{}).kind ==
              state::TokenAnswer::Kind::invalid_grant);
    }
}
