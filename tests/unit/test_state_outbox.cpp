// The ledger's revisions, and state files made before them (the old schema is upgraded in
// place, its records and deliveries kept).

#include "lib/state/outbox.hpp"
#include "tests/support/outbox_delivery.hpp"
#include "tests/support/temp_dir.hpp"

#include "lib/state/state_store.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Database.h>
#include <catch2/catch.hpp>

using namespace crmsync;
using crmsync::testing::TempState;
using crmsync::testing::test_delivery;

namespace {

// The ledger and outbox tables as crmsync wrote them before revisions.
void make_old_state_file(const std::string& path) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(R"sql(
CREATE TABLE checkpoints (job TEXT PRIMARY KEY, checkpoint TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE ledger (
    job TEXT NOT NULL, record_key TEXT NOT NULL, content_md5 TEXT NOT NULL,
    delivery_id TEXT NOT NULL, first_seen TEXT NOT NULL, PRIMARY KEY (job, record_key)
) WITHOUT ROWID;
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, job TEXT NOT NULL,
    group_key TEXT NOT NULL, order_key TEXT NOT NULL, event TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT,
    created_at TEXT NOT NULL, delivered_at TEXT
);
CREATE INDEX outbox_due ON outbox (job, status, next_attempt_ms);
INSERT INTO ledger VALUES ('job', 'k1', 'md5-a', 'msg_old', '2026-01-01T00:00:00.000Z');
INSERT INTO outbox (id, job, group_key, order_key, event, body, attempts, created_at)
    VALUES ('msg_old', 'job', 'g', '', 'new', '{}', 3, '2026-01-01T00:00:00.000Z');
INSERT INTO checkpoints VALUES ('job', 'cp-1', '2026-01-01T00:00:00.000Z');
)sql");
}

} // namespace

TEST_CASE("state::Ledger revisions", "[unit][sqlite]") {
    TempState temp;
    state::StateStore store(temp.path());
    state::Ledger ledger(store);

    SECTION("an unknown record has no entry") {
        CHECK_FALSE(ledger.entry("job", "k").has_value());
        CHECK_FALSE(ledger.content_md5("job", "k").has_value());
    }
    SECTION("record keeps content and revision, per job") {
        ledger.record("job", "k", "md5-a", 1, "msg_1");
        ledger.record("job", "k", "md5-b", 2, "msg_2");
        const auto e = ledger.entry("job", "k");
        REQUIRE(e.has_value());
        CHECK(e->content_md5 == "md5-b");
        CHECK(e->revision == 2);
        CHECK(ledger.content_md5("job", "k") == std::optional<std::string>("md5-b"));
        CHECK_FALSE(ledger.entry("other", "k").has_value());
    }
}

TEST_CASE("state::StateStore upgrades a state file made before ledger revisions",
          "[unit][sqlite]") {
    TempState temp;
    make_old_state_file(temp.path());
    {
        state::StateStore store(temp.path());
        state::Ledger ledger(store);
        const auto e = ledger.entry("job", "k1");
        REQUIRE(e.has_value());
        CHECK(e->content_md5 == "md5-a");
        CHECK(e->revision == 0);
        CHECK(store.checkpoint("job") == std::optional<std::string>("cp-1"));
        const auto pending = state::Outbox(store).pending("job", 0, 10);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0].id == "msg_old");
        CHECK(pending[0].attempts == 3);
        CHECK(pending[0].created_ms ==
              util::parse_iso8601("2026-01-01T00:00:00Z")->time_since_epoch().count());
        ledger.record("job", "k1", "md5-b", 1, "msg_new");
    }
    // Opened again: the upgrade is not repeated and what was written stays.
    state::StateStore again(temp.path());
    const auto e = state::Ledger(again).entry("job", "k1");
    REQUIRE(e.has_value());
    CHECK(e->revision == 1);
    CHECK(e->content_md5 == "md5-b");
}

TEST_CASE("state::StateStore replaces the outbox index ordered by due time", "[unit][sqlite]") {
    TempState temp;
    make_old_state_file(temp.path());
    {
        state::StateStore store(temp.path());
        state::Outbox outbox(store);
        for (int i = 0; i < 5; ++i) {
            REQUIRE(
                outbox.enqueue(test_delivery("msg_" + std::to_string(i), "g" + std::to_string(i))));
        }
        // Pages come in seq order from any point, the old delivery first.
        const auto first = outbox.pending("job", 0, 2);
        REQUIRE(first.size() == 2);
        CHECK(first[0].id == "msg_old");
        CHECK(first[1].id == "msg_0");
        const auto rest = outbox.pending("job", first[1].seq, 10);
        REQUIRE(rest.size() == 4);
        CHECK(rest[0].id == "msg_1");
        CHECK(rest[3].id == "msg_4");
    }
    SQLite::Database db(temp.path(), SQLite::OPEN_READONLY);
    const auto has_index = [&](const char* name) {
        return db.execAndGet(std::string("SELECT COUNT(*) FROM sqlite_master WHERE type = "
                                         "'index' AND name = '") +
                             name + "'")
                   .getInt() == 1;
    };
    CHECK_FALSE(has_index("outbox_due"));
    CHECK(has_index("outbox_pending"));
    // A page is a range of that index, not a sort of every pending delivery.
    SQLite::Statement plan(db, "EXPLAIN QUERY PLAN SELECT seq FROM outbox WHERE job = 'job' AND "
                               "status = 'pending' AND seq > 5 ORDER BY seq LIMIT 10");
    std::string steps;
    while (plan.executeStep()) {
        steps += plan.getColumn(3).getString() + "\n";
    }
    CHECK(steps.find("outbox_pending") != std::string::npos);
    CHECK(steps.find("TEMP B-TREE") == std::string::npos);
}

