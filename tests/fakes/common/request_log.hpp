#pragma once

// The request statistics every HTTP fake keeps: the most recent records (a bounded queue,
// oldest first) and a count per key (a path or a method name) that survives the bound.
// Every method may be called from any thread.

#include <httplib.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

/// The raw text after '?' in the request target, "" if none.
inline std::string query_of(const httplib::Request& req) {
    const auto q = req.target.find('?');
    return q == std::string::npos ? std::string() : req.target.substr(q + 1);
}

template <typename Record> class RequestLog {
public:
    using Counts = std::map<std::string, std::size_t, std::less<>>;

    /// Keeps at most `capacity` records; counts are not bounded.
    explicit RequestLog(std::size_t capacity) : m_capacity(capacity) {}

    void add(const std::string& key, Record record) {
        std::lock_guard lock(m_mutex);
        ++m_counts[key];
        m_records.push_back(std::move(record));
        if (m_records.size() > m_capacity) {
            m_records.pop_front();
        }
    }
    [[nodiscard]] std::vector<Record> records() const {
        std::lock_guard lock(m_mutex);
        return {m_records.begin(), m_records.end()};
    }
    /// The last `n` records, oldest first.
    [[nodiscard]] std::vector<Record> recent(std::size_t n) const {
        std::lock_guard lock(m_mutex);
        const auto skip = m_records.size() > n ? m_records.size() - n : 0;
        return {m_records.begin() + static_cast<std::ptrdiff_t>(skip), m_records.end()};
    }
    [[nodiscard]] Counts counts() const {
        std::lock_guard lock(m_mutex);
        return m_counts;
    }
    /// Requests whose key starts with `prefix`.
    [[nodiscard]] std::size_t count_with_prefix(std::string_view prefix) const {
        std::lock_guard lock(m_mutex);
        std::size_t total = 0;
        for (auto it = m_counts.lower_bound(prefix);
             it != m_counts.end() && it->first.starts_with(prefix); ++it) {
            total += it->second;
        }
        return total;
    }
    void clear() {
        std::lock_guard lock(m_mutex);
        m_records.clear();
        m_counts.clear();
    }

private:
    const std::size_t m_capacity;
    mutable std::mutex m_mutex;
    std::deque<Record> m_records;
    Counts m_counts;
};

} // namespace crmsync::fakes
