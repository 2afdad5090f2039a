#pragma once

#include "lib/core/clock.hpp"
#include "lib/state/state_store.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::state {

// One message to deliver. `id` is stable across every attempt and run (Standard Webhooks'
// webhook-id); deliveries of one `group_key` (a contact) go out in `order_key` order.
struct Delivery {
    std::int64_t seq = 0;
    std::string id;
    std::string job;
    std::string group_key;
    std::string order_key;
    std::string event; // "new" | "updated"
    std::string body;
    std::string status = "pending"; // pending | delivered | dead
    int attempts = 0;
    std::int64_t next_attempt_ms = 0; // unix ms; due when <= now
    std::int64_t created_ms = 0;      // unix ms of the enqueue: the delivery's age counts from it
    std::optional<int> last_status;
    std::string last_error;
};

struct OutboxCounts {
    long pending = 0;
    long dead = 0;
    long delivered = 0;
    std::optional<std::string> oldest_pending; // created_at of the oldest pending delivery
};

// The durable queue of a job's deliveries in the state file. A delivery enters before the
// checkpoint moves past its event and leaves the pending state only on a 2xx (delivered) or
// when the sender gives it up (dead: too old, or a non-retryable answer). Writes join the
// caller's transaction if one is open. `clock` stamps created_at and delivered_at (its wall
// time; tests shift it).
class Outbox {
public:
    explicit Outbox(StateStore& store, const Clock& clock = Clock::real())
        : m_store(store), m_clock(clock) {}

    // Adds the delivery unless one with the same id exists; returns whether it was added.
    bool enqueue(const Delivery& delivery);

    // Pending deliveries of `job` with seq > after_seq, in seq order, at most `limit`
    // (due or not: the caller keeps per-group order and skips what is not due).
    std::vector<Delivery> pending(const std::string& job, std::int64_t after_seq,
                                  std::size_t limit);
    // The earliest next_attempt_ms of pending deliveries, if any.
    std::optional<std::int64_t> next_due(const std::string& job);

    // The outcome of an attempt at the delivery `seq` (Delivery::seq).
    void mark_delivered(std::int64_t seq, int status);
    void mark_retry(std::int64_t seq, std::optional<int> status, const std::string& error,
                    std::int64_t next_attempt_ms);
    void mark_dead(std::int64_t seq, std::optional<int> status, const std::string& error);

    // Counts by status, and the oldest pending delivery. Reads the index, and the rows of
    // pending deliveries only.
    OutboxCounts counts(const std::string& job);
    // Removes delivered deliveries of `job` delivered more than `kept` ago (the clock's wall
    // time), at most `max_rows` of them, oldest first; returns how many. Pending and dead ones
    // are never removed. A delivery's id and content hash stay in the ledger, so the same
    // delivery is never queued again: without this the outbox grows by every delivery ever
    // made and each run's counts read all of them.
    long prune_delivered(const std::string& job, std::chrono::milliseconds kept,
                         std::size_t max_rows);
    // Dead deliveries of `job` become pending, due now, with a fresh attempt count and age
    // (created again now); returns how many.
    long replay_dead(const std::string& job);

private:
    StateStore& m_store;
    const Clock& m_clock;
};

// What the ledger holds for one record: the content last enqueued and its revision, which
// grows by one with every change of content (A, B, A are revisions 1, 2, 3), so a delivery id
// made from it is new for every change and the same for a rerun of unchanged content. State
// files from before revisions start their records at 0.
struct LedgerEntry {
    std::string content_md5;
    std::int64_t revision = 0;
};

// What was sent for each record: the content hash decides new / updated / unchanged.
class Ledger {
public:
    explicit Ledger(StateStore& store) : m_store(store) {}
    std::optional<LedgerEntry> entry(const std::string& job, const std::string& key);
    std::optional<std::string> content_md5(const std::string& job, const std::string& key);
    // Stores `content_md5` as revision `revision` of the record, enqueued as `delivery_id`.
    void record(const std::string& job, const std::string& key, const std::string& content_md5,
                std::int64_t revision, const std::string& delivery_id);

private:
    StateStore& m_store;
};

} // namespace crmsync::state
