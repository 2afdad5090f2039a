#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace crmsync::pipeline {

// A blocking FIFO of bounded size between fetchers and the writer, so memory stays flat
// however large the source is. close() wakes everyone: pushes fail, pops drain then end.
template <typename T> class BoundedQueue {
public:
    explicit BoundedQueue(std::size_t capacity) : m_capacity(capacity) {}

    // Blocks while full; false once closed.
    bool push(T item) {
        std::unique_lock lock(m_mutex);
        m_not_full.wait(lock, [&] { return m_closed || m_items.size() < m_capacity; });
        if (m_closed) {
            return false;
        }
        m_items.push_back(std::move(item));
        m_not_empty.notify_one();
        return true;
    }

    // Non-blocking: false when full or closed (the item is then left as it was).
    bool try_push(T& item) {
        std::lock_guard lock(m_mutex);
        if (m_closed || m_items.size() >= m_capacity) {
            return false;
        }
        m_items.push_back(std::move(item));
        m_not_empty.notify_one();
        return true;
    }

    // Blocks while empty and open; nullopt once closed and drained.
    std::optional<T> pop() {
        std::unique_lock lock(m_mutex);
        m_not_empty.wait(lock, [&] { return m_closed || !m_items.empty(); });
        return take(lock);
    }

    // Non-blocking: nullopt when nothing is ready.
    std::optional<T> try_pop() {
        std::unique_lock lock(m_mutex);
        return take(lock);
    }

    void close() {
        std::lock_guard lock(m_mutex);
        m_closed = true;
        m_not_empty.notify_all();
        m_not_full.notify_all();
    }

private:
    std::optional<T> take(std::unique_lock<std::mutex>& /*held*/) {
        if (m_items.empty()) {
            return std::nullopt;
        }
        T item = std::move(m_items.front());
        m_items.pop_front();
        m_not_full.notify_one();
        return item;
    }

    std::size_t m_capacity;
    std::mutex m_mutex;
    std::condition_variable m_not_empty;
    std::condition_variable m_not_full;
    std::deque<T> m_items;
    bool m_closed = false;
};

} // namespace crmsync::pipeline
