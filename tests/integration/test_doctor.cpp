// crmsync doctor: the real binary checking what a first run needs, against the Dialfire
// emulator and real target databases.

#include "tests/integration/support.hpp"

#include "cmd/doctor.hpp"
#include "lib/util/time.hpp"
#include "tests/fakes/bitrix24/bitrix24_fake.hpp"
#include "tests/fakes/callback24/callback24_fake.hpp"
#include "tests/fakes/callcenter/callcenter_fake.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/fakes/pipedrive/pipedrive_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sys/stat.h>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

bool has_line(const ProcessResult& r, const std::string& start) {
    return r.out.find("\n" + start) != std::string::npos || r.out.rfind(start, 0) == 0;
}

struct DoctorFixture {
    TempDir dir;
    fakes::DialfireFake fake{[] {
        fakes::FakeCampaignOptions o;
        o.contacts = 3;
        return o;
    }()};
    DoctorFixture() {
        fake.start();
        std::filesystem::create_directory(dir.file("logs"));
        ::chmod(dir.file("logs").c_str(), 0700);
    }
    ProcessResult doctor(const std::string& url, std::vector<std::string> extra = {},
                         const std::string& token = "") const {
        std::vector<std::string> args{
            "doctor",    "db_sync",       "--campaign", fake.options().campaign_id,
            "--api-url", fake.base_url(), "--url",      url,
            "--log-dir", dir.file("logs")};
        args.insert(args.end(), extra.begin(), extra.end());
        return crmsync::testing::run_crmsync(
            args, {{"CRMSYNC_TOKEN", token.empty() ? fake.options().token : token}}, dir);
    }
};

} // namespace

TEST_CASE("doctor db_sync: every check passes on a good setup", "[sqlite][postgres][mysql]") {
    DoctorFixture f;
    for (const auto& target : crmsync::testing::targets(f.dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            const auto r = f.doctor(target.url);
            INFO(explain(r));
            CHECK(r.exit_code == 0);
            CHECK(has_line(r, "ok       tls: TLS certificates are verified"));
            // (The test databases' password is "crmsync", so paths may show up redacted.)
            CHECK(has_line(r, "ok       log dir: "));
            CHECK(r.out.find("/logs is writable and private\n") != std::string::npos);
            CHECK(has_line(r, "ok       api: campaign " + f.fake.options().campaign_id));
            CHECK(has_line(r, "ok       clock: within"));
            CHECK(has_line(r, "ok       target: "));
            CHECK(r.out.find("FAILED") == std::string::npos);
            CHECK(r.out.find("warning") == std::string::npos);
            auto db = crmsync::testing::open(target.url);
            CHECK_FALSE(crmsync::testing::table_exists(*db, "crmsync_doctor_" +
                                                                std::to_string(::getpid())));
        }
    }
}

TEST_CASE("doctor db_sync: each failing check says what to do", "[sqlite][postgres][mysql]") {
    DoctorFixture f;
    const std::string sqlite = "sqlite://" + f.dir.file("target.db");
    SECTION("a refused token") {
        const auto r = f.doctor(sqlite, {}, "not-the-token");
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "FAILED   api: the token is refused for campaign"));
        CHECK(r.out.find("not-the-token") == std::string::npos);
    }
    SECTION("an API that does not answer") {
        const std::string closed =
            "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());
        const auto r = f.doctor(sqlite, {"--api-url", closed});
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "FAILED   api: cannot reach " + closed));
        CHECK(has_line(r, "         hint: check --api-url"));
    }
    SECTION("a database that does not answer") {
        const auto r = f.doctor(
            "postgres://crm@127.0.0.1:" + std::to_string(crmsync::testing::closed_port()) + "/crm");
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "FAILED   target: "));
    }
    SECTION("a log directory open to others and --insecure are warnings, not failures") {
        ::chmod(f.dir.file("logs").c_str(), 0755);
        const auto r = f.doctor(sqlite, {"--insecure"});
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(has_line(r, "warning  log dir: "));
        CHECK(r.out.find("/logs is open to other users (mode 0755)") != std::string::npos);
        CHECK(has_line(r, "warning  tls: certificates are not verified for the API, the webhook "
                          "receiver, OAuth token endpoints, notices"));
    }
    if (const char* admin = std::getenv("CRMSYNC_TEST_POSTGRES_URL")) {
        SECTION("a PostgreSQL user who may not create tables") {
            auto db = crmsync::testing::open(admin);
            db->execute("DO $$ BEGIN CREATE ROLE crmsync_doctor_limited LOGIN PASSWORD 'limited'; "
                        "EXCEPTION WHEN duplicate_object THEN NULL; END $$");
            db->execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
            std::string url = admin;
            url.replace(url.find("crmsync:crmsync@"), 16, "crmsync_doctor_limited:limited@");
            const auto r = f.doctor(url);
            INFO(explain(r));
            CHECK(r.exit_code == 1);
            CHECK(has_line(r, "FAILED   target: "));
            CHECK(r.out.find("a table cannot be created") != std::string::npos);
            CHECK(r.out.find("grant the user CREATE") != std::string::npos);
            CHECK(r.out.find("limited@") == std::string::npos);
        }
    }
    if (const char* admin = std::getenv("CRMSYNC_TEST_MYSQL_URL")) {
        SECTION("a MariaDB user who may only read") {
            auto db = crmsync::testing::open(admin);
            db->execute(
                "CREATE USER IF NOT EXISTS 'crmsync_doctor_ro'@'%' IDENTIFIED BY 'readonly'");
            db->execute("GRANT SELECT ON crmsync_test.* TO 'crmsync_doctor_ro'@'%'");
            std::string url = admin;
            url.replace(url.find("crmsync:crmsync@"), 16, "crmsync_doctor_ro:readonly@");
            const auto r = f.doctor(url);
            INFO(explain(r));
            CHECK(r.exit_code == 1);
            CHECK(r.out.find("a table cannot be created") != std::string::npos);
        }
    }
}

