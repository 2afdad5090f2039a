#include "tests/integration/support.hpp"

#include "cmd/targets.hpp"
#include "lib/sql/schema_manager.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace crmsync::testing {

TempDir::TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "crmsync-test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    m_path = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
}

CrmsyncProcess::CrmsyncProcess(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env, const TempDir& dir) {
    static std::atomic<int> counter{0};
    const int n = counter++;
    m_out = dir.file("stdout." + std::to_string(n));
    m_err = dir.file("stderr." + std::to_string(n));
    std::vector<std::string> argv_storage{CRMSYNC_BINARY};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry = *e;
        // The child sees only what the test gives it of crmsync's own variables.
        if (entry.rfind("CRMSYNC_TOKEN=", 0) == 0 || entry.rfind("DBSYNC_", 0) == 0 ||
            entry.rfind("CRMSYNC_DB_PASSWORD=", 0) == 0) {
            continue;
        }
        env_storage.push_back(entry);
    }
    for (const auto& [key, value] : env) {
        env_storage.push_back(key + "=" + value);
    }
    std::fflush(nullptr); // or the child would flush our buffered output a second time
    m_pid = ::fork();
    if (m_pid == 0) {
        std::vector<char*> argv;
        for (auto& a : argv_storage) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        std::vector<char*> envp;
        for (auto& e : env_storage) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        std::freopen(m_out.c_str(), "w", stdout);
        std::freopen(m_err.c_str(), "w", stderr);
        std::freopen("/dev/null", "r", stdin);
        ::execve(argv[0], argv.data(), envp.data());
        std::_Exit(127);
    }
    if (m_pid < 0) {
        throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    }
}

CrmsyncProcess::~CrmsyncProcess() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        int status = 0;
        ::waitpid(m_pid, &status, 0);
    }
}

void CrmsyncProcess::kill(int signal) {
    if (m_pid > 0) {
        ::kill(m_pid, signal);
    }
}

ProcessResult CrmsyncProcess::wait() {
    ProcessResult result;
    int status = 0;
    if (m_pid > 0 && ::waitpid(m_pid, &status, 0) == m_pid) {
        result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    m_pid = -1;
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

std::unique_ptr<sql::Database> open(const std::string& url) {
    return cli::open_target(cli::parse_target(url));
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

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
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

} // namespace crmsync::testing
