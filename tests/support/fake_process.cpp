#include "tests/support/fake_process.hpp"

#include <csignal>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace crmsync::testing {
namespace {

constexpr auto k_poll_interval = std::chrono::milliseconds(10);
constexpr auto k_kill_grace = std::chrono::seconds(5);

} // namespace

FakeProcess::~FakeProcess() {
    if (m_child && m_child->running()) {
        terminate(k_kill_grace);
    }
}

std::string FakeProcess::path(const std::string& name) const { return m_dir.file(name); }

void FakeProcess::start(const std::string& program, const std::vector<std::string>& args) {
    if (m_child) {
        throw std::logic_error("FakeProcess::start called twice");
    }
    SpawnOptions options;
    options.program = program;
    options.args = args;
    options.stdout_path = path("output");
    options.stderr_path = options.stdout_path;
    m_child = std::make_unique<ChildProcess>(options);
}

int FakeProcess::wait_for_port(const std::string& port_file, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream in(port_file);
        int port = 0;
        if (in >> port && port > 0) {
            return port;
        }
        if (m_child && m_child->running()) {
            if (const auto code = m_child->wait_for(std::chrono::milliseconds(0))) {
                m_exit_code = *code;
                throw std::runtime_error("FakeProcess: the child exited early: " + output());
            }
        }
        std::this_thread::sleep_for(k_poll_interval);
    }
    throw std::runtime_error("FakeProcess: no port in " + port_file + ": " + output());
}

int FakeProcess::terminate(std::chrono::milliseconds timeout) {
    if (!m_child || !m_child->running()) {
        return m_exit_code;
    }
    m_child->signal(SIGTERM);
    if (const auto code = m_child->wait_for(timeout)) {
        m_exit_code = *code;
    } else {
        m_child->signal(SIGKILL);
        m_child->wait();
        m_exit_code = -1;
    }
    return m_exit_code;
}

std::string FakeProcess::output() const { return read_file(path("output")); }

} // namespace crmsync::testing