TEST_CASE("doctor: the clock against a server's Date header", "[unit]") {
    const auto now =
        std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    using V = cli::DoctorCheck::Verdict;
    CHECK(cli::check_clock(util::format_http_date(now), "api").verdict == V::ok);
    const auto behind =
        cli::check_clock(util::format_http_date(now + std::chrono::minutes(5)), "api");
    CHECK(behind.verdict == V::warning);
    CHECK(behind.detail.find("behind api") != std::string::npos);
    const auto ahead =
        cli::check_clock(util::format_http_date(now - std::chrono::minutes(2)), "api");
    CHECK(ahead.verdict == V::warning);
    CHECK(ahead.detail.find("ahead of api") != std::string::npos);
    CHECK(cli::check_clock("not a date", "api").verdict == V::skipped);
}

TEST_CASE("doctor bulk-history and callcenter probe their APIs with the run's credentials",
          "[sqlite]") {
    TempDir dir;
    std::filesystem::create_directory(dir.file("logs"));
    ::chmod(dir.file("logs").c_str(), 0700);
    const std::string target = "sqlite://" + dir.file("target.db");

    SECTION("bulk-history: the portal answers and takes the webhook code, or says it refuses") {
        fakes::Bitrix24Fake portal;
        portal.start();
        const std::vector<std::string> args{
            "doctor", "bulk-history", "--portal-url-env", "B24_WEBHOOK",   "--env", "PROD",
            "--url",  target,         "--log-dir",        dir.file("logs")};
        const auto good =
            crmsync::testing::run_crmsync(args, {{"B24_WEBHOOK", portal.base_url()}}, dir);
        INFO(explain(good));
        CHECK(good.exit_code == 0);
        CHECK(has_line(good, "ok       api: the Bitrix24 portal answers at 127.0.0.1:" +
                                 std::to_string(portal.port()) + " and accepts the credentials"));
        CHECK(has_line(good, "ok       clock: within"));
        CHECK(portal.request_count() >= 1);

        std::string wrong = portal.base_url();
        wrong.replace(wrong.find(portal.options().webhook_code), 16, "wrongwebhook0000");
        const auto refused = crmsync::testing::run_crmsync(args, {{"B24_WEBHOOK", wrong}}, dir);
        INFO(explain(refused));
        CHECK(refused.exit_code != 0);
        CHECK(has_line(refused,
                       "FAILED   api: the Bitrix24 portal refuses the credentials (HTTP 401)"));
        CHECK(refused.out.find("inbound webhook") != std::string::npos);
        CHECK(refused.out.find("wrongwebhook0000") == std::string::npos);
        CHECK(refused.err.find("wrongwebhook0000") == std::string::npos);
    }
    SECTION("callcenter: the API answers the run's credentials, or says it refuses them") {
        fakes::CallcenterFake api;
        api.start();
        const std::vector<std::string> args{
            "doctor", "callcenter", "--api-url", api.base_url(), "--callcenter",
            "cc1",    "--url",      target,      "--log-dir",    dir.file("logs")};
        const auto good = crmsync::testing::run_crmsync(
            args,
            {{"CRMSYNC_CALLCENTER_USER", "cc-user"}, {"CRMSYNC_CALLCENTER_SECRET", "cc-secret"}},
            dir);
        INFO(explain(good));
        CHECK(good.exit_code == 0);
        CHECK(has_line(good, "ok       api: the call-center API answers at " + api.base_url() +
                                 " and accepts the credentials"));
        const auto refused = crmsync::testing::run_crmsync(
            args,
            {{"CRMSYNC_CALLCENTER_USER", "cc-user"}, {"CRMSYNC_CALLCENTER_SECRET", "wrong-pw"}},
            dir);
        INFO(explain(refused));
        CHECK(refused.exit_code != 0);
        CHECK(has_line(refused,
                       "FAILED   api: the call-center API refuses the credentials (HTTP 401)"));
        CHECK(refused.out.find("wrong-pw") == std::string::npos);
        const auto no_secret =
            crmsync::testing::run_crmsync(args, {{"CRMSYNC_CALLCENTER_USER", "cc-user"}}, dir);
        CHECK(has_line(no_secret, "FAILED   api: no call-center secret given"));
    }
}

