#pragma once

// Fault injection as every HTTP fake does it: what a fault does to a request (FaultKind), the
// common fault shape matched by HTTP method and path (Fault), the JSON form the control
// endpoints read, and FaultQueue, which holds injected faults until requests use them up.

#include <nlohmann/json_fwd.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

enum class FaultKind {
    status,    ///< Answer `status` with the fake's JSON error body (and Retry-After if set).
    reset,     ///< Close the connection with a TCP reset, sending no response bytes.
    truncate,  ///< The normal answer with its body cut to half (Content-Length matches the cut).
    malformed, ///< 200 with a body that is not JSON.
    slow,      ///< Sleep delay_ms, then answer normally.
};

/// "status", "reset", "truncate", "malformed" or "slow".
std::string_view fault_kind_name(FaultKind kind);

/// What a fault does and how often, whatever requests it matches.
struct FaultAction {
    FaultKind kind = FaultKind::status;
    int status = 503;
    std::optional<std::string> retry_after; ///< Retry-After value, e.g. "2", "0", an HTTP date.
    int delay_ms = 0;
    int count = 1;
};

/// Reads a fault object: calls `read_match` for the keys that say which requests it hits, then
/// reads "kind", "status", "retry_after" (a string or a number), "delay_ms" and "count"; every
/// key is optional. Throws std::invalid_argument for a non-object, an unknown kind or wrong
/// types (also those `read_match` meets).
FaultAction read_fault_json(const nlohmann::json& json,
                            const std::function<void(const nlohmann::json&)>& read_match);

/// Copies the action into a fault shape with the same member names.
template <typename F> void assign_fault_action(F& fault, FaultAction action) {
    fault.kind = action.kind;
    fault.status = action.status;
    fault.retry_after = std::move(action.retry_after);
    fault.delay_ms = action.delay_ms;
    fault.count = action.count;
}

/// A fault applies to the next `count` requests (not /_fake/...) matching method and path
/// prefix. Faults act before authentication and are consumed in the order they were injected.
struct Fault {
    std::string method;      ///< "GET", "POST", or "" for any.
    std::string path_prefix; ///< Compared with the path without the query; "" matches all.
    FaultKind kind = FaultKind::status;
    int status = 503;
    std::optional<std::string> retry_after; ///< Retry-After value, e.g. "2", "0", an HTTP date.
    int delay_ms = 0;
    int count = 1;

    [[nodiscard]] bool matches(std::string_view request_method, std::string_view path) const {
        return (method.empty() || method == request_method) && path.starts_with(path_prefix);
    }
};

/// Reads {"method","path_prefix","kind","status","retry_after","delay_ms","count"}; every key
/// is optional. Throws std::invalid_argument on an unknown kind or wrong types.
Fault fault_from_json(const nlohmann::json& json);

/// Injected faults of one shape, oldest first. Every method may be called from any thread.
template <typename F> class FaultQueue {
public:
    void push(F fault) {
        std::lock_guard lock(m_mutex);
        m_faults.push_back(std::move(fault));
    }
    void push_all(const std::vector<F>& faults) {
        std::lock_guard lock(m_mutex);
        m_faults.insert(m_faults.end(), faults.begin(), faults.end());
    }
    void clear() {
        std::lock_guard lock(m_mutex);
        m_faults.clear();
    }
    /// Sum of the remaining counts.
    [[nodiscard]] std::size_t pending() const {
        std::lock_guard lock(m_mutex);
        std::size_t total = 0;
        for (const auto& f : m_faults) {
            total += static_cast<std::size_t>(std::max(f.count, 0));
        }
        return total;
    }
    /// Uses up one request of the oldest fault that `matches` accepts and returns a copy of it;
    /// a fault whose count reaches 0 is dropped. nullopt when none matches.
    template <typename Match> std::optional<F> take(Match matches) {
        std::lock_guard lock(m_mutex);
        for (auto it = m_faults.begin(); it != m_faults.end(); ++it) {
            if (!matches(*it)) {
                continue;
            }
            auto fault = *it;
            if (--it->count <= 0) {
                m_faults.erase(it);
            }
            return fault;
        }
        return std::nullopt;
    }
    /// For the common Fault shape: the oldest fault for this method and path.
    std::optional<F> take(std::string_view method, std::string_view path) {
        return take([&](const F& f) { return f.matches(method, path); });
    }

private:
    mutable std::mutex m_mutex;
    std::deque<F> m_faults;
};

} // namespace crmsync::fakes
