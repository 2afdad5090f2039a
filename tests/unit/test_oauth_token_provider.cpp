#include "lib/oauth/token_provider.hpp"
#include "tests/support/temp_dir.hpp"

#include "drivers/google/token_client.hpp"
#include "drivers/zoho/token_client.hpp"
#include "lib/core/error.hpp"
#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/oauth/zoho_accounts_fake.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

using namespace crmsync;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using crmsync::testing::TempState;

std::int64_t add_account(state::AccountStore& accounts, const std::string& provider,
                         const std::string& email, const fakes::OAuthAccount& secrets) {
    state::Account a;
    a.provider = provider;
    a.email = email;
    a.client_id = secrets.client_id;
    a.client_secret = secrets.client_secret;
    a.refresh_token = secrets.refresh_token;
    a.zoho_dc = provider == "zoho" ? "eu" : "";
    return accounts.upsert(a).first;
}

ErrorKind kind_of(const std::function<void()>& call) {
    try {
        call();
    } catch (const Error& e) {
        return e.kind();
    }
    FAIL("no crmsync::Error was thrown");
    return ErrorKind::internal;
}

// What a driver does with the interface: ask for a token, send it, and see whether the
// service took it.
bool driver_call(oauth::TokenProvider& tokens, const std::string& account,
                 const fakes::OAuthTokenFake& service) {
    const auto token = tokens.token(account, "", 10min);
    const std::string prefix = "Bearer ";
    return token.authorization.rfind(prefix, 0) == 0 &&
           service.validate(token.authorization.substr(prefix.size())).has_value();
}

} // namespace

TEST_CASE("oauth::make_state_token_provider", "[unit][http]") {
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
    const fakes::OAuthAccount alice{"client-1", "secret-1", "refresh-1", "", false};
    const fakes::OAuthAccount zed{"1000.CLIENT", "zoho-secret", "1000.refresh", "", false};
    google.add_account(alice);
    zoho.add_account(zed);
    const auto alice_id = add_account(accounts, "google", "alice@example.com", alice);
    const auto zed_id = add_account(accounts, "zoho", "zed@example.com", zed);

    oauth::StateTokenOptions options;
    options.refresh.timeout = 5s;
    options.refresh.retry.base_delay = 1ms;
    options.lock_wait = 0ms;
    std::vector<std::string> events;
    options.hooks.found = [&](const state::Account& a) { events.push_back("found " + a.email); };
    options.hooks.refresh_due = [&](const state::Account&) { events.emplace_back("refresh"); };
    const auto tokens = oauth::make_state_token_provider(store, providers, options);

    SECTION("returns the stored token without a request while it is valid long enough") {
        state::TokenGrant grant{"ya29.stored", Clock::real().wall_now() + 1h, ""};
        REQUIRE(accounts.record_grant(alice_id, alice.refresh_token, grant));
        const auto t = tokens->token("alice@example.com", "", 5min);
        CHECK(t.access_token == "ya29.stored");
        CHECK(t.authorization == "Bearer ya29.stored");
        CHECK_FALSE(t.refreshed);
        CHECK(google.request_count() == 0);
        CHECK(events == std::vector<std::string>{"found alice@example.com"});
    }
    SECTION("refreshes a token that expires within min_valid and stores the new one") {
        state::TokenGrant grant{"ya29.old", Clock::real().wall_now() + 2min, ""};
        REQUIRE(accounts.record_grant(alice_id, alice.refresh_token, grant));
        const auto t = tokens->token(std::to_string(alice_id), "google", 5min);
        CHECK(t.refreshed);
        CHECK(t.access_token != "ya29.old");
        CHECK(google.validate(t.access_token));
        CHECK(accounts.get(alice_id)->access_token == t.access_token);
        CHECK(events == std::vector<std::string>{"found alice@example.com", "refresh"});
        // Now valid for an hour: the next call sends nothing.
        CHECK(tokens->token("alice@example.com", "", 5min).access_token == t.access_token);
        CHECK(google.request_count() == 1);
    }
    SECTION("a Zoho token carries the api_domain and the Zoho-oauthtoken header") {
        const auto t = tokens->token("zed@example.com", "zoho", 5min);
        CHECK(t.provider == "zoho");
        CHECK(t.account_id == zed_id);
        CHECK(t.api_domain == zoho.api_domain());
        CHECK(t.authorization == "Zoho-oauthtoken " + t.access_token);
        CHECK(accounts.token_requests_since(zed_id, SystemTime{}).size() == 1);
    }
    SECTION("a used-up Zoho budget gives the current token while it lasts, with the reason") {
        state::TokenGrant grant{"1000.current", Clock::real().wall_now() + 2min, ""};
        REQUIRE(accounts.record_grant(zed_id, zed.refresh_token, grant));
        accounts.record_token_requests(zed_id, Clock::real().wall_now(), 10, 10min);
        const auto t = tokens->token("zed@example.com", "", 5min);
        CHECK(t.access_token == "1000.current");
        CHECK(t.deferred.find("Zoho grants 10 tokens") != std::string::npos);
        CHECK(zoho.request_count() == 0);
    }
    SECTION("a revoked refresh token is an auth error, stored as needs_reauth") {
        google.set_revoked(alice.refresh_token);
        CHECK(kind_of([&] { tokens->token("alice@example.com", "", 5min); }) == ErrorKind::auth);
        CHECK(accounts.get(alice_id)->status == "needs_reauth");
        // Known to need re-authorization: no second request.
        CHECK(kind_of([&] { tokens->token("alice@example.com", "", 5min); }) == ErrorKind::auth);
        CHECK(google.request_count() == 1);
    }
    SECTION("an endpoint that stays down is a connection error") {
        google.inject({"POST", "", fakes::FaultKind::status, 503, std::nullopt, 0, 100});
        options.refresh.retry.max_attempts = 2;
        const auto quick = oauth::make_state_token_provider(store, providers, options);
        CHECK(kind_of([&] { quick->token("alice@example.com", "", 5min); }) ==
              ErrorKind::connection);
        CHECK(accounts.get(alice_id)->status == "error");
    }
    SECTION("unknown and disabled accounts are usage errors, before any request") {
        CHECK(kind_of([&] { tokens->token("nobody@example.com", "", 5min); }) == ErrorKind::usage);
        accounts.set_active(alice_id, false);
        CHECK(kind_of([&] { tokens->token("alice@example.com", "", 5min); }) == ErrorKind::usage);
        CHECK(google.request_count() == 0);
        CHECK(events.empty());
    }
    SECTION("a driver gets a token the service accepts, through the interface alone") {
        CHECK(driver_call(*tokens, "alice@example.com", google));
        CHECK(driver_call(*tokens, "alice@example.com", google));
        CHECK(google.tokens_issued(alice.refresh_token) == 1);
    }
}
