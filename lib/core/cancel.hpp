#pragma once

#include <atomic>

namespace crmsync {

// Set by SIGINT/SIGTERM handlers; long waits and loops poll it so a run stops promptly after
// committing the batch in flight.
std::atomic<bool>& stop_flag() noexcept;
inline bool stop_requested() noexcept { return stop_flag().load(std::memory_order_relaxed); }

// Installs SIGINT/SIGTERM handlers that set stop_flag(); a second signal exits at once.
void install_stop_signal_handlers();

} // namespace crmsync
