#include "drivers/sqlite/connection.hpp"
#include "lib/util/url.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

namespace fs = std::filesystem;
namespace util = crmsync::util;

TEST_CASE("sqlite::connect", "[sqlite]") {
    std::string pattern = (fs::temp_directory_path() / "crmsync-sqlite-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    const fs::path dir = pattern;

    const auto check_file = [&](const std::string& name) {
        const fs::path file = dir / name;
        {
            auto db = crmsync::drivers::sqlite::connect(
                util::parse_database_url("sqlite://" + file.string()));
            db->execute("CREATE TABLE t (x INTEGER)");
            db->execute("INSERT INTO t (x) VALUES (1)");
        }
        std::set<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir)) {
            names.insert(entry.path().filename().string());
        }
        INFO("files: " << [&] {
            std::string all;
            for (const auto& n : names) {
                all += "[" + n + "] ";
            }
            return all;
        }());
        // The data lands in the file the URL names, which was created private.
        REQUIRE(fs::exists(file));
        CHECK(fs::file_size(file) > 0);
        struct stat st {};
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        for (const auto& n : names) {
            CHECK((n == name || n.rfind(name, 0) == 0));
        }
    };

    SECTION("opens a plain path and creates it 0600") { check_file("target.db"); }
    SECTION("opens a path with spaces") { check_file("my target.db"); }
    SECTION("opens a path with a backslash") { check_file("a\\b.db"); }
    SECTION("opens a path with a double quote") { check_file("q\"t.db"); }

    std::error_code ec;
    fs::remove_all(dir, ec);
}

// Error lines, logs, the summary and alerts carry this message.
TEST_CASE("a failing statement's error names it without its values", "[sqlite]") {
    std::string pattern = (fs::temp_directory_path() / "crmsync-sqlite-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    const fs::path dir = pattern;
    auto db = crmsync::drivers::sqlite::connect(
        util::parse_database_url("sqlite://" + (dir / "e.db").string()));
    db->execute("CREATE TABLE t (x TEXT NOT NULL)");
    std::string message;
    try {
        db->execute("INSERT INTO t (x) VALUES (:p0), (:p1)",
                    {std::string("+49 170 5550123"), std::nullopt});
    } catch (const std::exception& e) {
        message = e.what();
    }
    INFO(message);
    // The server's reason and what ran, not the record's data that SOCI appends.
    CHECK(message.find("running INSERT INTO") != std::string::npos);
    CHECK(message.find("NOT NULL constraint failed") != std::string::npos);
    CHECK(message.find("5550123") == std::string::npos);
    CHECK(message.find(":p0") == std::string::npos);
    fs::remove_all(dir);
}
