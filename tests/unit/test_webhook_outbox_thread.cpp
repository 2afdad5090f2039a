// The webhook sender's outbox thread: the outcomes handed over in one call are written in one
// transaction, so a write that fails leaves none of them recorded and keeps the groups
// committed before it; and its failure reaches every later call.

#include "drivers/webhook/outbox_thread.hpp"
#include "tests/support/outbox_delivery.hpp"
#include "tests/support/temp_dir.hpp"

#include "lib/state/outbox.hpp"
#include "lib/state/state_store.hpp"

#include <SQLiteCpp/Database.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace crmsync;
using crmsync::drivers::webhook::Outcome;
using crmsync::testing::TempState;
using crmsync::testing::test_delivery;
namespace webhook = crmsync::drivers::webhook;

namespace {

// Enqueues `count` deliveries; returns their seqs in order.
std::vector<std::int64_t> enqueue(const std::string& path, int count) {
    state::StateStore store(path);
    state::Outbox outbox(store);
    for (int i = 0; i < count; ++i) {
        REQUIRE(outbox.enqueue(
            test_delivery("msg_" + std::to_string(i), "contact_" + std::to_string(i))));
    }
    std::vector<std::int64_t> seqs;
    for (const auto& d : outbox.pending("job", 0, static_cast<std::size_t>(count))) {
        seqs.push_back(d.seq);
    }
    REQUIRE(seqs.size() == static_cast<std::size_t>(count));
    return seqs;
}

// Every update of the delivery `seq` fails, as a full disk would fail it.
void refuse_updates_of(const std::string& path, std::int64_t seq) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("CREATE TRIGGER refuse_one BEFORE UPDATE ON outbox WHEN OLD.seq = " +
            std::to_string(seq) + " BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END");
}

struct Row {
    std::string status;
    int attempts = 0;
    bool has_error = false;
};

std::map<std::int64_t, Row> rows(const std::string& path) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement st(db, "SELECT seq, status, attempts, last_error IS NOT NULL FROM outbox");
    std::map<std::int64_t, Row> out;
    while (st.executeStep()) {
        out[st.getColumn(0).getInt64()] = {st.getColumn(1).getString(), st.getColumn(2).getInt(),
                                           st.getColumn(3).getInt() != 0};
    }
    return out;
}

Outcome delivered(std::int64_t seq) { return {Outcome::Kind::delivered, seq, 204, {}, 0}; }

} // namespace

TEST_CASE("webhook::OutboxThread rolls back a group whose write fails as a whole and keeps the "
          "groups committed before it",
          "[unit][sqlite]") {
    TempState temp;
    const auto seq = enqueue(temp.path(), 10);
    // The failing delivery is the last of the second group: a group committed outcome by
    // outcome would keep the four before it.
    refuse_updates_of(temp.path(), seq[7]);
    const std::string job = "job";
    state::StateStore store(temp.path());
    {
        webhook::OutboxThread thread(store, job, Clock::real());
        std::vector<Outcome> first{delivered(seq[0]), delivered(seq[1]), delivered(seq[2])};
        thread.hand_over(first);
        CHECK(first.empty());
        thread.commit();

        std::vector<Outcome> second{
            delivered(seq[3]),
            {Outcome::Kind::retry, seq[4], 503, "HTTP 503: down", 4'102'444'800'000},
            {Outcome::Kind::dead, seq[5], 410, "HTTP 410: gone", 0},
            delivered(seq[6]),
            delivered(seq[7])};
        thread.hand_over(second);
        CHECK_THROWS_WITH(thread.commit(), Catch::Contains("simulated write failure"));

        // The thread has stopped: every later call says why.
        std::vector<Outcome> third{delivered(seq[8])};
        CHECK_THROWS_WITH(thread.hand_over(third), Catch::Contains("simulated write failure"));
        CHECK_THROWS_WITH(thread.next_due(), Catch::Contains("simulated write failure"));
        CHECK_THROWS_WITH(thread.read_page(0, 10), Catch::Contains("simulated write failure"));
    }
    const auto after = rows(temp.path());
    REQUIRE(after.size() == 10);
    for (std::size_t i = 0; i < 3; ++i) {
        INFO("first group, delivery " << i);
        CHECK(after.at(seq[i]).status == "delivered");
        CHECK(after.at(seq[i]).attempts == 1);
    }
    for (std::size_t i = 3; i < 10; ++i) {
        INFO("second group or later, delivery " << i);
        CHECK(after.at(seq[i]).status == "pending");
        CHECK(after.at(seq[i]).attempts == 0);
        CHECK_FALSE(after.at(seq[i]).has_error);
    }
}

TEST_CASE("webhook::OutboxThread writes what one call hands over in one group, however many",
          "[unit][sqlite]") {
    TempState temp;
    // More than a full group (k_commit_every), with the failure at the end.
    const int count = static_cast<int>(webhook::k_commit_every) * 2 + 7;
    const auto seq = enqueue(temp.path(), count);
    refuse_updates_of(temp.path(), seq.back());
    const std::string job = "job";
    state::StateStore store(temp.path());
    {
        webhook::OutboxThread thread(store, job, Clock::real());
        std::vector<Outcome> all;
        for (const auto s : seq) {
            all.push_back(delivered(s));
        }
        thread.hand_over(all);
        CHECK_THROWS_WITH(thread.commit(), Catch::Contains("simulated write failure"));
    }
    const auto counts = state::Outbox(store).counts("job");
    CHECK(counts.delivered == 0);
    CHECK(counts.pending == count);
}

TEST_CASE("webhook::OutboxThread commits a group on its own once it is due, and reads what is "
          "committed",
          "[unit][sqlite]") {
    TempState temp;
    const auto seq = enqueue(temp.path(), 5);
    const std::string job = "job";
    state::StateStore store(temp.path());
    webhook::OutboxThread thread(store, job, Clock::real());
    std::vector<Outcome> two{delivered(seq[0]), delivered(seq[1])};
    thread.hand_over(two);
    // A page read sees only what is committed: the group waits for its time (or commit()).
    // Once it is due the thread writes it without being asked.
    std::vector<state::Delivery> page;
    for (int tries = 0; tries < 3000; ++tries) {
        page = thread.wait(thread.read_page(0, 10));
        if (page.size() == 3) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(page.size() == 3);
    CHECK(page.front().seq == seq[2]);
    CHECK(thread.next_due().value() == 0);
}
