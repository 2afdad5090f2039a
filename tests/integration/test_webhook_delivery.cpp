// Webhook deliveries across runs, end to end: the crmsync binary as a child process, the
// Dialfire emulator and a recording webhook receiver on loopback. A record whose content goes
// A, B, A reaches the receiver three times and ends as A; a receiver down for ten minutes
// ("--now" moves crmsync's wall clock, so no test waits ten minutes) gets every delivery once.

#include "tests/integration/support.hpp"

#include "lib/util/time.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/fakes/webhook_receiver/webhook_receiver.hpp"

#include <SQLiteCpp/Database.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <set>
#include <thread>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

constexpr const char* k_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

std::string utc_text(std::chrono::system_clock::time_point t) {
    return util::format_iso8601(std::chrono::time_point_cast<std::chrono::milliseconds>(t))
        .substr(0, 19);
}

struct DeliveryFixture {
    TempDir dir;
    fakes::DialfireFake fake;
    fakes::WebhookReceiver receiver;
    std::string state_file = "state.db";

    explicit DeliveryFixture(std::size_t contacts)
        : fake(campaign(contacts)), receiver(signed_receiver()) {
        fake.start();
        receiver.start();
    }

    static fakes::FakeCampaignOptions campaign(std::size_t contacts) {
        fakes::FakeCampaignOptions o;
        o.contacts = contacts;
        o.history_end = std::chrono::system_clock::now() - std::chrono::minutes(1);
        o.history_span = std::chrono::hours(24);
        return o;
    }

    static fakes::WebhookReceiverOptions signed_receiver() {
        fakes::WebhookReceiverOptions o;
        o.secret = k_secret;
        return o;
    }

    ProcessResult run(std::vector<std::string> extra = {}) const {
        std::vector<std::string> a{
            "webhook",
            "--campaign",
            fake.options().campaign_id,
            "--api-url",
            fake.base_url(),
            "--url",
            receiver.base_url() + "/hook",
            "--state",
            dir.file(state_file),
            "--log-dir",
            dir.file("logs"),
            "--summary-json",
            dir.file("summary.json"),
            "--since",
            utc_text(std::chrono::system_clock::now() - std::chrono::hours(48)),
            "--wr",
            "0",
            "--w",
            "8",
            "--retry-base",
            "50ms",
            "--secret-env",
            "HOOK_SECRET"};
        a.insert(a.end(), extra.begin(), extra.end());
        return crmsync::testing::run_crmsync(
            a, {{"CRMSYNC_TOKEN", fake.options().token}, {"HOOK_SECRET", k_secret}}, dir);
    }

    nlohmann::json summary() const {
        return nlohmann::json::parse(crmsync::testing::read_file(dir.file("summary.json")));
    }
};

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

} // namespace

