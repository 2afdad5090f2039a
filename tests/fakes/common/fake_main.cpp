#include "tests/fakes/common/fake_main.hpp"

#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace crmsync::fakes {
namespace {

constexpr long k_signal_poll_ns = 200'000'000;

// glibc gives each server thread its own malloc arena and hands freed memory back to the
// kernel as soon as an arena's top is free (madvise, then a TLB flush on every core). A request
// allocates and frees a few KB on its thread, so under load that trimming and the page faults
// after it took about half of a fake's CPU: the webhook receiver, not crmsync, was the limit
// of the webhook benchmark. One arena that keeps what it got costs a few MB at most.
void keep_malloc_memory() {
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
}

} // namespace

void write_port_file(const std::string& path, int port) {
    const auto temp = path + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(temp, std::ios::trunc);
        out << port << '\n';
        if (!out.flush()) {
            throw std::runtime_error("cannot write " + temp);
        }
    }
    std::filesystem::rename(temp, path);
}

StopSignals::StopSignals() {
    sigemptyset(&m_signals);
    sigaddset(&m_signals, SIGINT);
    sigaddset(&m_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &m_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

void StopSignals::wait(const std::atomic<bool>& shutdown_requested) const {
    // Sliced, so that a /_fake/shutdown (which raises no signal) is seen within 200 ms.
    while (!shutdown_requested) {
        timespec slice{0, k_signal_poll_ns};
        if (sigtimedwait(&m_signals, nullptr, &slice) > 0) {
            break;
        }
    }
}

int run_fake_main(std::string_view name, const std::function<int()>& body) {
    keep_malloc_memory();
    try {
        return body();
    } catch (const std::exception& e) {
        std::cerr << name << ": error: " << e.what() << '\n';
    } catch (...) {
        std::cerr << name << ": error: unknown exception\n";
    }
    return 1;
}

} // namespace crmsync::fakes
