#include "lib/oauth/refresh_run.hpp"
#include "tests/support/temp_dir.hpp"

#include "drivers/google/token_client.hpp"
#include "lib/core/error.hpp"
#include "tests/fakes/oauth/google_token_fake.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

using namespace crmsync;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using crmsync::testing::TempState;

} // namespace

TEST_CASE("oauth::select_accounts and oauth::refresh_due_accounts", "[unit][http]") {
    fakes::GoogleTokenFake google;
    google.start();
    oauth::ProviderTable providers;
    providers.add(drivers::google::make_oauth_provider(google.token_url()));
    TempState temp;
    state::StateStore store(temp.path());
    state::AccountStore accounts(store);
    std::vector<std::int64_t> ids;
    for (int n = 1; n <= 3; ++n) {
        const std::string i = std::to_string(n);
        google.add_account({"client-" + i, "secret-" + i, "refresh-" + i, "", false});
        state::Account a;
        a.provider = "google";
        a.email = "user" + i + "@example.com";
        a.client_id = "client-" + i;
        a.client_secret = "secret-" + i;
        a.refresh_token = "refresh-" + i;
        ids.push_back(accounts.upsert(a).first);
    }
    oauth::RefreshSettings settings;
    settings.rate = 0;
    settings.retry.base_delay = 1ms;
    oauth::RefreshRun run;
    run.chunk = 2;

    SECTION("selects every active account, or the one named; unknown and disabled are usage") {
        accounts.set_active(ids[2], false);
        CHECK(oauth::select_accounts(store, "", "").size() == 2);
        CHECK(oauth::select_accounts(store, "user2@example.com", "").at(0).id == ids[1]);
        CHECK_THROWS_AS(oauth::select_accounts(store, "nobody@example.com", ""), Error);
        CHECK_THROWS_AS(oauth::select_accounts(store, "user3@example.com", ""), Error);
    }
    SECTION("refreshes the due accounts in chunks and leaves fresh ones alone") {
        REQUIRE(accounts.record_grant(ids[0], "refresh-1",
                                      {"ya29.fresh", Clock::real().wall_now() + 1h, ""}));
        const auto r = oauth::refresh_due_accounts(
            store, providers, oauth::select_accounts(store, "", ""), run, settings, {});
        CHECK(r.accounts == 3);
        CHECK(r.fresh == 1);
        CHECK(r.due == 2);
        CHECK(r.refreshed == 2);
        CHECK(r.failures() == 0);
        CHECK(r.problems.empty());
        CHECK(google.request_count() == 2);
    }
    SECTION("reports each failure as it happens and counts it as the account's own") {
        google.set_revoked("refresh-2");
        std::vector<std::string> seen;
        const auto r = oauth::refresh_due_accounts(
            store, providers, oauth::select_accounts(store, "", ""), run, settings,
            [&](const std::string& line) { seen.push_back(line); });
        CHECK(r.refreshed == 2);
        CHECK(r.needs_reauth == 1);
        REQUIRE(seen.size() == 1);
        CHECK(seen[0].rfind("account " + std::to_string(ids[1]) +
                                " user2@example.com (google): "
                                "needs re-authorization: Google refused the refresh token",
                            0) == 0);
        CHECK(r.problems == seen);
        CHECK_FALSE(r.none_reached());
    }
    SECTION("an account marked needs_reauth is skipped unless forced or named") {
        accounts.record_failure(ids[0], "refresh-1", "needs_reauth", "revoked");
        auto r = oauth::refresh_due_accounts(
            store, providers, oauth::select_accounts(store, "", ""), run, settings, {});
        CHECK(r.needs_reauth == 1);
        CHECK(r.refreshed == 2);
        run.retry_needs_reauth = true;
        r = oauth::refresh_due_accounts(store, providers,
                                        oauth::select_accounts(store, "user1@example.com", ""), run,
                                        settings, {});
        CHECK(r.refreshed == 1);
        CHECK(accounts.get(ids[0])->status == "ok");
    }
    SECTION("a passed deadline leaves every due account untried, with one line for them") {
        settings.deadline = std::chrono::steady_clock::now() - 1s;
        const auto r = oauth::refresh_due_accounts(
            store, providers, oauth::select_accounts(store, "", ""), run, settings, {});
        CHECK(r.not_tried == 3);
        CHECK(r.untried == "3 account(s) not tried: the time budget (--max-runtime) ran out");
        CHECK(r.problems == std::vector<std::string>{r.untried});
        CHECK(r.none_reached());
        CHECK(google.request_count() == 0);
    }
}
