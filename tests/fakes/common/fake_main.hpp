#pragma once

// What every fake's executable does around its fake: write the bound port for the test that
// started it, wait for SIGTERM, SIGINT or POST /_fake/shutdown, and report errors on stderr.

#include <atomic>
#include <functional>
#include <string>
#include <string_view>

#include <csignal>

namespace crmsync::fakes {

/// Writes "PORT\n" to `path` through a renamed temporary file: readers poll for the file, so
/// it must appear complete or not at all. Throws on I/O errors.
void write_port_file(const std::string& path, int port);

/// Blocks SIGINT and SIGTERM (threads started later inherit the mask) and ignores SIGPIPE, so
/// that only wait() sees the stop signals. Construct before starting the fake.
class StopSignals {
public:
    StopSignals();
    /// Returns once SIGINT or SIGTERM arrives or `shutdown_requested` turns true.
    void wait(const std::atomic<bool>& shutdown_requested) const;

private:
    sigset_t m_signals{};
};

/// Runs `body` and returns its exit code; an exception it lets out is printed as
/// "<name>: error: <what>" and exits 1. Sets malloc up for a server first (one arena that keeps
/// its memory), so call it before the fake starts its threads.
int run_fake_main(std::string_view name, const std::function<int()>& body);

} // namespace crmsync::fakes
