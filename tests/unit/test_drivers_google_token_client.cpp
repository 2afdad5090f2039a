#include "drivers/google/token_client.hpp"

#include "tests/fakes/oauth/google_token_fake.hpp"

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

state::Account account() {
    state::Account a;
    a.id = 1;
    a.provider = "google";
    a.email = "alice@example.com";
    a.client_id = "client-1.apps.googleusercontent.com";
    a.client_secret = "GOCSPX-s&cret=1";
    a.refresh_token = "1//refresh+one";
    return a;
}

const SystemTime k_sent{std::chrono::milliseconds(1'700'000'000'000)};

} // namespace

TEST_CASE("google::read_refresh_answer", "[unit]") {
    SECTION("200 with an access token is a grant expiring expires_in after the request left") {
        const auto a = drivers::google::read_refresh_answer(
            answer(200, R"({"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"})"),
            k_sent);
        CHECK(a.kind == Kind::granted);
        CHECK(a.grant.access_token == "ya29.abc");
        CHECK(a.grant.expires_at == k_sent + std::chrono::seconds(3599));
        CHECK(a.grant.api_domain.empty());
    }
    SECTION("invalid_grant (400) means re-authorize") {
        const auto a = drivers::google::read_refresh_answer(
            answer(
                400,
                R"({"error":"invalid_grant","error_description":"Token has been expired or revoked."})"),
            k_sent);
        CHECK(a.kind == Kind::invalid_grant);
        CHECK(a.error == "HTTP 400 invalid_grant: Token has been expired or revoked.");
    }
    SECTION("invalid_client (401) and unauthorized_client are the client's fault") {
        CHECK(drivers::google::read_refresh_answer(
                  answer(401, R"({"error":"invalid_client","error_description":"Unauthorized"})"),
                  k_sent)
                  .kind == Kind::invalid_client);
        CHECK(drivers::google::read_refresh_answer(
                  answer(400, R"({"error":"unauthorized_client"})"), k_sent)
                  .kind == Kind::invalid_client);
    }
    SECTION("other 4xx errors are refusals") {
        CHECK(drivers::google::read_refresh_answer(answer(400, R"({"error":"invalid_request"})"),
                                                   k_sent)
                  .kind == Kind::refused);
        CHECK(drivers::google::read_refresh_answer(answer(404, "not found"), k_sent).kind ==
              Kind::refused);
    }
    SECTION("5xx, 429 and damaged 200 bodies are transient") {
        CHECK(drivers::google::read_refresh_answer(answer(503, ""), k_sent).kind ==
              Kind::transient);
        CHECK(drivers::google::read_refresh_answer(answer(500, R"({"error":"internal"})"), k_sent)
                  .kind == Kind::transient);
        auto limited = answer(429, "");
        limited.headers["retry-after"] = "7";
        const auto a = drivers::google::read_refresh_answer(limited, k_sent);
        CHECK(a.kind == Kind::transient);
        CHECK(a.retry_after == std::chrono::milliseconds(7000));
        CHECK(drivers::google::read_refresh_answer(answer(200, R"({"access_tok)"), k_sent).kind ==
              Kind::transient);
        CHECK(drivers::google::read_refresh_answer(answer(200, "{}"), k_sent).kind ==
              Kind::transient);
    }
    SECTION("an HTTP 200 carrying an error is that error") {
        CHECK(drivers::google::read_refresh_answer(answer(200, R"({"error":"invalid_grant"})"),
                                                   k_sent)
                  .kind == Kind::invalid_grant);
    }
}

TEST_CASE("google::refresh_request against the token fake", "[unit][http]") {
    fakes::GoogleTokenFake fake;
    const auto a = account();
    fake.add_account({a.client_id, a.client_secret, a.refresh_token, "", false});
    fake.start();
    http::HttpClient client;

    SECTION("the form body carries the encoded secrets and the fake grants a token") {
        const auto request =
            drivers::google::refresh_request(fake.token_url(), a, std::chrono::seconds(5));
        CHECK(request.method == "POST");
        CHECK(request.url.find("refresh") == std::string::npos);
        http::HttpResponse response;
        http::TransportFailure failure;
        REQUIRE(client.perform(request, response, failure));
        const auto answer = drivers::google::read_refresh_answer(response, k_sent);
        CHECK(answer.kind == Kind::granted);
        REQUIRE(fake.validate(answer.grant.access_token));
        CHECK(fake.tokens_issued(a.refresh_token) == 1);
    }
    SECTION("a revoked refresh token is invalid_grant") {
        fake.set_revoked(a.refresh_token);
        http::HttpResponse response;
        http::TransportFailure failure;
        REQUIRE(client.perform(
            drivers::google::refresh_request(fake.token_url(), a, std::chrono::seconds(5)),
            response, failure));
        CHECK(drivers::google::read_refresh_answer(response, k_sent).kind == Kind::invalid_grant);
    }
    SECTION("a wrong client secret is invalid_client") {
        auto wrong = a;
        wrong.client_secret = "wrong";
        http::HttpResponse response;
        http::TransportFailure failure;
        REQUIRE(client.perform(
            drivers::google::refresh_request(fake.token_url(), wrong, std::chrono::seconds(5)),
            response, failure));
        CHECK(drivers::google::read_refresh_answer(response, k_sent).kind == Kind::invalid_client);
    }
}
