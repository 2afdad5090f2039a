// Checks the Google and Zoho OAuth token endpoint fakes against reference apis.md §2.1 and
// §3.1, with a real HTTP client on loopback.

#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/oauth/zoho_accounts_fake.hpp"
#include "tests/support/fake_process.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace {

using crmsync::fakes::Fault;
using crmsync::fakes::FaultKind;
using crmsync::fakes::GoogleTokenFake;
using crmsync::fakes::GoogleTokenFakeOptions;
using crmsync::fakes::OAuthAccount;
using crmsync::fakes::ZohoAccountsFake;
using crmsync::fakes::ZohoAccountsFakeOptions;
using nlohmann::json;
using namespace std::chrono_literals;

const OAuthAccount k_google_account{"client-1.apps.googleusercontent.com", "secret-1",
                                    "1//refresh-1", "https://www.googleapis.com/auth/contacts",
                                    false};
const OAuthAccount k_zoho_account{"1000.CLIENT1", "zoho-secret", "1000.refresh.one",
                                  "ZohoCRM.modules.ALL ZohoCreator.form.CREATE", false};

httplib::Client client_for(const std::string& base_url) {
    httplib::Client client(base_url);
    client.set_connection_timeout(2s);
    client.set_read_timeout(5s);
    return client;
}

std::string form(const std::string& grant_type, const OAuthAccount& account) {
    return "grant_type=" + grant_type + "&client_id=" + account.client_id +
           "&client_secret=" + account.client_secret + "&refresh_token=" + account.refresh_token;
}

// POST as Google clients do: every parameter in a form body.
httplib::Result google_refresh(httplib::Client& client, const OAuthAccount& account,
                               const std::string& path = "/token") {
    return client.Post(path.c_str(), form("refresh_token", account),
                       "application/x-www-form-urlencoded");
}

// POST as Zoho's own examples do: every parameter in the query string, no body.
httplib::Result zoho_refresh(httplib::Client& client, const OAuthAccount& account) {
    return client.Post(("/oauth/v2/token?" + form("refresh_token", account)).c_str(), "",
                       "application/x-www-form-urlencoded");
}

json body_of(const httplib::Result& res) {
    REQUIRE(res);
    return json::parse(res->body);
}

OAuthAccount with(OAuthAccount account, std::string OAuthAccount::*field, std::string value) {
    account.*field = std::move(value);
    return account;
}

} // namespace