TEST_CASE("webhook sends content going A, B, A three times, with three ids, ending with A",
          "[http]") {
    DeliveryFixture f(5);
    REQUIRE(f.run().exit_code == 0);
    // A new transaction (content A) on one contact, in the window of the next run.
    const auto touched = f.fake.touch_contacts(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100)); // past the run's server "now"
    REQUIRE(f.run().exit_code == 0);
    auto original = nlohmann::json::parse(*f.fake.contact_text(touched[0]));
    original.erase("$md5");
    const auto transaction_a = original["$task_log"].back()["transactions"].back();
    const std::string fired = transaction_a["fired"].get<std::string>();

    auto changed = original;
    changed["$task_log"].back()["transactions"].back()["result"] = "content B";
    f.fake.set_contact_json(touched[0], changed);
    const auto to_b = f.run();
    INFO(explain(to_b));
    REQUIRE(to_b.exit_code == 0);

    f.fake.set_contact_json(touched[0], original);
    const auto back_to_a = f.run();
    INFO(explain(back_to_a));
    REQUIRE(back_to_a.exit_code == 0);
    CHECK(f.summary()["updated"].get<long>() == 1);

    // Every acknowledged delivery of this transaction, in order of arrival.
    std::vector<nlohmann::json> bodies;
    std::set<std::string> ids;
    for (const auto& r : f.receiver.requests()) {
        const auto body = nlohmann::json::parse(r.body);
        if (r.acknowledged() && body["contact"]["$id"] == touched[0] &&
            body["transaction"]["fired"] == fired) {
            bodies.push_back(body);
            ids.insert(r.id);
        }
    }
    REQUIRE(bodies.size() == 3);
    CHECK(ids.size() == 3);
    CHECK(bodies[0]["state"] == "new");
    CHECK(bodies[1]["transaction"]["result"] == "content B");
    CHECK(bodies[2]["state"] == "updated");
    CHECK(bodies[2]["transaction"] == transaction_a);
    for (const auto& [id, times] : f.receiver.acknowledged_ids()) {
        CHECK(times == 1);
    }

    SECTION("a rerun with no change sends nothing") {
        f.receiver.clear();
        const auto again = f.run();
        INFO(explain(again));
        CHECK(again.exit_code == 0);
        CHECK(f.receiver.request_count() == 0);
        CHECK(f.summary()["updated"].get<long>() == 0);
        CHECK(f.summary()["new"].get<long>() == 0);
    }
}

TEST_CASE("webhook delivers everything once to a receiver that was down for ten minutes",
          "[http]") {
    using std::chrono::minutes;
    DeliveryFixture f(10);
    const auto events = static_cast<long>(f.fake.event_count());
    // Runs "at" a later time: crmsync's wall clock (--now) and the receiver's (which checks
    // webhook-timestamp) move together.
    const auto run_at = [&f](minutes later) {
        f.receiver.set_clock_offset(later);
        return f.run(
            {"--now", utc_text(std::chrono::system_clock::now() + later), "--max-runtime", "2s"});
    };

    f.receiver.go_down();
    for (int minute = 0; minute <= 10; minute += 2) {
        const auto down = run_at(minutes(minute));
        INFO("minute " << minute << ": " << explain(down));
        CHECK(down.exit_code == 3);
        CHECK(f.summary()["dead"].get<long>() == 0);
        CHECK(f.summary()["pending"].get<long>() == events);
    }
    f.receiver.come_up();
    // Cron keeps running every few minutes; each delivery is due again within an hour.
    ProcessResult up;
    int minute = 11;
    for (; minute <= 10 + 65; minute += 5) {
        up = run_at(minutes(minute));
        if (f.summary()["pending"].get<long>() == 0) {
            break;
        }
    }
    INFO("last run at minute " << minute << ": " << explain(up));
    CHECK(up.exit_code == 0);
    CHECK(f.summary()["dead"].get<long>() == 0);
    CHECK(f.summary()["pending"].get<long>() == 0);
    const auto acknowledged = f.receiver.acknowledged_ids();
    CHECK(acknowledged.size() == static_cast<std::size_t>(events));
    for (const auto& [id, times] : acknowledged) {
        CHECK(times == 1);
    }
    for (const auto& r : f.receiver.requests()) {
        CHECK(r.signature == fakes::SignatureCheck::valid);
    }
}

TEST_CASE("webhook makes a delivery dead once it is older than --max-age", "[http]") {
    using std::chrono::hours;
    DeliveryFixture f(3);
    const auto events = static_cast<long>(f.fake.event_count());
    f.receiver.go_down();
    const auto first = f.run({"--max-age", "3d", "--max-runtime", "2s"});
    INFO(explain(first));
    CHECK(f.summary()["pending"].get<long>() == events);
    const auto later = hours(73);
    f.receiver.set_clock_offset(later);
    const auto old = f.run({"--max-age", "3d", "--max-runtime", "2s", "--now",
                            utc_text(std::chrono::system_clock::now() + later)});
    INFO(explain(old));
    CHECK(old.exit_code == 3);
    CHECK(f.summary()["dead"].get<long>() == events);
    CHECK(f.summary()["pending"].get<long>() == 0);
}

