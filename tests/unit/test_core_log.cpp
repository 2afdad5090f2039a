#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace logging = crmsync::log;
using crmsync::testing::read_file;
using crmsync::testing::TempDir;

TEST_CASE("log::init", "[unit]") {
    TempDir dir;

    SECTION("refuses a log file that is a symbolic link, and leaves its target alone") {
        const std::string victim = dir.file("victim");
        { std::ofstream(victim) << "keep"; }
        const std::string link = dir.file("job.log");
        REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
        logging::LogOptions options;
        options.file = link;
        try {
            logging::init(options);
            logging::info("must not arrive");
            logging::shutdown();
            FAIL("a symlinked log file was opened");
        } catch (const crmsync::Error& e) {
            CHECK(e.kind() == crmsync::ErrorKind::io);
            CHECK(std::string(e.what()).find("symbolic link") != std::string::npos);
        }
        CHECK(read_file(victim) == "keep");
    }
    SECTION("creates the file 0600 and appends every line to the descriptor it opened") {
        const std::string file = dir.file("job.log");
        logging::LogOptions options;
        options.file = file;
        logging::init(options);
        logging::info("first line");
        // Moved away while open: lines follow the descriptor, nothing is reopened by name.
        const std::string moved = dir.file("moved.log");
        REQUIRE(std::rename(file.c_str(), moved.c_str()) == 0);
        logging::info("second line");
        logging::shutdown();
        struct stat st {};
        REQUIRE(::stat(moved.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        const auto text = read_file(moved);
        CHECK(text.find("first line") != std::string::npos);
        CHECK(text.find("second line") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(file));
    }
}
