#pragma once

#include "lib/core/clock.hpp"

#include <atomic>
#include <chrono>
#include <string_view>

namespace crmsync {

// Set by SIGINT/SIGTERM handlers; long waits and loops poll it so a run stops promptly after
// committing the batch in flight.
std::atomic<bool>& stop_flag() noexcept;
inline bool stop_requested() noexcept { return stop_flag().load(std::memory_order_relaxed); }

// Sleeps `total` on `clock` (a real sleep when it has no sleep_for) in slices of at most
// 100 ms, so that a stop signal ends the wait promptly: it then throws
// Error(interrupted, "interrupted while waiting for <waiting_for>").
void sleep_unless_stopped(const Clock& clock, std::chrono::milliseconds total,
                          std::string_view waiting_for);

// Installs SIGINT/SIGTERM handlers that set stop_flag(); a second signal exits at once.
void install_stop_signal_handlers();

} // namespace crmsync
