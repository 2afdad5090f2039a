#include "cmd/cli.hpp"
#include "cmd/config_file.hpp"
#include "cmd/run_jobs.hpp"
#include "lib/core/error.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using namespace crmsync;
using namespace crmsync::cli;

namespace {

CommandCatalog catalog() {
    CommandCatalog c;
    c.exists = [](const std::string& command) {
        return command == "db_sync" || command == "status";
    };
    c.takes_flag = [](const std::string& command, const std::string& flag) {
        return command == "db_sync" || flag == "url";
    };
    return c;
}

std::vector<JobSpec> read(const std::string& text) {
    crmsync::testing::TempDir dir;
    const auto path = dir.file("jobs.toml");
    std::ofstream(path) << text;
    return read_jobs_file(path, catalog());
}

} // namespace

TEST_CASE("cli::read_jobs_file", "[cli]") {
    SECTION("each section is a job; top-level keys go to the jobs that take them") {
        const auto jobs =
            read("log-dir = \"/var/log/crmsync\"\nurl = \"sqlite:///x.db\"\n"
                 "[a]\ncommand = \"db_sync\"\ncampaign = \"A\"\nfp = [\"fc_\", \"qc_\"]\n"
                 "[b]\ncommand = \"status\"\n"
                 "[c]\ncommand = \"db_sync\"\nurl = \"sqlite:///c.db\"\nverbose = true\n");
        REQUIRE(jobs.size() == 3);
        CHECK(jobs[0].name == "a");
        CHECK(jobs[0].args == std::vector<std::string>{"db_sync", "--log-dir=/var/log/crmsync",
                                                       "--url=sqlite:///x.db", "--campaign=A",
                                                       "--fp=fc_", "--fp=qc_"});
        CHECK(jobs[1].args == std::vector<std::string>{"status", "--url=sqlite:///x.db"});
        CHECK(jobs[2].args == std::vector<std::string>{"db_sync", "--log-dir=/var/log/crmsync",
                                                       "--url=sqlite:///c.db", "--verbose=true"});
    }
    SECTION("mistakes are usage errors naming the file and the job") {
        for (const char* text :
             {"", "url = \"x\"\n", "[a]\ncampaign = \"A\"\n", "[a]\ncommand = \"nope\"\n",
              "[a]\ncommand = \"run\"\n", "[a.b]\ncommand = \"db_sync\"\n",
              "command = \"db_sync\"\n", "[a]\ncommand = \"db_sync\"\nwebhook-secret = \"s\"\n"}) {
            INFO(text);
            CHECK_THROWS_AS(read(text), Error);
        }
    }
}

TEST_CASE("cli::worst_exit_code", "[cli]") {
    CHECK(worst_exit_code({}) == 0);
    CHECK(worst_exit_code({0, 4, 0}) == 0);
    CHECK(worst_exit_code({0, 3, 4}) == 3);
    CHECK(worst_exit_code({3, 1, 0}) == 1);
    CHECK(worst_exit_code({0, 2}) == 1);
    CHECK(worst_exit_code({130, 3}) == 1);
}

TEST_CASE("cli::is_secret_flag", "[cli]") {
    for (const char* secret : {"ct", "token", "webhook-secret", "password", "api-key"}) {
        INFO(secret);
        CHECK(is_secret_flag(secret));
    }
    for (const char* name : {"token-env", "token-file", "webhook-secret-env", "secret-file",
                             "google-token-url", "campaign", "url"}) {
        INFO(name);
        CHECK_FALSE(is_secret_flag(name));
    }
}

TEST_CASE("examples: every config and jobs file uses real flags and no secrets", "[cli]") {
    const auto commands = command_catalog();
    const std::filesystem::path examples = std::filesystem::path(CRMSYNC_SOURCE_DIR) / "examples";
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(examples / "config")) {
        const auto command = entry.path().stem().string();
        INFO(entry.path().string());
        REQUIRE(commands.exists(command));
        std::ifstream in(entry.path());
        for (const auto& item : CLI::ConfigTOML().from_config(in)) {
            INFO(item.name);
            CHECK(item.parents.empty());
            CHECK(commands.takes_flag(command, item.name));
            CHECK_NOTHROW(refuse_secret_in_file(entry.path().string(), item.name, item.inputs));
        }
        ++files;
    }
    CHECK(files >= 5);
    const auto jobs = read_jobs_file((examples / "jobs.toml").string(), commands);
    CHECK(jobs.size() >= 3);
    for (const auto& job : jobs) {
        for (std::size_t i = 1; i < job.args.size(); ++i) {
            const auto& arg = job.args[i];
            const auto key = arg.substr(2, arg.find('=') - 2);
            INFO(job.name << ": " << key);
            CHECK(commands.takes_flag(job.args[0], key));
        }
    }
}