TEST_CASE("doctor leads reads the lead source and Pipedrive with the run's credentials",
          "[sqlite]") {
    TempDir dir;
    std::filesystem::create_directory(dir.file("logs"));
    ::chmod(dir.file("logs").c_str(), 0700);
    fakes::Callback24Fake callback24;
    fakes::PipedriveFake pipedrive;
    callback24.start();
    pipedrive.start();
    const std::vector<std::string> args{"doctor",
                                        "leads",
                                        "--source",
                                        "callback24",
                                        "--api-url",
                                        callback24.base_url(),
                                        "--token-env",
                                        "CB24_TOKEN",
                                        "--service",
                                        "libertycar.pl",
                                        "--pipedrive-url",
                                        pipedrive.base_url(),
                                        "--pipedrive-token-env",
                                        "PD_TOKEN",
                                        "--state",
                                        dir.file("state/state.db"),
                                        "--log-dir",
                                        dir.file("logs"),
                                        "--retry-base",
                                        "20ms"};
    const std::map<std::string, std::string> good_env{{"CB24_TOKEN", "cb24-token"},
                                                      {"PD_TOKEN", "pd-token"}};

    SECTION("every check passes on a good setup, and nothing is written") {
        const auto r = crmsync::testing::run_crmsync(args, good_env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(has_line(r, "ok       source: Callback24 services libertycar.pl answers with the "
                          "run's credentials"));
        CHECK(has_line(r, "ok       pipedrive: Pipedrive answers at " + pipedrive.base_url() +
                              " and accepts the credentials"));
        CHECK(has_line(r, "ok       state file: "));
        CHECK(r.out.find("FAILED") == std::string::npos);
        CHECK(pipedrive.persons().empty());
        CHECK(pipedrive.leads().empty());
    }
    SECTION("a refused Pipedrive token fails its check, without showing it") {
        auto env = good_env;
        env["PD_TOKEN"] = "not-the-token";
        const auto r = crmsync::testing::run_crmsync(args, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code != 0);
        CHECK(has_line(r, "FAILED   pipedrive: Pipedrive refuses the credentials (HTTP 401)"));
        CHECK(has_line(r, "ok       source: "));
        CHECK(r.out.find("not-the-token") == std::string::npos);
        CHECK(r.err.find("not-the-token") == std::string::npos);
    }
    SECTION("a refused source key fails the source check with the run's error and hint") {
        auto env = good_env;
        env["CB24_TOKEN"] = "wrong-cb24-key";
        const auto r = crmsync::testing::run_crmsync(args, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code != 0);
        CHECK(has_line(r, "FAILED   source: Callback24 services libertycar.pl: "));
        CHECK(has_line(r, "ok       pipedrive: "));
        CHECK(r.out.find("wrong-cb24-key") == std::string::npos);
    }
    SECTION("a missing token is named") {
        const auto r = crmsync::testing::run_crmsync(args, {{"CB24_TOKEN", "cb24-token"}}, dir);
        INFO(explain(r));
        CHECK(r.exit_code != 0);
        CHECK(has_line(r, "FAILED   pipedrive: environment variable PD_TOKEN is empty"));
    }
}
