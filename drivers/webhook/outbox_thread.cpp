#include "drivers/webhook/outbox_thread.hpp"

#include <iterator>
#include <utility>

namespace crmsync::drivers::webhook {

OutboxThread::OutboxThread(state::StateStore& store, const std::string& job, const Clock& clock)
    : m_store(store), m_outbox(store, clock), m_job(job), m_thread([this] { loop(); }) {}

OutboxThread::~OutboxThread() {
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    m_thread.join();
}

void OutboxThread::hand_over(std::vector<Outcome>& outcomes) {
    if (outcomes.empty()) {
        return;
    }
    const std::size_t count = outcomes.size();
    std::unique_lock lock(m_mutex);
    m_committed.wait(lock, [&] {
        return m_failed || m_uncommitted == 0 || m_uncommitted + count <= k_uncommitted_limit;
    });
    throw_if_failed();
    const bool group_starts = m_waiting.empty();
    if (group_starts) {
        m_oldest_waiting = SteadyClock::now();
    }
    std::move(outcomes.begin(), outcomes.end(), std::back_inserter(m_waiting));
    outcomes.clear();
    m_uncommitted += count;
    const bool group_full = m_waiting.size() >= k_commit_every;
    lock.unlock();
    // The thread learns when the new group is due, or that it is full.
    if (group_starts || group_full) {
        m_wake.notify_one();
    }
}

std::future<std::vector<state::Delivery>> OutboxThread::read_page(std::int64_t after_seq,
                                                                  std::size_t limit) {
    return submit([this, after_seq, limit] { return m_outbox.pending(m_job, after_seq, limit); });
}

void OutboxThread::commit() {
    wait(submit([this] {
        write_group();
        return true;
    }));
}

std::optional<std::int64_t> OutboxThread::next_due() {
    return wait(submit([this] {
        write_group();
        return m_outbox.next_due(m_job);
    }));
}

void OutboxThread::write_group() {
    std::vector<Outcome> group;
    {
        std::lock_guard lock(m_mutex);
        group.swap(m_waiting);
    }
    if (group.empty()) {
        return;
    }
    state::Transaction transaction(m_store);
    for (const auto& o : group) {
        switch (o.kind) {
        case Outcome::Kind::delivered:
            m_outbox.mark_delivered(o.seq, o.status.value());
            break;
        case Outcome::Kind::retry:
            m_outbox.mark_retry(o.seq, o.status, o.error, o.next_attempt_ms);
            break;
        case Outcome::Kind::dead:
            m_outbox.mark_dead(o.seq, o.status, o.error);
            break;
        }
    }
    transaction.commit();
    {
        std::lock_guard lock(m_mutex);
        m_uncommitted -= group.size();
    }
    m_committed.notify_all();
}

void OutboxThread::loop() {
    try {
        std::deque<std::function<void()>> tasks;
        while (true) {
            bool group_due = false;
            {
                std::unique_lock lock(m_mutex);
                const auto due = m_waiting.empty() ? SteadyClock::time_point::max()
                                                   : m_oldest_waiting + k_commit_interval;
                m_wake.wait_until(lock, due, [&] {
                    return m_stopping || !m_tasks.empty() || m_waiting.size() >= k_commit_every;
                });
                if (m_tasks.empty() && m_stopping) {
                    break;
                }
                tasks.swap(m_tasks);
                group_due = m_waiting.size() >= k_commit_every ||
                            (!m_waiting.empty() &&
                             SteadyClock::now() - m_oldest_waiting >= k_commit_interval);
            }
            // Page reads first: the delivery thread may be waiting for one.
            for (auto& task : tasks) {
                task();
            }
            tasks.clear();
            if (group_due) {
                write_group();
            }
        }
    } catch (...) {
        fail(std::current_exception());
    }
}

void OutboxThread::fail(std::exception_ptr failure) {
    {
        std::lock_guard lock(m_mutex);
        if (!m_failed) {
            m_failed = true;
            m_failure = std::move(failure);
        }
        m_tasks.clear();
    }
    m_committed.notify_all();
}

} // namespace crmsync::drivers::webhook
