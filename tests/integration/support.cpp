#include "tests/integration/support.hpp"

#include "cmd/targets.hpp"
#include "lib/sql/schema_manager.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace crmsync::testing {

CrmsyncProcess::CrmsyncProcess(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env, const TempDir& dir) {
    static std::atomic<int> counter{0};
    const int n = counter++;
    m_out = dir.file("stdout." + std::to_string(n));
    m_err = dir.file("stderr." + std::to_string(n));
    SpawnOptions options;
    options.program = CRMSYNC_BINARY;
    options.args = args;
    // The child sees only what the test gives it of crmsync's own variables.
    options.env = environment_without([](std::string_view entry) {
        return entry.starts_with("CRMSYNC_TOKEN=") || entry.starts_with("DBSYNC_") ||
               entry.starts_with("CRMSYNC_DB_PASSWORD=");
    });
    for (const auto& [key, value] : env) {
        options.env->push_back(key + "=" + value);
    }
    options.stdout_path = m_out;
    options.stderr_path = m_err;
    m_child = std::make_unique<ChildProcess>(options);
}

void CrmsyncProcess::kill(int signal) { m_child->signal(signal); }

bool CrmsyncProcess::exited() {
    return m_child->wait_for(std::chrono::milliseconds(0)).has_value();
}

ProcessResult CrmsyncProcess::wait() {
    ProcessResult result;
    result.exit_code = m_child->wait();
    result.out = read_file(m_out);
    result.err = read_file(m_err);
    return result;
}

ProcessResult run_crmsync(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env, const TempDir& dir) {
    CrmsyncProcess process(args, env, dir);
    return process.wait();
}

std::vector<Target> targets(const TempDir& dir) {
    std::vector<Target> list{{"sqlite", "sqlite://" + dir.file("target.db")}};
    if (const char* pg = std::getenv("CRMSYNC_TEST_POSTGRES_URL"); pg != nullptr && *pg) {
        list.push_back({"postgres", pg});
    }
    if (const char* my = std::getenv("CRMSYNC_TEST_MYSQL_URL"); my != nullptr && *my) {
        list.push_back({"mysql", my});
    }
    return list;
}

std::optional<Target> target_named(const TempDir& dir, const std::string& name) {
    for (auto& target : targets(dir)) {
        if (target.name == name) {
            return target;
        }
    }
    WARN(name << " is not configured (tests/run.sh starts it): this test checks nothing");
    return std::nullopt;
}

std::unique_ptr<sql::Database> open(const std::string& url) {
    return cli::open_target(cli::parse_target(url));
}

std::unique_ptr<sql::Database> open_named(const TempDir& dir, const std::string& name) {
    const auto target = target_named(dir, name);
    return target ? open(target->url) : nullptr;
}

std::string unique_prefix() {
    static std::atomic<int> counter{0};
    return "t" + std::to_string(counter++) + "_" + std::to_string(::getpid()) + "_";
}

std::vector<std::string> dump_table(sql::Database& db, const std::string& table,
                                    const std::vector<std::string>& skip) {
    sql::SchemaManager schema(db);
    std::vector<std::string> columns;
    for (const auto& c : schema.existing_columns(table)) {
        if (std::find(skip.begin(), skip.end(), c) == skip.end()) {
            columns.push_back(c);
        }
    }
    std::string select = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        select += (i ? ", " : "") + db.dialect().quote(columns[i]);
    }
    select += " FROM " + db.dialect().quote(table);
    std::vector<std::string> rows;
    for (const auto& row : db.query(select)) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += columns[i] + "=" + (row[i] ? *row[i] : std::string("NULL")) + "\x1f";
        }
        rows.push_back(line);
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

bool table_exists(sql::Database& db, const std::string& table) {
    return !sql::SchemaManager(db).existing_columns(table).empty();
}

long count_rows(sql::Database& db, const std::string& table, const std::string& where) {
    const auto rows = db.query("SELECT COUNT(*) FROM " + db.dialect().quote(table) +
                               (where.empty() ? "" : " WHERE " + where));
    return std::stol(rows.at(0).at(0).value_or("0"));
}

void drop_prefixed(sql::Database& db, const std::string& prefix) {
    sql::SchemaManager schema(db);
    for (const char* name :
         {"contacts", "transactions", "connections", "recordings", "inbound_calls"}) {
        const std::string table = prefix + name;
        if (!schema.existing_columns(table).empty()) {
            db.execute("DROP TABLE " + db.dialect().quote(table));
        }
    }
    if (!schema.existing_columns("crmsync_state").empty()) {
        db.execute("DELETE FROM " + db.dialect().quote("crmsync_state") + " WHERE " +
                       db.dialect().quote("job") + " LIKE " + db.dialect().placeholder("p", 0),
                   {"%:" + prefix});
    }
}

std::vector<std::string> list_files(const std::string& dir) {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
        if (entry.is_regular_file()) {
            files.push_back(entry.path().string());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

void wait_until(const std::function<bool()>& done, const std::string& failure) {
    for (int polls = 0; polls < 20'000; ++polls) {
        if (done()) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL(failure);
}

} // namespace crmsync::testing
