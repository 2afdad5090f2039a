#pragma once

// Small pieces of state every fake keeps: its clock, a stop flag that cuts sleeping handlers
// short, and the hook that POST /_fake/shutdown calls. Every method may be called from any
// thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace crmsync::fakes {

/// The fake's clock = system clock + an offset that tests set.
class FakeClock {
public:
    void set_offset(std::chrono::milliseconds offset) { m_offset_ms = offset.count(); }
    void set_offset_ms(std::int64_t offset_ms) { m_offset_ms = offset_ms; }
    [[nodiscard]] std::int64_t now_us() const {
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count() +
               m_offset_ms.load() * 1000;
    }
    [[nodiscard]] std::int64_t now_ms() const { return now_us() / 1000; }
    [[nodiscard]] std::chrono::system_clock::time_point now() const {
        return std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms()));
    }

private:
    std::atomic<std::int64_t> m_offset_ms{0};
};

/// Raised once when the fake stops; handlers sleeping in sleep_for() wake up then.
class StopFlag {
public:
    void raise() {
        {
            std::lock_guard lock(m_mutex);
            m_raised = true;
        }
        m_cv.notify_all();
    }
    /// Sleeps `delay`, or less if the flag is raised meanwhile.
    void sleep_for(std::chrono::milliseconds delay) {
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, delay, [this] { return m_raised; });
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_raised = false;
};

/// What POST /_fake/shutdown calls (on a server thread); it must only signal the owner, never
/// stop the fake itself.
class ShutdownHook {
public:
    void set(std::function<void()> handler) {
        std::lock_guard lock(m_mutex);
        m_handler = std::move(handler);
    }
    void fire() {
        std::function<void()> handler;
        {
            std::lock_guard lock(m_mutex);
            handler = m_handler;
        }
        if (handler) {
            handler();
        }
    }

private:
    std::mutex m_mutex;
    std::function<void()> m_handler;
};

} // namespace crmsync::fakes
