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
