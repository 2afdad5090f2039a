#include "cmd/cli.hpp"
#include "lib/core/error.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using crmsync::Error;
using crmsync::ErrorKind;
namespace cli = crmsync::cli;
namespace fs = std::filesystem;

namespace {

using Args = std::vector<std::string>;

ErrorKind translate_error(const Args& args, const char* env) {
    try {
        cli::translate_dbsync2(args, env);
    } catch (const Error& e) {
        return e.kind();
    }
    FAIL("no error");
    return ErrorKind::internal;
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "crmsync-cli-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

struct RunResult {
    int exit_code = -1;
    std::string out;
    std::string err;

    std::vector<std::string> err_lines() const {
        std::vector<std::string> lines;
        std::istringstream in(err);
        for (std::string line; std::getline(in, line);) {
            lines.push_back(line);
        }
        return lines;
    }
};

std::string slurp(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs the real crmsync binary with `args` in a scrubbed environment: no CRMSYNC_*/DBSYNC_*
// variables (so no token and no dbsync2 mode leak in), HOME inside `home`, plus `extra_env`.
RunResult run_crmsync(const Args& args, const fs::path& home,
                      const std::map<std::string, std::string>& extra_env = {}) {
    crmsync::testing::SpawnOptions options;
    options.program = CRMSYNC_BINARY;
    options.args = args;
    options.env = crmsync::testing::environment_without([](std::string_view entry) {
        return entry.starts_with("CRMSYNC_") || entry.starts_with("DBSYNC") ||
               entry.starts_with("HOME=");
    });
    options.env->push_back("HOME=" + home.string());
    for (const auto& [name, value] : extra_env) {
        options.env->push_back(name + "=" + value);
    }
    const fs::path out_file = home / ".stdout";
    const fs::path err_file = home / ".stderr";
    options.stdout_path = out_file.string();
    options.stderr_path = err_file.string();
    options.cwd = home.string();
    RunResult result;
    result.exit_code = crmsync::testing::ChildProcess(options).wait();
    result.out = slurp(out_file);
    result.err = slurp(err_file);
    fs::remove(out_file);
    fs::remove(err_file);
    return result;
}

bool starts_with(const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0;
}

} // namespace

TEST_CASE("cli::translate_dbsync2", "[cli]") {
    SECTION("--a db_sync becomes the db_sync subcommand") {
        CHECK(cli::translate_dbsync2({"crmsync", "--a", "db_sync", "--c", "X"}, nullptr) ==
              Args{"crmsync", "db_sync", "--c", "X"});
    }
    SECTION("--a db_init and db_update become db_sync --mode init and update") {
        CHECK(cli::translate_dbsync2({"crmsync", "--a", "db_init", "--c", "X"}, nullptr) ==
              Args{"crmsync", "db_sync", "--mode", "init", "--c", "X"});
        CHECK(cli::translate_dbsync2({"crmsync", "--c", "X", "--a", "db_update"}, nullptr) ==
              Args{"crmsync", "db_sync", "--mode", "update", "--c", "X"});
    }
    SECTION("--a=db_init is read too") {
        CHECK(cli::translate_dbsync2({"crmsync", "--a=db_init", "--c", "X"}, nullptr) ==
              Args{"crmsync", "db_sync", "--mode", "init", "--c", "X"});
    }
    SECTION("DBSYNC_A gives the mode when --a is absent") {
        CHECK(cli::translate_dbsync2({"crmsync", "--c", "X"}, "db_update") ==
              Args{"crmsync", "db_sync", "--mode", "update", "--c", "X"});
        CHECK(cli::translate_dbsync2({"crmsync"}, "db_sync") == Args{"crmsync", "db_sync"});
    }
    SECTION("--a webhook becomes the webhook subcommand") {
        CHECK(cli::translate_dbsync2({"crmsync", "--a", "webhook", "--c", "X"}, nullptr) ==
              Args{"crmsync", "webhook", "--c", "X"});
    }
    SECTION("--a wins over DBSYNC_A") {
        CHECK(cli::translate_dbsync2({"crmsync", "--a", "db_init"}, "db_update") ==
              Args{"crmsync", "db_sync", "--mode", "init"});
    }
    SECTION("an unknown mode is a usage error") {
        CHECK(translate_error({"crmsync", "--a", "bogus", "--c", "X"}, nullptr) ==
              ErrorKind::usage);
        CHECK(translate_error({"crmsync", "--a=", "--c", "X"}, nullptr) == ErrorKind::usage);
        CHECK(translate_error({"crmsync", "--c", "X"}, "bogus") == ErrorKind::usage);
    }
    SECTION("a normal subcommand line comes back unchanged, even with DBSYNC_A set") {
        const Args line{"crmsync", "db_sync", "--campaign", "X", "--url", "sqlite://x.db"};
        CHECK(cli::translate_dbsync2(line, nullptr) == line);
        CHECK(cli::translate_dbsync2(line, "db_init") == line);
        const Args status{"crmsync", "status", "--url", "sqlite://x.db"};
        CHECK(cli::translate_dbsync2(status, "db_sync") == status);
    }
    SECTION("a line without --a and without DBSYNC_A comes back unchanged") {
        CHECK(cli::translate_dbsync2({"crmsync"}, nullptr) == Args{"crmsync"});
        CHECK(cli::translate_dbsync2({"crmsync", "--help"}, nullptr) == Args{"crmsync", "--help"});
        CHECK(cli::translate_dbsync2({"crmsync", "--c", "X"}, "") == Args{"crmsync", "--c", "X"});
    }
}

TEST_CASE("crmsync binary: help and usage errors", "[cli]") {
    TempDir home;
    const fs::path db_file = home.path / "target.db";
    const std::string api_url =
        "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());
    // Flags that would lead to I/O if the usage check came too late.
    const Args io{"--api-url", api_url,
                  "--url",     "sqlite://" + db_file.string(),
                  "--log-dir", (home.path / "logs").string()};
    const auto with_io = [&](Args args) {
        args.insert(args.end(), io.begin(), io.end());
        return args;
    };
    const auto no_io_happened = [&] {
        CHECK_FALSE(fs::exists(db_file));
        CHECK_FALSE(fs::exists(home.path / "logs"));
        CHECK_FALSE(fs::exists(home.path / ".crmsync"));
    };

    SECTION("crmsync --help lists the subcommands and exits 0") {
        const auto r = run_crmsync({"--help"}, home.path);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("db_sync") != std::string::npos);
        CHECK(r.out.find("status") != std::string::npos);
    }
    SECTION("crmsync db_sync --help shows its flags and exits 0") {
        const auto r = run_crmsync({"db_sync", "--help"}, home.path);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("--campaign") != std::string::npos);
        CHECK(r.out.find("--url") != std::string::npos);
        CHECK(r.out.find("--fm") != std::string::npos);
    }
    SECTION("every subcommand listed by crmsync --help has a --help that exits 0") {
        const auto top = run_crmsync({"--help"}, home.path);
        const auto at = top.out.find("Subcommands:");
        REQUIRE(at != std::string::npos);
        std::istringstream lines(top.out.substr(at));
        std::string line;
        std::getline(lines, line);
        std::vector<std::string> names;
        while (std::getline(lines, line) && starts_with(line, "  ")) {
            std::istringstream words(line);
            std::string name;
            words >> name;
            names.push_back(name);
        }
        CHECK(names.size() >= 2);
        for (const auto& name : names) {
            INFO(name);
            const auto r = run_crmsync({name, "--help"}, home.path);
            CHECK(r.exit_code == 0);
            CHECK(r.out.find("Usage:") != std::string::npos);
            CHECK(r.err.empty());
        }
    }
    SECTION("crmsync status --help exits 0") {
        const auto r = run_crmsync({"status", "--help"}, home.path);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("--url") != std::string::npos);
    }
    SECTION("no arguments exits 2 with an error line") {
        const auto r = run_crmsync({}, home.path);
        CHECK(r.exit_code == 2);
        REQUIRE_FALSE(r.err_lines().empty());
        CHECK(starts_with(r.err_lines()[0], "crmsync: error: "));
    }
    SECTION("an unknown command exits 2 and lists the commands, with or without --help") {
        for (const Args& args : {Args{"no-such-command"}, Args{"no-such-command", "--help"},
                                 Args{"no-such-command", "--url", "sqlite://x.db"}}) {
            const auto r = run_crmsync(args, home.path);
            CHECK(r.exit_code == 2);
            CHECK(r.out.empty());
            REQUIRE(r.err_lines().size() >= 2);
            CHECK(r.err_lines()[0] == "crmsync: error: unknown command 'no-such-command'");
            CHECK(r.err_lines()[1].find("db_sync, webhook") != std::string::npos);
        }
    }
    SECTION("--version names the release and the git commit") {
        const auto r = run_crmsync({"--version"}, home.path);
        CHECK(r.exit_code == 0);
        CHECK(starts_with(r.out, "crmsync " CRMSYNC_VERSION " (commit "));
        CHECK(r.out.find("(commit )") == std::string::npos);
        CHECK(r.out == crmsync::cli::version_text() + "\n");
    }
    SECTION("db_sync without campaign exits 2 with the error line, then a hint") {
        const auto r =
            run_crmsync(with_io({"db_sync"}), home.path, {{"CRMSYNC_TOKEN", "tok3n-value"}});
        CHECK(r.exit_code == 2);
        const auto lines = r.err_lines();
        REQUIRE(lines.size() >= 2);
        CHECK(lines[0] == "crmsync: error: no campaign given");
        CHECK(starts_with(lines[1], "crmsync: hint: "));
        CHECK(r.out.empty());
        no_io_happened();
    }
    SECTION("a URL with an unknown scheme exits 2 with an error line") {
        const auto r = run_crmsync({"db_sync", "--c", "CAMP1", "--url", "ftp://x", "--api-url",
                                    api_url, "--log-dir", (home.path / "logs").string()},
                                   home.path, {{"CRMSYNC_TOKEN", "tok3n-value"}});
        CHECK(r.exit_code == 2);
        REQUIRE_FALSE(r.err_lines().empty());
        CHECK(starts_with(r.err_lines()[0], "crmsync: error:"));
        CHECK_FALSE(fs::exists(home.path / "logs"));
    }
    SECTION("--since yesterday exits 2 before any I/O") {
        const auto r = run_crmsync(with_io({"db_sync", "--c", "CAMP1", "--since", "yesterday"}),
                                   home.path, {{"CRMSYNC_TOKEN", "tok3n-value"}});
        CHECK(r.exit_code == 2);
        REQUIRE_FALSE(r.err_lines().empty());
        CHECK(starts_with(r.err_lines()[0], "crmsync: error:"));
        CHECK(r.err.find("yesterday") != std::string::npos);
        no_io_happened();
    }
    SECTION("--fm bogus exits 2 before any I/O") {
        const auto r = run_crmsync(with_io({"db_sync", "--c", "CAMP1", "--fm", "bogus"}), home.path,
                                   {{"CRMSYNC_TOKEN", "tok3n-value"}});
        CHECK(r.exit_code == 2);
        REQUIRE_FALSE(r.err_lines().empty());
        CHECK(starts_with(r.err_lines()[0], "crmsync: error:"));
        no_io_happened();
    }
    SECTION("no token exits 2 before any I/O") {
        const auto r = run_crmsync(with_io({"db_sync", "--c", "CAMP1"}), home.path);
        CHECK(r.exit_code == 2);
        const auto lines = r.err_lines();
        REQUIRE(lines.size() >= 2);
        CHECK(lines[0] == "crmsync: error: no API token given");
        CHECK(starts_with(lines[1], "crmsync: hint: "));
        no_io_happened();
    }
    SECTION("an unknown dbsync2 mode exits 2") {
        const auto r = run_crmsync(with_io({"--a", "bogus", "--c", "CAMP1"}), home.path);
        CHECK(r.exit_code == 2);
        REQUIRE_FALSE(r.err_lines().empty());
        CHECK(starts_with(r.err_lines()[0], "crmsync: error: "));
        no_io_happened();
    }
}

