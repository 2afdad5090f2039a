#include "lib/state/leads_ledger.hpp"

#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <SQLiteCpp/Database.h>

using namespace crmsync;

namespace {

state::LedgerLead lead(const std::string& id, const std::string& job = "leads:callback24:a") {
    state::LedgerLead l;
    l.job = job;
    l.source = "callback24";
    l.lead_id = id;
    l.payload = R"({"source":"callback24","id":")" + id + R"("})";
    l.window = "w";
    return l;
}

} // namespace

TEST_CASE("LeadsLedger", "[unit]") {
    crmsync::testing::TempState temp;

    SECTION("adds its table to a state file written before it existed") {
        {
            SQLite::Database old(temp.path(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            old.exec("CREATE TABLE checkpoints (job TEXT PRIMARY KEY, checkpoint TEXT NOT NULL, "
                     "updated_at TEXT NOT NULL)");
            old.exec("INSERT INTO checkpoints VALUES ('j', '{}', 'now')");
        }
        state::StateStore store(temp.path());
        state::LeadsLedger ledger(store);
        CHECK(ledger.add(lead("1")));
        CHECK(store.checkpoint("j") == "{}");
    }
    SECTION("queues a source lead once, whatever job sees it again") {
        state::StateStore store(temp.path());
        state::LeadsLedger ledger(store);
        CHECK(ledger.add(lead("1")));
        CHECK_FALSE(ledger.add(lead("1")));
        CHECK_FALSE(ledger.add(lead("1", "leads:callback24:a,b")));
        CHECK(ledger.unfinished("leads:callback24:a").size() == 1);
        CHECK(ledger.unfinished("leads:callback24:a,b").empty());
    }
    SECTION("keeps the step, the ids and the answer of each lead") {
        state::StateStore store(temp.path());
        state::LeadsLedger ledger(store);
        ledger.add(lead("1"));
        ledger.add(lead("2"));
        ledger.add(lead("3"));
        ledger.set_person(lead("1"), 42, state::LeadStep::person_created);
        ledger.set_done(lead("2"), "uuid-2");
        ledger.park(lead("3"), "HTTP 400: Person not found");
        ledger.note_failure(lead("1"), "HTTP 503");

        const auto one = ledger.find("callback24", "1");
        REQUIRE(one);
        CHECK(one->step == state::LeadStep::person_created);
        CHECK(one->person_id == 42);
        CHECK(one->attempts == 1);
        CHECK(one->last_error == "HTTP 503");
        CHECK(ledger.find("callback24", "2")->crm_lead_id == "uuid-2");
        const auto parked = ledger.parked("leads:callback24:a");
        REQUIRE(parked.size() == 1);
        CHECK(parked[0].last_error == "HTTP 400: Person not found");
        const auto counts = ledger.counts("leads:callback24:a");
        CHECK(counts.at(state::LeadStep::person_created) == 1);
        CHECK(counts.at(state::LeadStep::done) == 1);
        CHECK(counts.at(state::LeadStep::parked) == 1);
        CHECK(counts.at(state::LeadStep::queued) == 0);
        const auto unfinished = ledger.unfinished("leads:callback24:a");
        REQUIRE(unfinished.size() == 1);
        CHECK(unfinished[0].lead_id == "1");
        CHECK(ledger.jobs() == std::vector<std::string>{"leads:callback24:a"});
    }
    SECTION("a write inside a rolled-back transaction leaves nothing") {
        state::StateStore store(temp.path());
        state::LeadsLedger ledger(store);
        {
            state::Transaction transaction(store);
            ledger.add(lead("9"));
            store.set_checkpoint("leads:callback24:a", R"({"since":"x"})");
        }
        CHECK(!ledger.find("callback24", "9"));
        CHECK(!store.checkpoint("leads:callback24:a"));
    }
}
