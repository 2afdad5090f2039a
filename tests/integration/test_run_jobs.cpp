// `crmsync COMMAND --config FILE` and `crmsync run JOBS.toml`: the real binary against the
// Dialfire emulator, into SQLite.

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

fakes::FakeCampaignOptions small_campaign() {
    fakes::FakeCampaignOptions o;
    o.contacts = 12;
    o.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
    return o;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

long contacts(const std::string& url, const std::string& prefix) {
    auto db = crmsync::testing::open(url);
    if (!crmsync::testing::table_exists(*db, prefix + "contacts")) {
        return -1;
    }
    return crmsync::testing::count_rows(*db, prefix + "contacts");
}

} // namespace

TEST_CASE("config files: --config reads a command's flags from a TOML file", "[sqlite]") {
    TempDir dir;
    fakes::DialfireFake fake(small_campaign());
    fake.start();
    const std::string url = "sqlite://" + dir.file("target.db");
    const std::string config = dir.file("db_sync.toml");
    const std::map<std::string, std::string> env{{"CRMSYNC_TOKEN", fake.options().token}};
    write_file(config, "# one campaign\n"
                       "campaign = \"" +
                           fake.options().campaign_id +
                           "\"\n"
                           "api-url = \"" +
                           fake.base_url() +
                           "\"\n"
                           "url = \"" +
                           url +
                           "\"\n"
                           "table-prefix = \"file_\"\n"
                           "log-dir = \"" +
                           dir.file("logs") +
                           "\"\n"
                           "retry-base = \"20ms\"\n"
                           "fp = [\"fc_\", \"qc_\"]\n");

    SECTION("every flag can come from the file") {
        const auto r = crmsync::testing::run_crmsync({"db_sync", "--config", config}, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(contacts(url, "file_") == 12);
    }
    SECTION("the command line wins over the file, wherever --config stands") {
        const auto r = crmsync::testing::run_crmsync(
            {"db_sync", "--table-prefix", "cli_", "--config=" + config}, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(contacts(url, "cli_") == 12);
        CHECK(contacts(url, "file_") == -1);
    }
    SECTION("the file wins over the environment") {
        auto with_env = env;
        with_env["DBSYNC_TP"] = "env_";
        const auto r =
            crmsync::testing::run_crmsync({"db_sync", "--config", config}, with_env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(contacts(url, "file_") == 12);
        CHECK(contacts(url, "env_") == -1);
    }
    SECTION("secrets, unknown keys, sections and missing files are usage errors before any I/O") {
        const std::vector<std::pair<std::string, std::string>> bad{
            {"ct = \"the-token\"\n", "'ct' holds a secret"},
            {"url = \"postgres://crm:hunter2@db.example.com/crm\"\n", "holds a password"},
            {"no-such-flag = 1\n", "'no-such-flag' is not a flag of db_sync"},
            {"[db_sync]\ncampaign = \"X\"\n", "section [db_sync] is not allowed here"},
        };
        for (const auto& [text, message] : bad) {
            INFO(text);
            write_file(config, text);
            const auto r = crmsync::testing::run_crmsync(
                {"db_sync", "--config", config, "--url", url}, env, dir);
            INFO(explain(r));
            CHECK(r.exit_code == 2);
            CHECK(r.err.rfind("crmsync: error: config file " + config, 0) == 0);
            CHECK(r.err.find(message) != std::string::npos);
            CHECK(r.err.find("hunter2") == std::string::npos);
            CHECK_FALSE(std::filesystem::exists(dir.file("target.db")));
        }
        const auto missing = crmsync::testing::run_crmsync(
            {"db_sync", "--config", dir.file("missing.toml")}, env, dir);
        CHECK(missing.exit_code == 2);
        CHECK(missing.err.find("cannot read config file") != std::string::npos);
    }
}

TEST_CASE("crmsync run starts every job of a file and exits with the worst outcome", "[sqlite]") {
    TempDir dir;
    fakes::DialfireFake fake(small_campaign());
    fake.start();
    const std::string url = "sqlite://" + dir.file("target.db");
    const std::string jobs = dir.file("jobs.toml");
    const std::map<std::string, std::string> env{{"CRMSYNC_TOKEN", fake.options().token}};
    const std::string head = "# defaults for every job that takes them\n"
                             "log-dir = \"" +
                             dir.file("logs") +
                             "\"\n"
                             "retry-base = \"20ms\"\n"
                             "retry-attempts = 2\n"
                             "url = \"" +
                             url + "\"\n";
    // SQLite takes one writer per file: each job writes its own file.
    const auto db_url = [&](const std::string& name) {
        return "sqlite://" + dir.file(name + ".db");
    };
    const auto db_sync_job = [&](const std::string& name, const std::string& api_url) {
        return "[" + name + "]\ncommand = \"db_sync\"\ncampaign = \"" + fake.options().campaign_id +
               "\"\napi-url = \"" + api_url + "\"\ntable-prefix = \"" + name + "_\"\nurl = \"" +
               db_url(name) + "\"\n";
    };
    const std::string closed_api =
        "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());

    SECTION("a good job, a locked one and a failing one: exit 1, one line each") {
        write_file(jobs, head + db_sync_job("good", fake.base_url()) +
                             db_sync_job("busy", fake.base_url()) +
                             db_sync_job("down", closed_api) + "[report]\ncommand = \"status\"\n");
        auto holder = crmsync::testing::open(db_url("busy"));
        REQUIRE(holder->try_lock("db_sync:" + fake.options().campaign_id + ":busy_"));

        const auto r = crmsync::testing::run_crmsync({"run", jobs, "--jobs", "2"}, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.out.find("crmsync: run: good: ok (exit 0)") != std::string::npos);
        CHECK(r.out.find("crmsync: run: busy: skipped: another run of this job still holds its "
                         "lock (exit 4)") != std::string::npos);
        CHECK(r.out.find("crmsync: run: down: failed (exit 1)") != std::string::npos);
        CHECK(r.out.find("crmsync: run: report: ok (exit 0)") != std::string::npos);
        CHECK(r.out.find("[good] crmsync: db_sync " + fake.options().campaign_id + " ok") !=
              std::string::npos);
        CHECK(r.err.find("[down] crmsync: error: ") != std::string::npos);
        CHECK(r.out.find("4 jobs in") != std::string::npos);
        CHECK(r.out.find("2 ok, 0 partial, 1 failed, 1 skipped (locked)") != std::string::npos);
        CHECK(contacts(db_url("good"), "good_") == 12);
        CHECK(contacts(db_url("busy"), "busy_") == -1);
    }
    SECTION("a locked job is not an error: exit 0") {
        write_file(jobs, head + db_sync_job("good", fake.base_url()) +
                             db_sync_job("busy", fake.base_url()));
        auto holder = crmsync::testing::open(db_url("busy"));
        REQUIRE(holder->try_lock("db_sync:" + fake.options().campaign_id + ":busy_"));
        const auto r = crmsync::testing::run_crmsync({"run", jobs}, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(contacts(db_url("good"), "good_") == 12);
    }
    SECTION("a secret in the jobs file stops everything before any job runs") {
        write_file(jobs, head + db_sync_job("good", fake.base_url()) + "ct = \"the-token\"\n");
        const auto r = crmsync::testing::run_crmsync({"run", jobs}, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("'ct' holds a secret") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(dir.file("good.db")));
    }
    SECTION("SIGTERM reaches the running job, no new job starts, and run exits 130") {
        fake.inject({"POST",
                     "/api/campaigns/" + fake.options().campaign_id + "/contacts/",
                     fakes::FaultKind::slow,
                     0,
                     {},
                     1500,
                     50});
        write_file(jobs, head + db_sync_job("first", fake.base_url()) +
                             db_sync_job("second", fake.base_url()));
        crmsync::testing::CrmsyncProcess run({"run", jobs, "--jobs", "1"}, env, dir);
        // Wait until the first job is fetching (so `run` has its handlers and a child): a
        // fixed sleep lost the race on a loaded machine and killed `run` before it started.
        const std::string contacts_path =
            "/api/campaigns/" + fake.options().campaign_id + "/contacts/";
        for (int i = 0; i < 1200 && fake.request_count(contacts_path) == 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        REQUIRE(fake.request_count(contacts_path) > 0);
        run.kill(SIGTERM);
        const auto r = run.wait();
        INFO(explain(r));
        CHECK(r.exit_code == 130);
        CHECK(r.out.find("crmsync: run: first: interrupted (exit 130)") != std::string::npos);
        CHECK(r.out.find("crmsync: run: second:") == std::string::npos);
        CHECK(r.out.find("1 not started (interrupted)") != std::string::npos);
    }
    SECTION("a job without a known command is a usage error") {
        write_file(jobs, head + "[typo]\ncommand = \"db-sync\"\n");
        const auto r = crmsync::testing::run_crmsync({"run", jobs}, env, dir);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("job [typo] has an unknown command 'db-sync'") != std::string::npos);
    }
}
