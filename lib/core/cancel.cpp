#include "lib/core/cancel.hpp"

#include "lib/core/exit_codes.hpp"

#include <csignal>
#include <unistd.h>

namespace crmsync {

std::atomic<bool>& stop_flag() noexcept {
    static std::atomic<bool> flag{false};
    return flag;
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
