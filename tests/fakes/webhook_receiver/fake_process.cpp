#include "tests/fakes/webhook_receiver/fake_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace crmsync::fakes {
namespace {

constexpr auto k_poll_interval = std::chrono::milliseconds(10);
constexpr auto k_kill_grace = std::chrono::seconds(5);

int exit_code(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

} // namespace

FakeProcess::FakeProcess() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/crmsync-fake-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("FakeProcess: mkdtemp failed");
    }
    m_dir = pattern;
}

FakeProcess::~FakeProcess() {
    if (m_pid > 0) {
        terminate(k_kill_grace);
    }
    std::error_code ignored;
    std::filesystem::remove_all(m_dir, ignored);
}

std::string FakeProcess::path(const std::string& name) const { return m_dir + "/" + name; }

void FakeProcess::start(const std::string& program, const std::vector<std::string>& args) {
    if (m_pid > 0) {
        throw std::logic_error("FakeProcess::start called twice");
    }
    std::vector<std::string> owned{program};
    owned.insert(owned.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(owned.size() + 1);
    for (auto& arg : owned) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const auto output_path = path("output");
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    const int rc = ::posix_spawn(&m_pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        m_pid = -1;
        throw std::runtime_error("FakeProcess: cannot spawn " + program);
    }
}

int FakeProcess::wait_for_port(const std::string& port_file, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream in(port_file);
        int port = 0;
        if (in >> port && port > 0) {
            return port;
        }
        int status = 0;
        if (m_pid > 0 && ::waitpid(m_pid, &status, WNOHANG) == m_pid) {
            m_pid = -1;
            m_exit_code = exit_code(status);
            throw std::runtime_error("FakeProcess: the child exited early: " + output());
        }
        std::this_thread::sleep_for(k_poll_interval);
    }
    throw std::runtime_error("FakeProcess: no port in " + port_file + ": " + output());
}

int FakeProcess::terminate(std::chrono::milliseconds timeout) {
    if (m_pid <= 0) {
        return m_exit_code;
    }
    ::kill(m_pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
        const auto done = ::waitpid(m_pid, &status, WNOHANG);
        if (done != 0) {
            m_pid = -1;
            m_exit_code = done > 0 ? exit_code(status) : -1;
            return m_exit_code;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, &status, 0);
            m_pid = -1;
            m_exit_code = -1;
            return m_exit_code;
        }
        std::this_thread::sleep_for(k_poll_interval);
    }
}

std::string FakeProcess::output() const {
    std::ifstream in(path("output"));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace crmsync::fakes
