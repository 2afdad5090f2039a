#include "lib/state/outbox.hpp"

#include "lib/core/clock.hpp"
#include "lib/state/open_file.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

namespace crmsync::state {
namespace {

std::string now_text(const Clock& clock) { return util::format_iso8601(clock.wall_now()); }

void bind_optional(SQLite::Statement& st, int index, std::optional<int> value) {
    if (value) {
        st.bind(index, *value);
    } else {
        st.bind(index);
    }
}

constexpr std::size_t k_error_text = 2000;

} // namespace

bool Outbox::enqueue(const Delivery& d) {
    return detail::guarded(m_store, "cannot add to the outbox", [&]() -> bool {
        detail::CachedStatement st(
            m_store, "INSERT OR IGNORE INTO outbox (id, job, group_key, order_key, event, body, "
                     "status, attempts, next_attempt_ms, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?)");
        st->bind(1, d.id);
        st->bind(2, d.job);
        st->bind(3, d.group_key);
        st->bind(4, d.order_key);
        st->bind(5, d.event);
        st->bind(6, d.body);
        st->bind(7, now_text(m_clock));
        return st->exec() == 1;
    });
}

std::vector<Delivery> Outbox::pending(const std::string& job, std::int64_t after_seq,
                                      std::size_t limit) {
    return detail::guarded(m_store, "cannot read the outbox", [&]() -> std::vector<Delivery> {
        detail::CachedStatement st(
            m_store,
            // The seqs are picked in order from the index outbox_pending alone (a range from
            // `after_seq`, no sort), then the rows fetched: a page costs its own rows, not a
            // scan of every pending delivery.
            "SELECT seq, id, group_key, order_key, event, body, attempts, "
            "next_attempt_ms, created_at FROM outbox WHERE seq IN (SELECT seq FROM outbox "
            "WHERE job = ? AND status = 'pending' AND seq > ? ORDER BY seq LIMIT ?) ORDER BY "
            "seq");
        st->bind(1, job);
        st->bind(2, static_cast<std::int64_t>(after_seq));
        st->bind(3, static_cast<std::int64_t>(limit));
        std::vector<Delivery> out;
        while (st->executeStep()) {
            Delivery d;
            d.seq = st->getColumn(0).getInt64();
            d.id = st->getColumn(1).getString();
            d.job = job;
            d.group_key = st->getColumn(2).getString();
            d.order_key = st->getColumn(3).getString();
            d.event = st->getColumn(4).getString();
            d.body = st->getColumn(5).getString();
            d.attempts = st->getColumn(6).getInt();
            d.next_attempt_ms = st->getColumn(7).getInt64();
            // An unreadable stamp counts as "now": such a delivery is never old too early.
            const auto created = util::parse_iso8601(st->getColumn(8).getString());
            d.created_ms = (created ? *created : m_clock.wall_now()).time_since_epoch().count();
            out.push_back(std::move(d));
        }
        return out;
    });
}

std::optional<std::int64_t> Outbox::next_due(const std::string& job) {
    return detail::guarded(m_store, "cannot read the outbox", [&]() -> std::optional<std::int64_t> {
        detail::CachedStatement st(m_store,
                                   "SELECT MIN(next_attempt_ms) FROM outbox WHERE job = ? AND "
                                   "status = 'pending'");
        st->bind(1, job);
        if (st->executeStep() && !st->getColumn(0).isNull()) {
            return st->getColumn(0).getInt64();
        }
        return std::nullopt;
    });
}

void Outbox::mark_delivered(std::int64_t seq, int status) {
    detail::guarded(m_store, "cannot update the outbox", [&] {
        detail::CachedStatement st(
            m_store, "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, "
                     "last_status = ?, last_error = NULL, delivered_at = ?, body = '' "
                     "WHERE seq = ?");
        st->bind(1, status);
        st->bind(2, now_text(m_clock));
        st->bind(3, seq);
        st->exec();
    });
}

void Outbox::mark_retry(std::int64_t seq, std::optional<int> status, const std::string& error,
                        std::int64_t next_attempt_ms) {
    detail::guarded(m_store, "cannot update the outbox", [&] {
        detail::CachedStatement st(m_store,
                                   "UPDATE outbox SET attempts = attempts + 1, last_status = ?, "
                                   "last_error = ?, next_attempt_ms = ? WHERE seq = ?");
        bind_optional(*st, 1, status);
        st->bind(2, error.substr(0, k_error_text));
        st->bind(3, static_cast<std::int64_t>(next_attempt_ms));
        st->bind(4, seq);
        st->exec();
    });
}

void Outbox::mark_dead(std::int64_t seq, std::optional<int> status, const std::string& error) {
    detail::guarded(m_store, "cannot update the outbox", [&] {
        detail::CachedStatement st(m_store,
                                   "UPDATE outbox SET status = 'dead', attempts = attempts + 1, "
                                   "last_status = ?, last_error = ? WHERE seq = ?");
        bind_optional(*st, 1, status);
        st->bind(2, error.substr(0, k_error_text));
        st->bind(3, seq);
        st->exec();
    });
}

OutboxCounts Outbox::counts(const std::string& job) {
    return detail::guarded(m_store, "cannot count the outbox", [&]() -> OutboxCounts {
        OutboxCounts c;
        // From the index alone (outbox_pending covers job and status).
        detail::CachedStatement st(
            m_store, "SELECT status, COUNT(*) FROM outbox WHERE job = ? GROUP BY status");
        st->bind(1, job);
        while (st->executeStep()) {
            const std::string status = st->getColumn(0).getString();
            const long n = st->getColumn(1).getInt();
            if (status == "pending") {
                c.pending = n;
            } else if (status == "dead") {
                c.dead = n;
            } else if (status == "delivered") {
                c.delivered = n;
            }
        }
        if (c.pending > 0) {
            detail::CachedStatement oldest(m_store,
                                           "SELECT MIN(created_at) FROM outbox WHERE job = ? "
                                           "AND status = 'pending'");
            oldest->bind(1, job);
            if (oldest->executeStep() && !oldest->getColumn(0).isNull()) {
                c.oldest_pending = oldest->getColumn(0).getString();
            }
        }
        return c;
    });
}

long Outbox::prune_delivered(const std::string& job, std::chrono::milliseconds kept,
                             std::size_t max_rows) {
    return detail::guarded(m_store, "cannot prune the outbox", [&]() -> long {
        const std::string cutoff = util::format_iso8601(
            std::chrono::time_point_cast<std::chrono::milliseconds>(m_clock.wall_now() - kept));
        // Seq order is about delivery order, so the old ones come first. When the first
        // delivered one by seq is not old enough, the run stops there at the cost of one row
        // (a delivery retried for days may hold the others back by as long, never longer).
        const bool any_old_enough = [&] {
            detail::CachedStatement first(m_store,
                                          "SELECT delivered_at FROM outbox WHERE job = ? AND "
                                          "status = 'delivered' ORDER BY seq LIMIT 1");
            first->bind(1, job);
            return first->executeStep() && !first->getColumn(0).isNull() &&
                   first->getColumn(0).getString() < cutoff;
        }();
        if (!any_old_enough) {
            return 0;
        }
        detail::CachedStatement st(
            m_store, "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE job = ? AND "
                     "status = 'delivered' AND delivered_at < ? ORDER BY seq LIMIT ?)");
        st->bind(1, job);
        st->bind(2, cutoff);
        st->bind(3, static_cast<std::int64_t>(max_rows));
        return st->exec();
    });
}

long Outbox::replay_dead(const std::string& job) {
    return detail::guarded(m_store, "cannot update the outbox", [&]() -> long {
        detail::CachedStatement st(m_store, "UPDATE outbox SET status = 'pending', attempts = 0, "
                                            "next_attempt_ms = 0, created_at = ? WHERE job = ? AND "
                                            "status = 'dead'");
        st->bind(1, now_text(m_clock));
        st->bind(2, job);
        return st->exec();
    });
}

std::optional<LedgerEntry> Ledger::entry(const std::string& job, const std::string& key) {
    return detail::guarded(m_store, "cannot read the ledger", [&]() -> std::optional<LedgerEntry> {
        detail::CachedStatement st(m_store,
                                   "SELECT content_md5, revision FROM ledger WHERE job = ? AND "
                                   "record_key = ?");
        st->bind(1, job);
        st->bind(2, key);
        if (st->executeStep()) {
            return LedgerEntry{st->getColumn(0).getString(), st->getColumn(1).getInt64()};
        }
        return std::nullopt;
    });
}

std::optional<std::string> Ledger::content_md5(const std::string& job, const std::string& key) {
    auto found = entry(job, key);
    return found ? std::optional<std::string>(std::move(found->content_md5)) : std::nullopt;
}

void Ledger::record(const std::string& job, const std::string& key, const std::string& md5,
                    std::int64_t revision, const std::string& delivery_id) {
    detail::guarded(m_store, "cannot write the ledger", [&] {
        detail::CachedStatement st(
            m_store,
            "INSERT INTO ledger (job, record_key, content_md5, delivery_id, first_seen, revision) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job, record_key) DO UPDATE SET "
            "content_md5 = excluded.content_md5, delivery_id = excluded.delivery_id, "
            "revision = excluded.revision");
        st->bind(1, job);
        st->bind(2, key);
        st->bind(3, md5);
        st->bind(4, delivery_id);
        st->bind(5, now_text(Clock::real()));
        st->bind(6, static_cast<std::int64_t>(revision));
        st->exec();
    });
}

namespace detail {

void upgrade_outbox_schema(SQLite::Database& db) {
    // Files made before revisions lack ledger.revision. Checked and added under a write lock,
    // so two runs opening an old file at once do not both add it.
    const auto has_revision = [&db] {
        SQLite::Statement st(db, "SELECT 1 FROM pragma_table_info('ledger') WHERE name = "
                                 "'revision'");
        return st.executeStep();
    };
    if (has_revision()) {
        return;
    }
    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    if (!has_revision()) {
        db.exec("ALTER TABLE ledger ADD COLUMN revision INTEGER NOT NULL DEFAULT 0");
    }
    transaction.commit();
}

} // namespace detail

} // namespace crmsync::state
