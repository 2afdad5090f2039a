#include "cmd/common.hpp"
#include "cmd/webhook.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <sys/stat.h>

namespace cli = crmsync::cli;
using crmsync::testing::TempDir;

namespace {

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777;
}

} // namespace

TEST_CASE("cli::log_file_path", "[unit]") {
    TempDir dir;
    SECTION("creates missing log directories 0700 whatever the umask") {
        const mode_t old_umask = ::umask(022);
        cli::CommonOptions o;
        o.log_dir = dir.file("a/b");
        const auto file = cli::log_file_path(o, "JOB", "db_sync");
        ::umask(old_umask);
        CHECK(file.rfind(dir.file("a/b/JOB_db_sync_"), 0) == 0);
        CHECK(mode_of(dir.file("a")) == 0700);
        CHECK(mode_of(dir.file("a/b")) == 0700);
    }
    SECTION("leaves the mode of an existing directory alone") {
        REQUIRE(::mkdir(dir.file("shared").c_str(), 0755) == 0);
        REQUIRE(::chmod(dir.file("shared").c_str(), 0755) == 0);
        cli::CommonOptions o;
        o.log_dir = dir.file("shared");
        cli::log_file_path(o, "JOB", "db_sync");
        CHECK(mode_of(dir.file("shared")) == 0755);
    }
}

TEST_CASE("cli::webhook_job_key", "[unit]") {
    // State files written by earlier versions hold checkpoints, outbox and delivery ids under
    // this exact key: it must not change (what is shown of it is redacted instead).
    CHECK(cli::webhook_job_key("CAMP", "https://u:pw@hooks.example/h/0123456789abcdef?k=v") ==
          "webhook:CAMP:https://u:***@hooks.example/h/0123456789abcdef?k=v");
    CHECK(cli::webhook_job_key("CAMP", "https://hooks.example/a") !=
          cli::webhook_job_key("CAMP", "https://hooks.example/b"));
}