TEST_CASE("crmsync binary: dbsync2's own command line", "[cli]") {
    TempDir home;
    const std::string api_url =
        "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());

    SECTION("parses, fails at the network with exit 1 and never shows the password") {
        const auto r = run_crmsync({"--a",
                                    "db_sync",
                                    "--fm",
                                    "hi_updates_only",
                                    "--fp",
                                    "fc_,qc_",
                                    "--c",
                                    "MY_CAMPAIGN_ID",
                                    "--ct",
                                    "TOKEN",
                                    "--s",
                                    "2018-02-01",
                                    "--url",
                                    "sqlserver://my_user:my_password@localhost:1433/my_database",
                                    "--api-url",
                                    api_url,
                                    "--retry-attempts",
                                    "1",
                                    "--log-dir",
                                    (home.path / "logs").string()},
                                   home.path);
        INFO("stdout: " << r.out);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.out.find("my_password") == std::string::npos);
        CHECK(r.err.find("my_password") == std::string::npos);
        REQUIRE_FALSE(r.err_lines().empty());
        CHECK(starts_with(r.err_lines()[0], "crmsync: error: "));
        for (const auto& entry : fs::directory_iterator(home.path / "logs")) {
            CHECK(slurp(entry.path()).find("my_password") == std::string::npos);
        }
    }
}