TEST_CASE("state::Outbox stamps and ages deliveries by its clock", "[unit][sqlite]") {
    TempState temp;
    state::StateStore store(temp.path());
    Clock clock;
    const auto t0 = *util::parse_iso8601("2030-05-01T12:00:00Z");
    clock.wall_now = [&] { return t0; };
    state::Outbox outbox(store, clock);
    const auto d = test_delivery("msg_1", "g");
    REQUIRE(outbox.enqueue(d));
    CHECK_FALSE(outbox.enqueue(d));
    auto pending = outbox.pending("job", 0, 10);
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].created_ms == t0.time_since_epoch().count());

    SECTION("a replayed dead delivery starts a new life at the replay") {
        outbox.mark_dead(pending[0].seq, 500, "HTTP 500");
        const auto later = t0 + std::chrono::hours(100);
        clock.wall_now = [&] { return later; };
        CHECK(outbox.replay_dead("job") == 1);
        pending = outbox.pending("job", 0, 10);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0].attempts == 0);
        CHECK(pending[0].created_ms == later.time_since_epoch().count());
    }
}

TEST_CASE("state::Outbox removes what was delivered long ago, never pending or dead ones",
          "[unit][sqlite]") {
    TempState temp;
    state::StateStore store(temp.path());
    Clock clock;
    auto now = *util::parse_iso8601("2030-05-01T12:00:00Z");
    clock.wall_now = [&] { return now; };
    state::Outbox outbox(store, clock);
    const auto add = [&](const std::string& id, const std::string& job) {
        REQUIRE(outbox.enqueue(test_delivery(id, id, job)));
    };
    for (const char* id : {"old_1", "old_2", "old_3", "dead", "pending"}) {
        add(id, "job");
    }
    add("other_job", "other");
    const auto deliver = [&](const std::string& job, const std::string& id) {
        for (const auto& d : outbox.pending(job, 0, 100)) {
            if (d.id == id) {
                outbox.mark_delivered(d.seq, 200);
            }
        }
    };
    deliver("job", "old_1");
    deliver("job", "old_2");
    deliver("job", "old_3");
    deliver("other", "other_job");
    for (const auto& d : outbox.pending("job", 0, 100)) {
        if (d.id == "dead") {
            outbox.mark_dead(d.seq, 400, "HTTP 400");
        }
    }
    now += std::chrono::hours(24 * 6);
    add("recent", "job");
    deliver("job", "recent");
    const auto week = std::chrono::hours(24 * 7);

    // Six days later nothing is old enough.
    CHECK(outbox.prune_delivered("job", week, 100) == 0);
    auto counts = outbox.counts("job");
    CHECK(counts.delivered == 4);
    CHECK(counts.dead == 1);
    CHECK(counts.pending == 1);
    CHECK(counts.oldest_pending == std::optional<std::string>("2030-05-01T12:00:00.000Z"));

    // Eight days after the first deliveries: they go, two per call here, oldest first; the
    // recent one, the dead and the pending one, and the other job's, stay.
    now += std::chrono::hours(24 * 2);
    CHECK(outbox.prune_delivered("job", week, 2) == 2);
    CHECK(outbox.prune_delivered("job", week, 2) == 1);
    CHECK(outbox.prune_delivered("job", week, 2) == 0);
    counts = outbox.counts("job");
    CHECK(counts.delivered == 1);
    CHECK(counts.dead == 1);
    CHECK(counts.pending == 1);
    CHECK(outbox.counts("other").delivered == 1);
    const auto left = outbox.pending("job", 0, 100);
    REQUIRE(left.size() == 1);
    CHECK(left[0].id == "pending");
    SQLite::Database db(temp.path(), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT COUNT(*) FROM outbox WHERE id LIKE 'old_%'").getInt() == 0);
    CHECK(db.execAndGet("SELECT COUNT(*) FROM outbox WHERE id = 'recent'").getInt() == 1);

    SECTION("no pending delivery: no oldest one") {
        for (const auto& d : outbox.pending("job", 0, 100)) {
            outbox.mark_delivered(d.seq, 200);
        }
        CHECK_FALSE(outbox.counts("job").oldest_pending.has_value());
    }
}
