// Secrets, TLS and files as a user meets them: warnings and refusals of the real binary, what
// `status` shows, locks through symlinks, and a quiet stderr on PostgreSQL.

#include "tests/integration/support.hpp"

#include "lib/state/state_store.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

std::string closed_api() {
    return "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::vector<std::string> db_sync_args(const TempDir& dir, const std::string& api_url,
                                      const std::string& target,
                                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args{
        "db_sync", "--campaign", "DEMO0000CAMPAIGN", "--api-url",        api_url, "--url",
        target,    "--log-dir",  dir.file("logs"),   "--retry-attempts", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

const std::map<std::string, std::string> k_token{{"CRMSYNC_TOKEN", "tok-abcdef123456"}};

} // namespace

TEST_CASE("a database password sent unencrypted off this machine is warned about", "[sqlite]") {
    TempDir dir;
    SECTION("a plain connection to a remote host: one warning line before the error") {
        const auto r = crmsync::testing::run_crmsync(
            {"status", "--url", "postgres://u:pw-Secret@db.invalid:5432/d"}, {}, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.rfind("crmsync: warning: the password for postgres://db.invalid may travel "
                          "unencrypted",
                          0) == 0);
        CHECK(contains(r.err, "\ncrmsync: error: "));
        CHECK_FALSE(contains(r.err, "pw-Secret"));
    }
    SECTION("no warning for loopback, for verified TLS, or without a password") {
        for (const std::string& url :
             {"postgres://u:pw@127.0.0.1:" + std::to_string(crmsync::testing::closed_port()) + "/d",
              std::string("postgres://u:pw@db.invalid/d?sslmode=require"),
              std::string("mysql://u@db.invalid/d")}) {
            const auto r = crmsync::testing::run_crmsync({"status", "--url", url}, {}, dir);
            INFO(url << "\n" << explain(r));
            CHECK(r.exit_code == 1);
            CHECK_FALSE(contains(r.err, "warning"));
        }
    }
}

TEST_CASE("TLS verification is switched off per endpoint, never silently", "[sqlite]") {
    TempDir dir;
    const std::string target = "sqlite://" + dir.file("t.db");
    SECTION("--insecure-api warns that the API's certificates are not verified") {
        const auto r = crmsync::testing::run_crmsync(
            db_sync_args(dir, closed_api(), target, {"--insecure-api"}), k_token, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(contains(r.err, "crmsync: warning: TLS certificates of the source API are not "
                              "verified (--insecure-api)\n"));
        CHECK_FALSE(contains(r.err, "webhook receiver"));
    }
    SECTION("the deprecated --insecure still works and says so") {
        const auto r = crmsync::testing::run_crmsync(
            db_sync_args(dir, closed_api(), target, {"--insecure"}), k_token, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(contains(r.err, "crmsync: warning: TLS certificates of the source API are not "
                              "verified (--insecure is deprecated: use --insecure-api)"));
    }
    SECTION("without a flag nothing is said") {
        const auto r =
            crmsync::testing::run_crmsync(db_sync_args(dir, closed_api(), target), k_token, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK_FALSE(contains(r.err, "warning"));
    }
    SECTION("each command offers the flags of its endpoints") {
        const auto webhook = crmsync::testing::run_crmsync({"webhook", "--help"}, {}, dir);
        CHECK(contains(webhook.out, "--insecure-api"));
        CHECK(contains(webhook.out, "--insecure-webhook"));
        CHECK(contains(webhook.out, "--insecure-notify"));
        const auto refresh = crmsync::testing::run_crmsync({"refresh-tokens", "--help"}, {}, dir);
        CHECK(contains(refresh.out, "--insecure-oauth"));
        CHECK_FALSE(contains(refresh.out, "--insecure-api"));
    }
}

TEST_CASE("credentials never go to a plain http endpoint off this machine", "[sqlite]") {
    TempDir dir;
    const std::string target = "sqlite://" + dir.file("t.db");
    SECTION("the API token: usage error before any I/O") {
        const auto r = crmsync::testing::run_crmsync(
            db_sync_args(dir, "http://api.example.com/api", target), k_token, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 2);
        CHECK(r.err.rfind("crmsync: error: --api-url 'http://api.example.com/api' is plain http",
                          0) == 0);
        CHECK(contains(r.err, "https://"));
        CHECK_FALSE(std::filesystem::exists(dir.file("t.db")));
    }
    SECTION("a signed webhook to a remote plain http receiver") {
        auto env = k_token;
        env["HOOK_SECRET"] = "whsec-0123456789";
        const auto r = crmsync::testing::run_crmsync(
            {"webhook", "--campaign", "DEMO0000CAMPAIGN", "--api-url", closed_api(), "--url",
             "http://hooks.example.com/in", "--secret-env", "HOOK_SECRET", "--state",
             dir.file("state.db"), "--log-dir", dir.file("logs")},
            env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 2);
        CHECK(r.err.rfind("crmsync: error: --url 'http://hooks.example.com/in' is plain http", 0) ==
              0);
    }
    SECTION("an OAuth token endpoint") {
        const auto r = crmsync::testing::run_crmsync(
            {"refresh-tokens", "--google-token-url", "http://oauth.example.com/token", "--state",
             dir.file("state.db"), "--log-dir", dir.file("logs")},
            {}, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 2);
        CHECK(contains(r.err, "--google-token-url 'http://oauth.example.com/token' is plain http"));
    }
}

TEST_CASE("status shows a webhook job without the token in its URL", "[sqlite]") {
    TempDir dir;
    const std::string state_path = dir.file("state.db");
    const std::string job = "webhook:CAMP:https://hooks.example/h/0123456789abcdef0123?key=sekret";
    {
        state::StateStore store(state_path);
        store.set_checkpoint(job, "2024-01-01T00:00:00Z");
    }
    for (const bool json : {false, true}) {
        std::vector<std::string> args{"status", "--state", state_path};
        if (json) {
            args.push_back("--json");
        }
        const auto r = crmsync::testing::run_crmsync(args, {}, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(contains(r.out, "webhook:CAMP:https://hooks.example/h/***?key=***"));
        CHECK_FALSE(contains(r.out, "0123456789abcdef0123"));
        CHECK_FALSE(contains(r.out, "sekret"));
    }
    // The stored key is untouched: the job keeps its checkpoint and outbox.
    state::StateStore store(state_path);
    CHECK(store.checkpoint(job) == "2024-01-01T00:00:00Z");
}

TEST_CASE("a SQLite target reached through a symlink shares the lock of its real path",
          "[sqlite]") {
    TempDir dir;
    const std::string real = dir.file("real.db");
    const std::string link = dir.file("link.db");
    auto holder = crmsync::testing::open("sqlite://" + real);
    REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
    REQUIRE(holder->try_lock("db_sync:DEMO0000CAMPAIGN:dfire_"));
    const auto r = crmsync::testing::run_crmsync(
        db_sync_args(dir, closed_api(), "sqlite://" + link), k_token, dir);
    INFO(explain(r));
    CHECK(r.exit_code == 4);
    CHECK(r.err.rfind("crmsync: error: another run of", 0) == 0);
}

TEST_CASE("db_sync on PostgreSQL prints nothing on stderr", "[postgres]") {
    const char* pg = std::getenv("CRMSYNC_TEST_POSTGRES_URL");
    if (pg == nullptr || *pg == '\0') {
        WARN("CRMSYNC_TEST_POSTGRES_URL is not set (tests/run.sh starts PostgreSQL): not run");
        return;
    }
    TempDir dir;
    fakes::FakeCampaignOptions options;
    // Two COPY batches of one table in one session: the second CREATE TEMP TABLE IF NOT EXISTS
    // of the stage table raises the NOTICE.
    options.contacts = 240;
    options.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
    fakes::DialfireFake fake(options);
    fake.start();
    const std::string prefix = crmsync::testing::unique_prefix();
    const std::map<std::string, std::string> env{{"CRMSYNC_TOKEN", fake.options().token}};
    for (int run = 0; run < 2; ++run) {
        const auto r = crmsync::testing::run_crmsync(
            db_sync_args(dir, fake.base_url(), pg,
                         {"--table-prefix", prefix, "--batch-rows", "100"}),
            env, dir);
        INFO("run " << run << "\n" << explain(r));
        CHECK(r.exit_code == 0);
        CHECK(r.err.empty());
        CHECK(r.out.rfind("crmsync: ", 0) == 0);
    }
    auto db = crmsync::testing::open(pg);
    crmsync::testing::drop_prefixed(*db, prefix);
}