TEST_CASE("GoogleTokenFake refreshes access tokens", "[http]") {
    GoogleTokenFake fake;
    fake.add_account(k_google_account);
    fake.start();
    auto client = client_for(fake.base_url());
    CHECK(fake.token_url() == fake.base_url() + "/token");

    SECTION("a valid refresh answers 200 with a Bearer token and no new refresh token") {
        auto res = google_refresh(client, k_google_account);
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->get_header_value("Content-Type") == "application/json; charset=utf-8");
        CHECK(res->get_header_value("Cache-Control").find("no-store") != std::string::npos);
        const auto body = json::parse(res->body);
        CHECK(body["access_token"].get<std::string>().starts_with("ya29."));
        CHECK(body["expires_in"] == 3599);
        CHECK(body["scope"] == k_google_account.scope);
        CHECK(body["token_type"] == "Bearer");
        CHECK_FALSE(body.contains("refresh_token"));
        CHECK(fake.tokens_issued(k_google_account.refresh_token) == 1);

        const auto token = body["access_token"].get<std::string>();
        const auto issued = fake.validate(token);
        REQUIRE(issued);
        CHECK(issued->client_id == k_google_account.client_id);
        CHECK(issued->expires_at - issued->issued_at == 3599s);
        CHECK_FALSE(fake.validate("ya29.unknown"));
        fake.set_clock_offset(3600s);
        CHECK_FALSE(fake.validate(token));
    }
    SECTION("every refresh issues a new token") {
        const auto first = body_of(google_refresh(client, k_google_account))["access_token"];
        const auto second = body_of(google_refresh(client, k_google_account))["access_token"];
        CHECK(first != second);
        CHECK(fake.tokens_issued(k_google_account.refresh_token) == 2);
        CHECK(fake.issued_tokens().size() == 2);
    }
    SECTION("the legacy endpoints answer the same") {
        CHECK(google_refresh(client, k_google_account, "/o/oauth2/token")->status == 200);
        CHECK(google_refresh(client, k_google_account, "/oauth2/v4/token")->status == 200);
    }
    SECTION("an unknown client is 401 invalid_client, not found") {
        auto res = google_refresh(client, with(k_google_account, &OAuthAccount::client_id, "x"));
        CHECK(res->status == 401);
        CHECK(body_of(res) == json{{"error", "invalid_client"},
                                   {"error_description", "The OAuth client was not found."}});
    }
    SECTION("a wrong client secret is 401 invalid_client, Unauthorized") {
        auto res =
            google_refresh(client, with(k_google_account, &OAuthAccount::client_secret, "bad"));
        CHECK(res->status == 401);
        CHECK(body_of(res)["error_description"] == "Unauthorized");
    }
    SECTION("a revoked refresh token is 400 invalid_grant until restored") {
        const auto token = body_of(google_refresh(client, k_google_account))["access_token"];
        fake.set_revoked(k_google_account.refresh_token);
        auto res = google_refresh(client, k_google_account);
        CHECK(res->status == 400);
        CHECK(body_of(res) == json{{"error", "invalid_grant"},
                                   {"error_description", "Token has been expired or revoked."}});
        CHECK_FALSE(fake.validate(token));
        fake.set_revoked(k_google_account.refresh_token, false);
        CHECK(google_refresh(client, k_google_account)->status == 200);
    }
    SECTION("an unknown refresh token is 400 invalid_grant") {
        auto res =
            google_refresh(client, with(k_google_account, &OAuthAccount::refresh_token, "1//x"));
        CHECK(res->status == 400);
        CHECK(body_of(res)["error"] == "invalid_grant");
        CHECK(fake.requests().back().error == "invalid_grant");
    }
    SECTION("another client's refresh token is 400 invalid_grant") {
        fake.add_account({"client-2", "secret-2", "1//refresh-2", "", false});
        auto res = google_refresh(
            client, with(k_google_account, &OAuthAccount::refresh_token, "1//refresh-2"));
        CHECK(res->status == 400);
        CHECK(body_of(res)["error"] == "invalid_grant");
    }
    SECTION("grant_type must be refresh_token, and only the form body counts") {
        auto res = client.Post("/token", form("authorization_code", k_google_account),
                               "application/x-www-form-urlencoded");
        CHECK(res->status == 400);
        CHECK(body_of(res)["error"] == "unsupported_grant_type");
        auto query = client.Post(("/token?" + form("refresh_token", k_google_account)).c_str(), "",
                                 "application/x-www-form-urlencoded");
        CHECK(query->status == 400);
        auto missing =
            client.Post("/token",
                        "grant_type=refresh_token&client_id=" + k_google_account.client_id +
                            "&client_secret=secret-1",
                        "application/x-www-form-urlencoded");
        CHECK(missing->status == 400);
        CHECK(body_of(missing)["error"] == "invalid_request");
    }
    SECTION("accounts must agree on client secrets and refresh token owners") {
        CHECK_THROWS_AS(fake.add_account(with(k_google_account, &OAuthAccount::client_secret, "b")),
                        std::invalid_argument);
        CHECK_THROWS_AS(fake.add_account(with(k_google_account, &OAuthAccount::client_id, "c-3")),
                        std::invalid_argument);
        CHECK_THROWS_AS(fake.set_revoked("nope"), std::out_of_range);
    }
    SECTION("unknown paths are 404 and recorded") {
        CHECK(client.Get("/token")->status == 404);
        CHECK(fake.request_count("/token") == 1);
    }
}

