#include "tests/support/child_process.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace crmsync::testing {
namespace {

constexpr auto k_poll_interval = std::chrono::milliseconds(10);

int exit_code_of(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

// In the child, between fork and exec: only async-signal-safe calls.
bool redirect(const std::string& path, int fd, int flags) {
    if (path.empty()) {
        return true;
    }
    const int opened = ::open(path.c_str(), flags, 0600);
    return opened >= 0 && ::dup2(opened, fd) >= 0;
}

} // namespace

ChildProcess::ChildProcess(const SpawnOptions& options) {
    std::vector<std::string> argv_storage{options.program};
    argv_storage.insert(argv_storage.end(), options.args.begin(), options.args.end());
    auto argv = pointers(argv_storage);
    std::vector<std::string> env_storage;
    if (options.env) {
        env_storage = *options.env;
    }
    auto envp = pointers(env_storage);
    const bool shared_output =
        !options.stderr_path.empty() && options.stderr_path == options.stdout_path;
    std::fflush(nullptr); // Or the child would flush our buffered output a second time.
    m_pid = ::fork();
    if (m_pid == 0) {
        constexpr int k_write = O_WRONLY | O_CREAT | O_TRUNC;
        if (!redirect(options.stdin_path, STDIN_FILENO, O_RDONLY) ||
            !redirect(options.stdout_path, STDOUT_FILENO, k_write) ||
            (shared_output ? ::dup2(STDOUT_FILENO, STDERR_FILENO) < 0
                           : !redirect(options.stderr_path, STDERR_FILENO, k_write)) ||
            (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0)) {
            ::_exit(126);
        }
        ::execve(argv[0], argv.data(), options.env ? envp.data() : environ);
        ::_exit(127);
    }
    if (m_pid < 0) {
        throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    }
}

ChildProcess::~ChildProcess() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        int status = 0;
        ::waitpid(m_pid, &status, 0);
    }
}

void ChildProcess::signal(int signal) const {
    if (m_pid > 0) {
        ::kill(m_pid, signal);
    }
}

int ChildProcess::wait() {
    if (m_pid > 0) {
        int status = 0;
        m_exit_code = ::waitpid(m_pid, &status, 0) == m_pid ? exit_code_of(status) : -1;
        m_pid = -1;
    }
    return m_exit_code;
}

std::optional<int> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (m_pid > 0) {
        int status = 0;
        const auto done = ::waitpid(m_pid, &status, WNOHANG);
        if (done != 0) {
            m_exit_code = done > 0 ? exit_code_of(status) : -1;
            m_pid = -1;
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(k_poll_interval);
    }
    return m_exit_code;
}

std::vector<std::string> environment_without(const std::function<bool(std::string_view)>& drop) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        if (!drop(*e)) {
            env.emplace_back(*e);
        }
    }
    return env;
}

} // namespace crmsync::testing
