#pragma once

// Runs one of the fake executables (webhook_receiver, oauth_fake, smtp_fake, dialfire_fake) as
// a child process, the way out-of-process tests use them: pass port-file paths from path(),
// wait for the ports, stop it with SIGTERM and check that it exited cleanly.

#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace crmsync::testing {

class FakeProcess {
public:
    /// Creates a private temporary directory for port files and the child's output.
    FakeProcess() = default;
    /// Kills a child that is still running (SIGTERM, then SIGKILL) and removes the directory.
    ~FakeProcess();
    FakeProcess(const FakeProcess&) = delete;
    FakeProcess& operator=(const FakeProcess&) = delete;

    /// A path inside the temporary directory, e.g. for --port-file.
    [[nodiscard]] std::string path(const std::string& name) const;
    /// Spawns `program` with `args`; stdout and stderr go to path("output"). Throws
    /// std::runtime_error if it cannot be spawned. Call once.
    void start(const std::string& program, const std::vector<std::string>& args);
    /// Waits for the port file the child writes once listening; throws std::runtime_error on
    /// timeout or when the child exits first.
    int wait_for_port(const std::string& port_file, std::chrono::milliseconds timeout);
    /// Sends SIGTERM and waits. Returns the exit code, 128 + signal if a signal ended it, or -1
    /// if it had to be killed after `timeout`. After the child is gone, returns the same again.
    int terminate(std::chrono::milliseconds timeout);
    /// What the child printed so far.
    [[nodiscard]] std::string output() const;

private:
    TempDir m_dir;
    std::unique_ptr<ChildProcess> m_child;
    int m_exit_code = -1;
};

} // namespace crmsync::testing
