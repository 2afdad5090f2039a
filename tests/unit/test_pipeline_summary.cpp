#include "lib/pipeline/summary.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace pipeline = crmsync::pipeline;
using crmsync::testing::read_file;
using crmsync::testing::TempDir;

namespace {

pipeline::RunSummary a_summary() {
    pipeline::RunSummary s;
    s.command = "db_sync";
    s.job = "JOB";
    s.fetched = 12;
    return s;
}

std::vector<std::string> names_in(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777;
}

} // namespace

TEST_CASE("pipeline::write_summary_file", "[unit]") {
    TempDir dir;
    const std::string path = dir.file("summary.json");

    SECTION("writes the whole summary, 0600, and leaves no temporary file") {
        pipeline::write_summary_file(a_summary(), path);
        const auto j = nlohmann::json::parse(read_file(path));
        CHECK(j["job"] == "JOB");
        CHECK(j["fetched"] == 12);
        CHECK(mode_of(path) == 0600);
        CHECK(names_in(dir.path()) == std::vector<std::string>{"summary.json"});
    }
    SECTION("never writes through a file planted at the old fixed temporary name") {
        const std::string victim = dir.file("victim");
        { std::ofstream(victim) << "keep"; }
        REQUIRE(::symlink(victim.c_str(), (path + ".tmp").c_str()) == 0);
        pipeline::write_summary_file(a_summary(), path);
        CHECK(read_file(victim) == "keep");
        CHECK(nlohmann::json::parse(read_file(path))["job"] == "JOB");
    }
    SECTION("an existing summary keeps its mode") {
        { std::ofstream(path) << "{}"; }
        REQUIRE(::chmod(path.c_str(), 0640) == 0);
        pipeline::write_summary_file(a_summary(), path);
        CHECK(mode_of(path) == 0640);
        CHECK(nlohmann::json::parse(read_file(path))["job"] == "JOB");
    }
}
