#include "lib/core/cancel.hpp"

#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"

#include <algorithm>
#include <csignal>
#include <string>
#include <thread>
#include <unistd.h>

namespace crmsync {

std::atomic<bool>& stop_flag() noexcept {
    static std::atomic<bool> flag{false};
    return flag;
}

void sleep_unless_stopped(const Clock& clock, std::chrono::milliseconds total,
                          std::string_view waiting_for) {
    constexpr std::chrono::milliseconds k_slice{100};
    while (total.count() > 0) {
        if (stop_requested()) {
            throw Error(ErrorKind::interrupted,
                        "interrupted while waiting for " + std::string(waiting_for));
        }
        const auto slice = std::min(total, k_slice);
        if (clock.sleep_for) {
            clock.sleep_for(slice);
        } else {
            std::this_thread::sleep_for(slice);
        }
        total -= slice;
    }
}

namespace {

extern "C" void on_stop_signal(int /*signal*/) {
    if (stop_flag().exchange(true)) {
        // Second signal: the user insists. Nothing is half-written because every batch is one
        // database transaction; the checkpoint stays where the last commit put it.
        _exit(k_exit_interrupted);
    }
}

} // namespace

void install_stop_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

} // namespace crmsync
