#include "lib/oauth/refresh_engine.hpp"
#include "tests/support/temp_dir.hpp"

#include "drivers/google/token_client.hpp"
#include "drivers/zoho/token_client.hpp"
#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/oauth/zoho_accounts_fake.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

using namespace crmsync;
namespace fs = std::filesystem;
using Kind = oauth::RefreshOutcome::Kind;

namespace {

using crmsync::testing::TempState;

fakes::OAuthAccount oauth_account(const std::string& n) {
    return {"client-" + n, "secret-" + n, "refresh-" + n, "", false};
}

state::Account add_account(state::AccountStore& accounts, const std::string& provider,
                           const std::string& n) {
    state::Account a;
    a.provider = provider;
    a.email = n + "@example.com";
    a.client_id = "client-" + n;
    a.client_secret = "secret-" + n;
    a.refresh_token = "refresh-" + n;
    a.zoho_dc = provider == "zoho" ? "eu" : "";
    a.id = accounts.upsert(a).first;
    return *accounts.get(a.id);
}

oauth::RefreshSettings quick_settings() {
    oauth::RefreshSettings s;
    s.timeout = std::chrono::seconds(5);
    s.retry.max_attempts = 3;
    s.retry.base_delay = std::chrono::milliseconds(1);
    s.rate = 0;
    return s;
}

} // namespace

TEST_CASE("oauth::refresh_accounts", "[unit][http]") {
    fakes::GoogleTokenFake google;
    fakes::ZohoAccountsFakeOptions zoho_options;
    zoho_options.data_centre = "eu";
    fakes::ZohoAccountsFake zoho(zoho_options);
    google.start();
    zoho.start();
    oauth::ProviderTable providers;
    providers.add(drivers::google::make_oauth_provider(google.token_url()));
    providers.add(drivers::zoho::make_oauth_provider(zoho.base_url()));
    TempState temp;
    state::StateStore store(temp.path());
    state::AccountStore accounts(store);

    SECTION("stores each outcome and returns them in the order of the accounts") {
        google.add_account(oauth_account("1"));
        zoho.add_account(oauth_account("2"));
        const auto a = add_account(accounts, "google", "1");
        const auto b = add_account(accounts, "zoho", "2");
        const auto c = add_account(accounts, "google", "3"); // unknown to the fake
        const auto out = oauth::refresh_accounts(store, providers, {a, b, c}, quick_settings());
        REQUIRE(out.size() == 3);
        CHECK(out[0].kind == Kind::refreshed);
        CHECK(out[1].kind == Kind::refreshed);
        CHECK(out[1].grant.api_domain == zoho.api_domain());
        CHECK(out[2].kind == Kind::needs_reauth);
        CHECK(accounts.get(a.id)->access_token == out[0].grant.access_token);
        CHECK(accounts.get(b.id)->api_domain == zoho.api_domain());
        CHECK(accounts.get(c.id)->status == "needs_reauth");
        CHECK(accounts.get(c.id)->last_error.find("Google refused") != std::string::npos);
    }
    SECTION("retries a 503 with backoff, then stores the grant") {
        google.add_account(oauth_account("1"));
        google.inject({"POST", "", fakes::FaultKind::status, 503, std::nullopt, 0, 2});
        const auto a = add_account(accounts, "google", "1");
        const auto out = oauth::refresh_accounts(store, providers, {a}, quick_settings());
        CHECK(out[0].kind == Kind::refreshed);
        CHECK(out[0].requests == 3);
    }
    SECTION("a provider's used-up request budget defers the account without a request") {
        zoho.add_account(oauth_account("2"));
        const auto b = add_account(accounts, "zoho", "2");
        accounts.record_token_requests(b.id, Clock::real().wall_now(), 10,
                                       std::chrono::minutes(10));
        const auto out = oauth::refresh_accounts(store, providers, {b}, quick_settings());
        CHECK(out[0].kind == Kind::deferred);
        CHECK(out[0].message.find("Zoho grants 10 tokens") != std::string::npos);
        CHECK(zoho.request_count() == 0);
    }
    SECTION("every budgeted request is counted in the state file, retries included") {
        zoho.add_account(oauth_account("2"));
        zoho.inject({"POST", "", fakes::FaultKind::status, 500, std::nullopt, 0, 1});
        const auto b = add_account(accounts, "zoho", "2");
        const auto out = oauth::refresh_accounts(store, providers, {b}, quick_settings());
        CHECK(out[0].kind == Kind::refreshed);
        CHECK(accounts.token_requests_since(b.id, SystemTime{}).size() == 2);
    }
    SECTION("an account of an unknown provider fails without a request") {
        auto a = add_account(accounts, "google", "1");
        a.provider = "bitrix24";
        const auto out = oauth::refresh_accounts(store, providers, {a}, quick_settings());
        CHECK(out[0].kind == Kind::failed);
        CHECK(out[0].requests == 0);
    }
    SECTION("an endpoint that stays down fails after the attempts, leaving the account as error") {
        google.add_account(oauth_account("1"));
        google.inject({"POST", "", fakes::FaultKind::status, 503, std::nullopt, 0, 10});
        const auto a = add_account(accounts, "google", "1");
        const auto out = oauth::refresh_accounts(store, providers, {a}, quick_settings());
        CHECK(out[0].kind == Kind::failed);
        CHECK_FALSE(out[0].answered);
        CHECK(out[0].requests == 3);
        CHECK(accounts.get(a.id)->status == "error");
    }
}
