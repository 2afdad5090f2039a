#pragma once

// A child process for tests: spawned with its own arguments, environment, working directory
// and standard streams redirected to files; waited for with or without a deadline; signalled.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::testing {

struct SpawnOptions {
    std::string program;           ///< A path; PATH is not searched.
    std::vector<std::string> args; ///< Without the program itself.
    /// "NAME=value" entries; nullopt = this process's environment.
    std::optional<std::vector<std::string>> env;
    std::string stdin_path = "/dev/null";
    std::string stdout_path; ///< "" = inherited.
    std::string stderr_path; ///< "" = inherited; equal to stdout_path = one file for both.
    std::string cwd;         ///< "" = this process's.
};

class ChildProcess {
public:
    /// Starts the child. Throws std::runtime_error if it cannot fork; a program that cannot be
    /// executed exits 127 (126 if its streams cannot be opened).
    explicit ChildProcess(const SpawnOptions& options);
    /// Kills a child that still runs (SIGKILL) and reaps it.
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    /// No effect once the child has been reaped.
    void signal(int signal) const;
    /// Blocks until the child exits: its exit code, 128 + signal if a signal ended it. Returns
    /// the same again once reaped.
    int wait();
    /// As wait(), nullopt if the child still runs after `timeout` (0 = just look).
    std::optional<int> wait_for(std::chrono::milliseconds timeout);
    [[nodiscard]] bool running() const { return m_pid > 0; }

private:
    pid_t m_pid = -1;
    int m_exit_code = -1;
};

/// This process's environment without the entries `drop` picks, as SpawnOptions::env wants it.
std::vector<std::string> environment_without(const std::function<bool(std::string_view)>& drop);

} // namespace crmsync::testing
