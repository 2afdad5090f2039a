#include "lib/core/clock.hpp"

#include <thread>

namespace crmsync {

const Clock& Clock::real() {
    static const Clock clock = [] {
        Clock c;
        c.sleep_for = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
        return c;
    }();
    return clock;
}

} // namespace crmsync
