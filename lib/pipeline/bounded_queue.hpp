#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

namespace crmsync::pipeline {

// A blocking FIFO of bounded size between fetchers and the writer, so memory stays flat
// however large the source is. close() wakes everyone: pushes fail, pops drain then end.
//
// Items may carry a weight (rows, say): with a weight floor the queue also takes items beyond
// its capacity while the weight it holds is below the floor, so it can hold one writer's batch
// however few rows each item brings. It then holds at most max(capacity items, floor weight
// plus one item).
template <typename T> class BoundedQueue {
public:
    using Weigh = std::function<std::size_t(const T&)>;

    explicit BoundedQueue(std::size_t capacity, std::size_t weight_floor = 0, Weigh weigh = {})
        : m_capacity(capacity), m_weight_floor(weigh ? weight_floor : 0),
          m_weigh(std::move(weigh)) {}

    // Blocks while full; false once closed.
    bool push(T item) {
        const std::size_t weight = m_weigh ? m_weigh(item) : 0;
        std::unique_lock lock(m_mutex);
        m_not_full.wait(lock, [&] { return m_closed || has_room(); });
        if (m_closed) {
            return false;
        }
        add(std::move(item), weight);
        return true;
    }

    // Non-blocking: false when full or closed (the item is then left as it was).
    bool try_push(T& item) {
        const std::size_t weight = m_weigh ? m_weigh(item) : 0;
        std::lock_guard lock(m_mutex);
        if (m_closed || !has_room()) {
            return false;
        }
        add(std::move(item), weight);
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
    // Callers hold m_mutex.
    bool has_room() const { return m_items.size() < m_capacity || m_weight < m_weight_floor; }

    void add(T item, std::size_t weight) {
        m_items.push_back(std::move(item));
        m_weights.push_back(weight);
        m_weight += weight;
        m_not_empty.notify_one();
    }

    std::optional<T> take(std::unique_lock<std::mutex>& /*held*/) {
        if (m_items.empty()) {
            return std::nullopt;
        }
        T item = std::move(m_items.front());
        m_items.pop_front();
        m_weight -= m_weights.front();
        m_weights.pop_front();
        m_not_full.notify_one();
        return item;
    }

    std::size_t m_capacity;
    std::size_t m_weight_floor;
    Weigh m_weigh;
    std::mutex m_mutex;
    std::condition_variable m_not_empty;
    std::condition_variable m_not_full;
    std::deque<T> m_items;
    std::deque<std::size_t> m_weights; // of m_items, in the same order
    std::size_t m_weight = 0;          // their sum
    bool m_closed = false;
};

} // namespace crmsync::pipeline
