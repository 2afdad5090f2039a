#pragma once

#include "lib/core/clock.hpp"
#include "lib/state/outbox.hpp"
#include "lib/state/state_store.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace crmsync::drivers::webhook {

// What became of one attempt, to be written to the outbox.
struct Outcome {
    enum class Kind { delivered, retry, dead };
    Kind kind = Kind::delivered;
    std::int64_t seq = 0;
    std::optional<int> status;
    std::string error;                // retry, dead
    std::int64_t next_attempt_ms = 0; // retry
};

// Outcomes are written in groups, each in one short transaction: per this many, or once the
// oldest waited this long. The state file's write lock is held only while a group is written,
// so other jobs sharing the file (refresh-tokens, another webhook) get their turn between
// groups, and a delivery paced by --wr holds no lock while it waits.
inline constexpr std::size_t k_commit_every = 400;
inline constexpr std::chrono::milliseconds k_commit_interval{200};
// hand_over() waits while this many outcomes handed over are not committed yet. A commit
// sometimes checkpoints the WAL into the file (two fsyncs; about 70 ms on the machine of the
// benches, where 64 here stalled the delivery for all of it); this is a tenth of a second of
// deliveries at 20,000/s.
inline constexpr std::size_t k_uncommitted_limit = 2000;

// The outbox's reads and writes during delivery, on a thread of their own, so that the delivery
// thread spends its time on the connections (the writes were a quarter of its time). Every use
// of the state file while it lives goes through it, so the connection is used by one thread at
// a time: tasks (page reads, commit(), next_due()) in the order submitted, outcomes in groups
// (see k_commit_every) between them. A group is written in one transaction: when a write fails,
// the whole group is rolled back, the groups committed before it stay. A failure of the state
// file stops the thread and is rethrown to the delivery thread by the next call. Destroyed
// without commit(), it drops what was not committed (those deliveries stay pending and are
// sent again).
class OutboxThread {
public:
    OutboxThread(state::StateStore& store, const std::string& job, const Clock& clock);
    ~OutboxThread();

    OutboxThread(const OutboxThread&) = delete;
    OutboxThread& operator=(const OutboxThread&) = delete;

    // Hands `outcomes` over (and empties it); those handed over in one call are always written
    // in one group. Waits until they fit with those not committed yet within
    // k_uncommitted_limit (a larger batch waits until all are committed).
    void hand_over(std::vector<Outcome>& outcomes);

    // The pending deliveries after `after_seq`, at most `limit` (Outbox::pending), read on the
    // outbox thread; the future holds them, or the failure. The read sees what is committed, so
    // deliveries whose outcomes wait in memory still show as pending: a pass reads each seq
    // once, and the next pass starts only after commit().
    std::future<std::vector<state::Delivery>> read_page(std::int64_t after_seq, std::size_t limit);

    // Commits everything handed over so far; returns when it is committed.
    void commit();

    // Outbox::next_due, once everything handed over is committed.
    std::optional<std::int64_t> next_due();

    // The result of a future from this thread; its failure (or the thread's) is thrown.
    template <class T> T wait(std::future<T> future) {
        try {
            return future.get();
        } catch (const std::future_error&) {
            // The thread failed before it came to the task: its own failure says why.
            std::lock_guard lock(m_mutex);
            throw_if_failed();
            throw;
        }
    }

private:
    using SteadyClock = std::chrono::steady_clock;

    template <class F> auto submit(F task) -> std::future<decltype(task())> {
        using Result = decltype(task());
        auto promise = std::make_shared<std::promise<Result>>();
        auto future = promise->get_future();
        {
            std::lock_guard lock(m_mutex);
            throw_if_failed();
            m_tasks.emplace_back([this, task = std::move(task), promise] {
                try {
                    promise->set_value(task());
                } catch (...) {
                    // The thread stops before the caller hears of it, so that every call
                    // after that one fails too.
                    fail(std::current_exception());
                    promise->set_exception(std::current_exception());
                    throw;
                }
            });
        }
        m_wake.notify_one();
        return future;
    }

    // Under m_mutex.
    void throw_if_failed() const {
        if (m_failed) {
            std::rethrow_exception(m_failure);
        }
    }

    // Stops the thread for good with `failure` (the first one is kept); tasks not run yet
    // are dropped, and their futures say so (see wait()).
    void fail(std::exception_ptr failure);
    // Writes every outcome waiting in one transaction and commits it.
    void write_group();
    void loop();

    state::StateStore& m_store;
    state::Outbox m_outbox;
    const std::string& m_job;
    // Shared, under m_mutex.
    std::mutex m_mutex;
    std::condition_variable m_wake;      // a task came, a group is full, or stop
    std::condition_variable m_committed; // outcomes were committed, or the thread failed
    std::deque<std::function<void()>> m_tasks;
    std::vector<Outcome> m_waiting; // handed over, not yet being written
    SteadyClock::time_point m_oldest_waiting;
    std::size_t m_uncommitted = 0; // handed over, not yet committed
    bool m_stopping = false;
    bool m_failed = false;
    std::exception_ptr m_failure;
    std::thread m_thread; // last: started once the members above exist
};

} // namespace crmsync::drivers::webhook