TEST_CASE("ZohoAccountsFake refreshes access tokens", "[http]") {
    ZohoAccountsFakeOptions options;
    options.data_centre = "eu";
    ZohoAccountsFake fake(options);
    fake.add_account(k_zoho_account);
    fake.start();
    auto client = client_for(fake.base_url());
    CHECK(fake.token_url() == fake.base_url() + "/oauth/v2/token");

    SECTION("a valid refresh in the query answers 200 with the data centre's api_domain") {
        auto res = zoho_refresh(client, k_zoho_account);
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->get_header_value("Content-Type") == "application/json;charset=UTF-8");
        const auto body = json::parse(res->body);
        CHECK(body["access_token"].get<std::string>().starts_with("1000."));
        CHECK(body["api_domain"] == "https://www.zohoapis.eu");
        CHECK(body["token_type"] == "Bearer");
        CHECK(body["expires_in"] == 3600);
        CHECK(body["scope"] == k_zoho_account.scope);
        CHECK_FALSE(body.contains("refresh_token"));
        CHECK(fake.validate(body["access_token"].get<std::string>()));
    }
    SECTION("form parameters work too") {
        auto res = client.Post("/oauth/v2/token", form("refresh_token", k_zoho_account),
                               "application/x-www-form-urlencoded");
        CHECK(res->status == 200);
        CHECK(body_of(res).contains("access_token"));
    }
    SECTION("refusals are HTTP 200 with an error member") {
        const auto error_of = [&](const OAuthAccount& account) {
            auto res = zoho_refresh(client, account);
            REQUIRE(res);
            CHECK(res->status == 200);
            return json::parse(res->body);
        };
        CHECK(error_of(with(k_zoho_account, &OAuthAccount::refresh_token, "1000.bad")) ==
              json{{"error", "invalid_code"}});
        CHECK(error_of(with(k_zoho_account, &OAuthAccount::client_id, "1000.OTHER")) ==
              json{{"error", "invalid_client"}});
        CHECK(error_of(with(k_zoho_account, &OAuthAccount::client_secret, "bad")) ==
              json{{"error", "invalid_client_secret"}});
        fake.set_revoked(k_zoho_account.refresh_token);
        CHECK(error_of(k_zoho_account) == json{{"error", "invalid_code"}});
        auto res = client.Post("/oauth/v2/token?grant_type=authorization_code", "",
                               "application/x-www-form-urlencoded");
        CHECK(res->status == 200);
        CHECK(body_of(res)["error"] == "unsupported_grant_type");
        CHECK(fake.tokens_issued(k_zoho_account.refresh_token) == 0);
    }
    SECTION("a client of another data centre is invalid_client") {
        ZohoAccountsFake us;
        us.start();
        auto us_client = client_for(us.base_url());
        CHECK(body_of(zoho_refresh(us_client, k_zoho_account))["error"] == "invalid_client");
    }
    SECTION("allows 10 tokens per refresh token per 10 minutes, sliding") {
        for (int i = 0; i < 10; ++i) {
            REQUIRE(zoho_refresh(client, k_zoho_account)->status == 200);
        }
        auto refused = zoho_refresh(client, k_zoho_account);
        REQUIRE(refused);
        CHECK(refused->status == 400);
        CHECK(json::parse(refused->body) ==
              json{{"error", "Access Denied"},
                   {"error_description", "You have made too many requests continuously. Please "
                                         "try again after some time."},
                   {"status", "failure"}});
        CHECK(fake.requests().back().error == "Access Denied");
        CHECK(fake.tokens_issued(k_zoho_account.refresh_token) == 10);

        fake.add_account({k_zoho_account.client_id, k_zoho_account.client_secret,
                          "1000.refresh.two", "", false});
        CHECK(zoho_refresh(client,
                           with(k_zoho_account, &OAuthAccount::refresh_token, "1000.refresh.two"))
                  ->status == 200);

        fake.set_clock_offset(599s);
        CHECK(zoho_refresh(client, k_zoho_account)->status == 400);
        fake.set_clock_offset(601s);
        CHECK(zoho_refresh(client, k_zoho_account)->status == 200);
        CHECK(fake.tokens_issued(k_zoho_account.refresh_token) == 11);
    }
    SECTION("the api_domain can point at a local API fake") {
        ZohoAccountsFakeOptions local;
        local.api_domain = "http://127.0.0.1:1";
        ZohoAccountsFake other(local);
        CHECK(other.api_domain() == "http://127.0.0.1:1");
        CHECK(crmsync::fakes::zoho_api_domain("ca") == "https://www.zohoapis.ca");
        CHECK_FALSE(crmsync::fakes::zoho_api_domain("xx"));
        ZohoAccountsFakeOptions bad;
        bad.data_centre = "xx";
        CHECK_THROWS_AS(ZohoAccountsFake(bad), std::invalid_argument);
    }
}

