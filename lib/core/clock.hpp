#pragma once

#include <chrono>
#include <functional>

namespace crmsync {

using SystemTime = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// Injectable clocks: code that sleeps or reads the time takes a Clock so tests can drive it.
// The steady clock measures durations and deadlines; wall time only stamps rows and logs.
struct Clock {
    std::function<std::chrono::steady_clock::time_point()> steady_now = [] {
        return std::chrono::steady_clock::now();
    };
    std::function<SystemTime()> wall_now = [] {
        return std::chrono::time_point_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now());
    };
    std::function<void(std::chrono::milliseconds)> sleep_for;

    static const Clock& real();
};

} // namespace crmsync