TEST_CASE("webhook rejects a --max-age that is no duration or not above zero", "[http]") {
    DeliveryFixture f(1);
    for (const char* bad : {"soon", "0s"}) {
        const auto r = f.run({"--max-age", bad});
        INFO(explain(r));
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("crmsync: error: --max-age") != std::string::npos);
    }
}

namespace {

// The webhook-id of every request -> the bodies it arrived with.
std::map<std::string, std::set<std::string>> bodies_by_id(const fakes::WebhookReceiver& r) {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& request : r.requests()) {
        out[request.id].insert(request.body);
    }
    return out;
}

// True once the receiver has answered (or dropped) every request it took, and has taken no new
// one for half a second. It goes on with those in flight when their sender dies, and records
// them when its response delay is over. A request the sender wrote just before it died may
// still sit in the receiver's socket, unread, while everything read is answered: that one is
// sent by the dead run all the same, so the quiet half second waits for it too.
bool all_answered(const fakes::WebhookReceiver& receiver) {
    constexpr int k_quiet_checks = 50; // of 10 ms each
    std::size_t seen = 0;
    int quiet = 0;
    for (int i = 0; i < 6000; ++i) {
        const auto requests = receiver.requests();
        const bool answered =
            std::all_of(requests.begin(), requests.end(),
                        [](const fakes::ReceivedWebhook& r) { return r.finished; });
        quiet = answered && requests.size() == seen ? quiet + 1 : 0;
        seen = requests.size();
        if (quiet == k_quiet_checks) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

} // namespace

TEST_CASE("webhook killed while delivering sends again only what it had not recorded, under "
          "the same ids",
          "[http]") {
    DeliveryFixture f(1500);
    const auto events = f.fake.event_count();
    // What a kill can leave uncommitted: fewer than 2,000 outcomes handed to the outbox thread
    // and 32 not handed over yet, and the 4 in flight.
    constexpr std::size_t k_uncommitted_bound = 2000 + 32 + 4;
    // The kill comes after half of them, past that bound, so at least one group is committed
    // whatever the timer did.
    REQUIRE(events / 2 > k_uncommitted_bound);
    // Slow answers, so the kill falls within a group rather than at the run's end.
    f.receiver.set_response_delay(std::chrono::milliseconds(1));
    auto args = std::vector<std::string>{
        "webhook",
        "--campaign",
        f.fake.options().campaign_id,
        "--api-url",
        f.fake.base_url(),
        "--url",
        f.receiver.base_url() + "/hook",
        "--state",
        f.dir.file(f.state_file),
        "--log-dir",
        f.dir.file("logs"),
        "--since",
        utc_text(std::chrono::system_clock::now() - std::chrono::hours(48)),
        "--wr",
        "0",
        "--w",
        "4",
        "--secret-env",
        "HOOK_SECRET"};
    crmsync::testing::CrmsyncProcess killed(
        args, {{"CRMSYNC_TOKEN", f.fake.options().token}, {"HOOK_SECRET", k_secret}}, f.dir);
    REQUIRE(f.receiver.wait_for_acknowledged(events / 2, std::chrono::minutes(2)));
    killed.kill(SIGKILL);
    CHECK(killed.wait().exit_code == 128 + SIGKILL);
    // What the killed run had in flight counts as sent by it.
    REQUIRE(all_answered(f.receiver));
    const auto before_kill = f.receiver.acknowledged_ids();
    REQUIRE(before_kill.size() < events);

    f.receiver.set_response_delay(std::chrono::milliseconds(0));
    const auto rerun = f.run();
    INFO(explain(rerun));
    REQUIRE(rerun.exit_code == 0);
    CHECK(f.summary()["pending"].get<long>() == 0);
    CHECK(f.summary()["dead"].get<long>() == 0);
    // The rerun enqueued nothing new: the killed run had committed every delivery.
    CHECK(f.summary()["new"].get<long>() == 0);

    const auto acknowledged = f.receiver.acknowledged_ids();
    CHECK(acknowledged.size() == events); // none lost
    std::size_t repeated = 0;
    for (const auto& [id, times] : acknowledged) {
        CHECK(times <= 2);
        if (times == 2) {
            ++repeated;
            CHECK(before_kill.count(id) == 1); // only what the killed run had sent
        }
    }
    // Sent again: at most what the kill left uncommitted and those in flight; never what was
    // committed before.
    CHECK(repeated <= k_uncommitted_bound);
    CHECK(repeated < before_kill.size());
    // A repeat is the same delivery: same id, same body.
    for (const auto& [id, bodies] : bodies_by_id(f.receiver)) {
        CHECK(bodies.size() == 1);
    }
    SECTION("a further run sends nothing") {
        f.receiver.clear();
        REQUIRE(f.run().exit_code == 0);
        CHECK(f.receiver.request_count() == 0);
        CHECK(f.summary()["delivered"].get<long>() == 0);
    }
}

TEST_CASE("webhook sends the same ids, bodies and counts at --w 1 and --w 16", "[http]") {
    DeliveryFixture f(80);
    const auto events = f.fake.event_count();
    f.state_file = "serial.db";
    const auto serial = f.run({"--w", "1"});
    INFO(explain(serial));
    REQUIRE(serial.exit_code == 0);
    const auto serial_summary = f.summary();
    const auto serial_ids = f.receiver.acknowledged_ids();
    const auto serial_bodies = bodies_by_id(f.receiver);

    // The same campaign from a fresh state file: the fast path must send the same messages.
    f.receiver.clear();
    f.state_file = "parallel.db";
    const auto parallel = f.run({"--w", "16"});
    INFO(explain(parallel));
    REQUIRE(parallel.exit_code == 0);
    const auto parallel_summary = f.summary();

    CHECK(serial_summary["delivered"].get<long>() == static_cast<long>(events));
    CHECK(parallel_summary["delivered"].get<long>() == static_cast<long>(events));
    CHECK(parallel_summary["new"] == serial_summary["new"]);
    CHECK(serial_ids.size() == events);
    CHECK(f.receiver.acknowledged_ids() == serial_ids); // the same ids, each once
    CHECK(bodies_by_id(f.receiver) == serial_bodies);
}

TEST_CASE("webhook removes deliveries a week after they were delivered and sends none again",
          "[http]") {
    using std::chrono::hours;
    DeliveryFixture f(10);
    const auto events = static_cast<long>(f.fake.event_count());
    const auto outbox_rows = [&f] {
        SQLite::Database db(f.dir.file(f.state_file), SQLite::OPEN_READONLY);
        return db.execAndGet("SELECT COUNT(*) FROM outbox").getInt();
    };
    const auto run_at = [&f](hours later) {
        f.receiver.set_clock_offset(later);
        return f.run({"--now", utc_text(std::chrono::system_clock::now() + later)});
    };
    const auto first = run_at(hours(0));
    INFO(explain(first));
    REQUIRE(first.exit_code == 0);
    REQUIRE(f.receiver.acknowledged_ids().size() == static_cast<std::size_t>(events));
    CHECK(outbox_rows() == events);

    // Six days on they are kept (status shows them); eight days on they are gone.
    const auto six_days = run_at(hours(24 * 6));
    INFO(explain(six_days));
    CHECK(six_days.exit_code == 0);
    CHECK(outbox_rows() == events);
    const auto eight_days = run_at(hours(24 * 8));
    INFO(explain(eight_days));
    CHECK(eight_days.exit_code == 0);
    CHECK(outbox_rows() == 0);
    CHECK(f.summary()["unchanged"].get<long>() == events);
    // The ledger still knows every transaction: nothing was sent a second time.
    for (const auto& [id, times] : f.receiver.acknowledged_ids()) {
        CHECK(times == 1);
    }
    CHECK(f.receiver.acknowledged_ids().size() == static_cast<std::size_t>(events));
}
