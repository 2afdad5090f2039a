#pragma once

// Shared helpers for integration tests: the crmsync binary as a child process, the target
// databases under test, and table dumps for comparing two targets. Temp dirs and process
// plumbing come from tests/support.

#include "lib/sql/database.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::testing {

struct ProcessResult {
    int exit_code = -1; // 128 + signal when killed
    std::string out;
    std::string err;
};

// A crmsync child process; stdout and stderr go to files in `dir`.
class CrmsyncProcess {
public:
    CrmsyncProcess(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env, const TempDir& dir);
    void kill(int signal);
    ProcessResult wait();
    // Whether it has exited (wait() then returns at once).
    bool exited();

private:
    std::unique_ptr<ChildProcess> m_child;
    std::string m_out;
    std::string m_err;
};

// Runs crmsync to completion. CRMSYNC_TOKEN and friends are not inherited unless given.
ProcessResult run_crmsync(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env, const TempDir& dir);

// A database to test against: always SQLite (a file in `dir`), plus PostgreSQL and MariaDB
// when tests/run.sh exported CRMSYNC_TEST_POSTGRES_URL / CRMSYNC_TEST_MYSQL_URL.
struct Target {
    std::string name; // sqlite | postgres | mysql
    std::string url;
};
std::vector<Target> targets(const TempDir& dir);
// The one of targets() named `name`, for a test of one database; nullopt (with a warning in
// the test's output: it checks nothing) when tests/run.sh did not export that database.
std::optional<Target> target_named(const TempDir& dir, const std::string& name);
// A connection to the one of targets() named `name`; null (with target_named's warning) when
// tests/run.sh did not export that database.
std::unique_ptr<sql::Database> open_named(const TempDir& dir, const std::string& name);

std::unique_ptr<sql::Database> open(const std::string& url);

// A table prefix no other test uses ("t<counter>_<pid>_").
std::string unique_prefix();

// Every row of `table` as text, sorted, leaving out `skip` columns (e.g. "$changed").
std::vector<std::string> dump_table(sql::Database& db, const std::string& table,
                                    const std::vector<std::string>& skip = {"$changed"});

bool table_exists(sql::Database& db, const std::string& table);

long count_rows(sql::Database& db, const std::string& table, const std::string& where = "");

// Drops the tables of one test (names starting with `prefix`) and its state rows.
void drop_prefixed(sql::Database& db, const std::string& prefix);

// Waits until `done` holds, polling every 5 ms; fails the test with `failure` if it never does
// (a safety net of 100 s against a broken precondition, not a limit on how long a run takes).
void wait_until(const std::function<bool()>& done, const std::string& failure);

std::vector<std::string> list_files(const std::string& dir);

} // namespace crmsync::testing