TEST_CASE("OAuth fakes inject faults and keep statistics", "[http]") {
    GoogleTokenFake fake;
    fake.add_account(k_google_account);
    fake.start();
    auto client = client_for(fake.base_url());

    SECTION("5xx with Retry-After, for the given count, issuing nothing") {
        fake.inject({"POST", "/token", FaultKind::status, 503, "2", 0, 2});
        for (int i = 0; i < 2; ++i) {
            auto res = google_refresh(client, k_google_account);
            REQUIRE(res);
            CHECK(res->status == 503);
            CHECK(res->get_header_value("Retry-After") == "2");
        }
        CHECK(google_refresh(client, k_google_account)->status == 200);
        CHECK(fake.tokens_issued(k_google_account.refresh_token) == 1);
        CHECK(fake.requests().at(0).fault == FaultKind::status);
    }
    SECTION("reset: the client sees no response") {
        fake.inject({"", "", FaultKind::reset, 0, std::nullopt, 0, 1});
        CHECK_FALSE(google_refresh(client, k_google_account));
        CHECK(fake.requests().at(0).status == 0);
        CHECK(google_refresh(client, k_google_account)->status == 200);
    }
    SECTION("slow: answers normally after the delay") {
        fake.inject({"", "", FaultKind::slow, 0, std::nullopt, 300, 1});
        const auto start = std::chrono::steady_clock::now();
        CHECK(google_refresh(client, k_google_account)->status == 200);
        CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    }
    SECTION("malformed: 200 with a body that is not JSON") {
        fake.inject({"", "", FaultKind::malformed, 0, std::nullopt, 0, 1});
        auto res = google_refresh(client, k_google_account);
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK_THROWS(json::parse(res->body));
    }
    SECTION("records parameters, status and error of each request") {
        google_refresh(client, k_google_account);
        google_refresh(client, with(k_google_account, &OAuthAccount::client_secret, "bad"));
        const auto requests = fake.requests();
        REQUIRE(requests.size() == 2);
        CHECK(requests[0].params.form.at("refresh_token") == k_google_account.refresh_token);
        CHECK(requests[0].status == 200);
        CHECK(requests[0].error.empty());
        CHECK(requests[1].status == 401);
        CHECK(requests[1].error == "invalid_client");
        CHECK(fake.request_count() == 2);
        fake.reset_stats();
        CHECK(fake.request_count() == 0);
        CHECK(fake.tokens_issued(k_google_account.refresh_token) == 1);
    }
}

TEST_CASE("OAuth fakes serve control endpoints", "[http]") {
    ZohoAccountsFakeOptions options;
    options.control_endpoints = true;
    options.token_limit = 1;
    ZohoAccountsFake fake(options);
    fake.start();
    auto client = client_for(fake.base_url());

    const json account{{"client_id", k_zoho_account.client_id},
                       {"client_secret", k_zoho_account.client_secret},
                       {"refresh_token", k_zoho_account.refresh_token}};
    CHECK(client.Post("/_fake/accounts", account.dump(), "application/json")->status == 200);
    const auto token = body_of(zoho_refresh(client, k_zoho_account))["access_token"];
    CHECK(zoho_refresh(client, k_zoho_account)->status == 400);

    const auto valid =
        body_of(client.Get(("/_fake/token?access_token=" + token.get<std::string>()).c_str()));
    CHECK(valid["valid"] == true);
    CHECK(valid["refresh_token"] == k_zoho_account.refresh_token);
    CHECK(client
              .Post(("/_fake/revoke?refresh_token=" + k_zoho_account.refresh_token).c_str(), "", "")
              ->status == 200);
    CHECK(body_of(client.Get(
              ("/_fake/token?access_token=" + token.get<std::string>()).c_str()))["valid"] ==
          false);
    CHECK(client.Post("/_fake/clock?offset_ms=700000", "", "")->status == 200);
    CHECK(client.Post("/_fake/faults", R"({"kind":"status","status":502})", "application/json")
              ->status == 200);
    CHECK(zoho_refresh(client, k_zoho_account)->status == 502);

    const auto stats = body_of(client.Get("/_fake/stats"));
    CHECK(stats["total"] == 3);
    CHECK(stats["tokens_issued"][k_zoho_account.refresh_token] == 1);
    CHECK(stats["recent"].back()["fault"] == "status");
    CHECK(client.Post("/_fake/accounts", R"({"client_id":1})", "application/json")->status == 400);
}

#ifdef CRMSYNC_OAUTH_FAKE_BINARY
TEST_CASE("oauth_fake runs as a process and exits cleanly on SIGTERM", "[http]") {
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    process.start(CRMSYNC_OAUTH_FAKE_BINARY,
                  {"--provider", "zoho", "--port-file", port_file, "--account",
                   k_zoho_account.client_id + ":" + k_zoho_account.client_secret + ":" +
                       k_zoho_account.refresh_token,
                   "--api-domain", "http://127.0.0.1:9"});
    const int port = process.wait_for_port(port_file, 10s);
    auto client = client_for("http://127.0.0.1:" + std::to_string(port));
    const auto body = body_of(zoho_refresh(client, k_zoho_account));
    CHECK(body["api_domain"] == "http://127.0.0.1:9");
    CHECK(body_of(client.Get("/_fake/stats"))["tokens_issued"][k_zoho_account.refresh_token] == 1);
    CHECK(process.terminate(10s) == 0);
}
#endif
