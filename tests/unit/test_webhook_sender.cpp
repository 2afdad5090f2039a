// The webhook sender's retry rules: by age, not by count; backoff up to an hour; Retry-After
// capped and overflow-free; and deliver_pending against a real receiver on loopback with an
// injected wall clock, so days pass in milliseconds.

#include "drivers/webhook/sender.hpp"
#include "tests/support/outbox_delivery.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/curl_multi_fault.hpp"

#include "lib/http/retry_policy.hpp"
#include "lib/state/open_file.hpp"
#include "lib/state/outbox.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Database.h>
#include <catch2/catch.hpp>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

using namespace crmsync;
using namespace std::chrono_literals;
using crmsync::testing::TempState;
using crmsync::testing::test_delivery;
namespace webhook = crmsync::drivers::webhook;

namespace {

constexpr std::int64_t k_hour_ms = 3'600'000;
const std::int64_t k_t0 = util::parse_iso8601("2030-05-01T12:00:00Z")->time_since_epoch().count();

webhook::FailedAttempt failure(int attempt, std::int64_t created_ms) {
    webhook::FailedAttempt f;
    f.attempt = attempt;
    f.created_ms = created_ms;
    f.error = "HTTP 503: down";
    return f;
}

std::chrono::milliseconds header_wait(const char* value) {
    http::HttpResponse r;
    r.status = 503;
    r.headers["retry-after"] = value;
    return http::RetryPolicy::retry_after(r, SystemTime{}).value();
}

} // namespace

TEST_CASE("webhook::after_failure", "[unit][http]") {
    webhook::DeliveryRetryRules rules; // defaults: 500 ms base, 1 h apart, 72 h of life

    SECTION("a retryable failure is retried for 72 hours, however many attempts that takes") {
        for (int attempt = 1; attempt <= 5000; attempt += 7) {
            INFO(attempt);
            const auto step =
                webhook::after_failure(rules, failure(attempt, k_t0), k_t0 + 71 * k_hour_ms);
            CHECK_FALSE(step.dead);
            CHECK(step.next_attempt_ms >= k_t0 + 71 * k_hour_ms);
        }
    }
    SECTION("the backoff grows exponentially, with jitter, up to one hour apart") {
        const std::int64_t now = k_t0 + 1000;
        std::int64_t longest_early = 0;
        std::int64_t longest_late = 0;
        for (int i = 0; i < 200; ++i) {
            const auto early = webhook::after_failure(rules, failure(3, k_t0), now);
            const auto late = webhook::after_failure(rules, failure(40, k_t0), now);
            CHECK(early.next_attempt_ms - now <= 2000); // 500 ms * 2^2
            CHECK(late.next_attempt_ms - now <= k_hour_ms);
            longest_early = std::max(longest_early, early.next_attempt_ms - now);
            longest_late = std::max(longest_late, late.next_attempt_ms - now);
        }
        CHECK(longest_late > 30 * 60'000); // 200 draws in [0, 1 h]: one is past half an hour
        CHECK(longest_early < longest_late);
    }
    SECTION("a delivery older than max-age dies at its next failure") {
        const auto step =
            webhook::after_failure(rules, failure(2, k_t0), k_t0 + 72 * k_hour_ms + 1);
        CHECK(step.dead);
        CHECK(step.reason.find("HTTP 503: down") != std::string::npos);
        CHECK(step.reason.find("--max-age is 72 h") != std::string::npos);
        rules.max_age = 30min;
        CHECK(webhook::after_failure(rules, failure(1, k_t0), k_t0 + 31 * 60'000).dead);
        CHECK_FALSE(webhook::after_failure(rules, failure(1, k_t0), k_t0 + 29 * 60'000).dead);
    }
    SECTION("the last attempt falls at the end of the delivery's life, not after it") {
        const std::int64_t now = k_t0 + 72 * k_hour_ms - 1000;
        for (int i = 0; i < 50; ++i) {
            const auto step = webhook::after_failure(rules, failure(30, k_t0), now);
            CHECK_FALSE(step.dead);
            CHECK(step.next_attempt_ms <= k_t0 + 72 * k_hour_ms);
        }
    }
    SECTION("a non-retryable answer dies at once, however young") {
        auto f = failure(1, k_t0);
        f.retryable = false;
        f.error = "HTTP 410: gone";
        const auto step = webhook::after_failure(rules, f, k_t0);
        CHECK(step.dead);
        CHECK(step.reason.find("HTTP 410: gone") != std::string::npos);
    }
    SECTION("a count limit applies only when set") {
        rules.max_attempts = 10;
        CHECK(webhook::after_failure(rules, failure(10, k_t0), k_t0 + 1000).dead);
        CHECK_FALSE(webhook::after_failure(rules, failure(9, k_t0), k_t0 + 1000).dead);
    }
    SECTION("Retry-After is honoured up to one hour, a huge one without overflow") {
        auto f = failure(1, k_t0);
        f.retry_after = header_wait("120");
        CHECK(webhook::after_failure(rules, f, k_t0).next_attempt_ms == k_t0 + 120'000);
        for (const char* huge : {"99999999999999999999", "9223372036854775807", "86400"}) {
            INFO(huge);
            f.retry_after = header_wait(huge);
            const auto step = webhook::after_failure(rules, f, k_t0);
            CHECK_FALSE(step.dead);
            CHECK(step.next_attempt_ms == k_t0 + k_hour_ms);
        }
    }
    SECTION("extreme times and settings never overflow") {
        const std::int64_t max = std::numeric_limits<std::int64_t>::max();
        rules.max_age = std::chrono::milliseconds(max);
        rules.max_delay = std::chrono::milliseconds(max);
        rules.base_delay = std::chrono::milliseconds(max / 2);
        auto f = failure(1000, max - 10);
        f.retry_after = std::chrono::milliseconds(max);
        rules.max_retry_after = std::chrono::milliseconds(max);
        const auto step = webhook::after_failure(rules, f, max - 5);
        CHECK_FALSE(step.dead);
        CHECK(step.next_attempt_ms >= max - 5);
    }
}

namespace {

// POST /hook on loopback answered by `handler`, served until destroyed. Destroy it before
// reading what the handler recorded: that waits for the requests in progress.
class LoopbackHook {
public:
    explicit LoopbackHook(httplib::Server::Handler handler) {
        m_server.Post("/hook", std::move(handler));
        m_port = m_server.bind_to_any_port("127.0.0.1");
        REQUIRE(m_port > 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(1ms);
        }
    }
    ~LoopbackHook() { stop(); }
    LoopbackHook(const LoopbackHook&) = delete;
    LoopbackHook& operator=(const LoopbackHook&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/hook"; }
    void stop() {
        if (m_thread.joinable()) {
            m_server.stop();
            m_thread.join();
        }
    }

private:
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
};

// Queues `count` deliveries msg_0, msg_1... in the state file at `path`, three per contact,
// as a webhook job queues them.
void enqueue_three_per_contact(const std::string& path, int count) {
    state::StateStore store(path);
    state::Outbox outbox(store);
    for (int i = 0; i < count; ++i) {
        REQUIRE(outbox.enqueue(
            test_delivery("msg_" + std::to_string(i), "contact_" + std::to_string(i / 3))));
    }
}

// A receiver on loopback whose answer the test sets: 503 (down) or 200.
class SwitchableReceiver {
public:
    SwitchableReceiver()
        : m_hook([this](const httplib::Request& req, httplib::Response& res) {
              ++m_requests;
              const std::lock_guard<std::mutex> lock(m_mutex); // one handler thread per connection
              m_last_timestamp = req.get_header_value("webhook-timestamp");
              res.status = m_up ? 200 : 503;
              res.set_content("{}", "application/json");
          }) {}
    std::string url() const { return m_hook.url(); }
    void set_up(bool up) { m_up = up; }
    int requests() const { return m_requests.load(); }
    std::string last_timestamp() const {
        const std::lock_guard<std::mutex> lock(m_mutex);
        return m_last_timestamp;
    }

private:
    std::atomic<bool> m_up{false};
    std::atomic<int> m_requests{0};
    mutable std::mutex m_mutex;
    std::string m_last_timestamp;
    LoopbackHook m_hook; // last: stopped before the members its handler uses go
};

} // namespace

TEST_CASE("webhook::deliver_pending gives up by age across runs", "[unit][http][sqlite]") {
    TempState temp;
    state::StateStore store(temp.path());
    SwitchableReceiver receiver;
    // The injected wall clock runs at real speed from where the test sets it.
    std::int64_t shift_ms = 0;
    const auto real_ms = [] { return Clock::real().wall_now().time_since_epoch().count(); };
    const auto set_now = [&](std::int64_t ms) { shift_ms = ms - real_ms(); };
    webhook::SenderOptions options;
    options.url = receiver.url();
    options.rate = 0;
    options.retry.base_delay = 1ms;
    options.clock.wall_now = [&] {
        return SystemTime(std::chrono::milliseconds(real_ms() + shift_ms));
    };
    set_now(k_t0);
    // Each failing "run" may try for a short moment only; a run expected to settle every
    // delivery gets time to spare on a loaded machine (it ends when none is left).
    const auto run = [&](std::chrono::milliseconds budget = 300ms) {
        options.deadline = std::chrono::steady_clock::now() + budget;
        return webhook::deliver_pending(store, "job", options);
    };
    state::Outbox outbox(store, options.clock);
    for (int i = 0; i < 3; ++i) {
        REQUIRE(outbox.enqueue(test_delivery("msg_" + std::to_string(i), "g" + std::to_string(i))));
    }

    SECTION("many failed attempts over 70 hours leave every delivery pending") {
        std::int64_t now_ms = 0;
        for (int hour = 0; hour <= 70; hour += 10) {
            now_ms = k_t0 + hour * k_hour_ms + k_hour_ms / 2;
            set_now(now_ms);
            run();
        }
        CHECK(receiver.requests() > 30); // far more than the old limit of 10 per delivery
        auto counts = outbox.counts("job");
        CHECK(counts.dead == 0);
        CHECK(counts.pending == 3);
        // The timestamp header follows the injected clock.
        const auto stamp = std::stoll(receiver.last_timestamp());
        CHECK(stamp >= now_ms / 1000);
        CHECK(stamp <= now_ms / 1000 + 2);

        SECTION("and the receiver back gets each of them once") {
            receiver.set_up(true);
            set_now(now_ms + k_hour_ms + 1000); // every retry is due within an hour of its failure
            const auto sent = run(30s);
            CHECK(sent.delivered == 3);
            counts = outbox.counts("job");
            CHECK(counts.delivered == 3);
            CHECK(counts.pending == 0);
        }
        SECTION("past 72 hours the next failure makes them dead") {
            set_now(k_t0 + 72 * k_hour_ms + 1);
            const auto sent = run(30s);
            CHECK(sent.died == 3);
            counts = outbox.counts("job");
            CHECK(counts.dead == 3);
            CHECK(counts.pending == 0);
        }
    }
}

TEST_CASE("webhook::deliver_pending reads a receiver's answer up to its cap",
          "[unit][http][sqlite]") {
    TempState temp;
    state::StateStore store(temp.path());
    std::atomic<int> requests{0};
    LoopbackHook hook([&](const httplib::Request& req, httplib::Response& res) {
        ++requests;
        // Answers too long for the cap: accepted (2xx), unavailable (503) or gone (410).
        const auto id = req.get_header_value("webhook-id");
        res.status = id == "msg_take" ? 200 : id == "msg_later" ? 503 : 410;
        res.set_header("Retry-After", "120");
        res.set_content(std::string(std::size_t{2} << 20, 'z'), "text/plain");
    });
    webhook::SenderOptions options;
    options.url = hook.url();
    options.rate = 0;
    options.retry.base_delay = 1ms;
    options.deadline = std::chrono::steady_clock::now() + 500ms;
    state::Outbox outbox(store);
    for (const char* id : {"msg_take", "msg_later", "msg_gone"}) {
        REQUIRE(outbox.enqueue(test_delivery(id, id)));
    }
    const auto sent = webhook::deliver_pending(store, "job", options);
    hook.stop();
    // Each counts by its status, the body unread past the cap.
    CHECK(sent.delivered == 1);
    CHECK(sent.died == 1);
    // Its Retry-After is honoured: one attempt this run, the next in two minutes.
    CHECK(sent.retried == 1);
    CHECK(requests.load() == 3);
    const auto counts = outbox.counts("job");
    CHECK(counts.delivered == 1);
    CHECK(counts.dead == 1);
    CHECK(counts.pending == 1);
    auto& db = state::detail::connection(store);
    const std::string error =
        db.execAndGet("SELECT last_error FROM outbox WHERE id = 'msg_later'").getString();
    CHECK(error.find("HTTP 503: response from http://127.0.0.1:") != std::string::npos);
    CHECK(error.find("larger than 1 MiB") != std::string::npos);
    const auto due = outbox.next_due("job");
    REQUIRE(due.has_value());
    CHECK(*due - Clock::real().wall_now().time_since_epoch().count() > 100'000);
}

TEST_CASE("webhook::deliver_pending keeps a contact's order when its delivery in flight ends "
          "mid-pass",
          "[unit][http][sqlite]") {
    // One lane, and two: the second drives its connections from a thread of its own.
    const std::size_t lanes = GENERATE(std::size_t{1}, std::size_t{2});
    INFO("lanes " << lanes);
    TempState temp;
    state::StateStore store(temp.path());
    std::mutex mutex;
    std::vector<std::string> arrived;
    LoopbackHook hook([&](const httplib::Request& req, httplib::Response& res) {
        const auto id = req.get_header_value("webhook-id");
        {
            const std::lock_guard<std::mutex> lock(mutex);
            arrived.push_back(id);
        }
        // The other contact's answer comes late: contact a's first delivery ends while the
        // pass still has a's later ones ahead of it.
        if (id == "b1") {
            std::this_thread::sleep_for(200ms);
        }
        res.set_content("{}", "application/json");
    });
    state::Outbox outbox(store);
    for (const char* id : {"a1", "a2", "b1", "a3"}) {
        REQUIRE(outbox.enqueue(test_delivery(id, std::string(1, id[0]))));
    }
    webhook::SenderOptions options;
    options.url = hook.url();
    options.rate = 0;
    options.in_flight = 2;
    options.lanes = lanes;
    const auto sent = webhook::deliver_pending(store, "job", options);
    hook.stop();
    CHECK(sent.delivered == 4);
    std::vector<std::string> of_a;
    for (const auto& id : arrived) {
        if (id[0] == 'a') {
            of_a.push_back(id);
        }
    }
    CHECK(of_a == std::vector<std::string>{"a1", "a2", "a3"});
}

TEST_CASE("webhook::deliver_pending sends a contact's next delivery as soon as its last one is "
          "through, and holds the rest behind one that failed",
          "[unit][http][sqlite]") {
    // One lane, and two: the second drives its connections from a thread of its own.
    const std::size_t lanes = GENERATE(std::size_t{1}, std::size_t{2});
    INFO("lanes " << lanes);
    TempState temp;
    state::StateStore store(temp.path());
    std::mutex mutex;
    std::vector<std::string> arrived;
    std::atomic<bool> a1_refused{false};
    LoopbackHook hook([&](const httplib::Request& req, httplib::Response& res) {
        const auto id = req.get_header_value("webhook-id");
        {
            const std::lock_guard<std::mutex> lock(mutex);
            arrived.push_back(id);
        }
        // a1 is refused once (retryable), and b's deliveries are slow: a2 must not overtake a1
        // while b's go on, and a's retry comes in a later pass of the same run.
        if (id == "a1" && !a1_refused.exchange(true)) {
            res.status = 503;
            res.set_content("{}", "application/json");
            return;
        }
        if (id[0] == 'b') {
            std::this_thread::sleep_for(20ms);
        }
        res.set_content("{}", "application/json");
    });
    state::Outbox outbox(store);
    // Enqueued interleaved: a contact's later deliveries sit behind its first in the outbox.
    for (const char* id : {"a1", "b1", "a2", "b2", "c1", "a3", "b3", "c2", "c3"}) {
        REQUIRE(outbox.enqueue(test_delivery(id, std::string(1, id[0]))));
    }
    webhook::SenderOptions options;
    options.url = hook.url();
    options.rate = 0;
    options.in_flight = 3;
    options.lanes = lanes;
    options.retry.base_delay = 1ms;
    options.retry.max_delay = 5ms;
    const auto sent = webhook::deliver_pending(store, "job", options);
    hook.stop();
    CHECK(sent.delivered == 9);
    CHECK(sent.attempts == 10);
    CHECK(sent.retried == 1);
    std::map<char, std::vector<std::string>> by_contact;
    for (const auto& id : arrived) {
        by_contact[id[0]].push_back(id);
    }
    CHECK(by_contact['a'] == std::vector<std::string>{"a1", "a1", "a2", "a3"});
    CHECK(by_contact['b'] == std::vector<std::string>{"b1", "b2", "b3"});
    CHECK(by_contact['c'] == std::vector<std::string>{"c1", "c2", "c3"});
    // Every delivery went exactly once (a1 twice), and nothing is left.
    CHECK(arrived.size() == 10);
    CHECK(outbox.counts("job").pending == 0);
}

TEST_CASE("webhook::deliver_pending stops with the state file's error when an outcome cannot be "
          "written, keeps what it committed, and the next run sends the rest",
          "[unit][http][sqlite]") {
    // One lane, and two: the second drives its connections from a thread of its own.
    const std::size_t lanes = GENERATE(std::size_t{1}, std::size_t{2});
    INFO("lanes " << lanes);
    TempState temp;
    std::mutex mutex;
    std::map<std::string, int> acknowledged; // webhook-id -> times answered 2xx
    std::atomic<int> requests{0};
    const auto answer = [&](const httplib::Request& req, httplib::Response& res) {
        // From near the failure on, a request takes a moment before it counts, so that requests
        // the failed run sent are still in the receiver's hands when the run ends.
        if (++requests > 900) {
            std::this_thread::sleep_for(2ms);
        }
        const std::lock_guard<std::mutex> lock(mutex);
        ++acknowledged[req.get_header_value("webhook-id")];
        res.status = 204;
    };
    // The failed run's receiver, stopped before the test reads what it took: a request the run
    // sent before its error may still be in the receiver's hands when the run has ended.
    LoopbackHook failed_runs_receiver(answer);
    constexpr int k_deliveries = 3000;
    enqueue_three_per_contact(temp.path(), k_deliveries);
    // The state file refuses to record more than 1000 deliveries as delivered (a full disk,
    // say): the failure comes from the writes, in the middle of a group.
    const auto set_failure = [&](bool on) {
        SQLite::Database db(temp.path(), SQLite::OPEN_READWRITE);
        db.exec(on ? "CREATE TRIGGER refuse_late BEFORE UPDATE OF status ON outbox "
                     "WHEN NEW.status = 'delivered' AND "
                     "(SELECT COUNT(*) FROM outbox WHERE status = 'delivered') >= 1000 "
                     "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
                   : "DROP TRIGGER refuse_late");
    };
    set_failure(true);
    webhook::SenderOptions options;
    options.url = failed_runs_receiver.url();
    options.rate = 0;
    options.in_flight = 8;
    options.lanes = lanes;

    long committed = 0;
    std::map<std::string, int> before_failure;
    {
        state::StateStore store(temp.path());
        try {
            webhook::deliver_pending(store, "job", options);
            FAIL("the run ended without the state file's error");
        } catch (const std::exception& e) {
            const std::string what = e.what();
            CHECK_THAT(what, Catch::Contains("cannot update the outbox"));
            CHECK_THAT(what, Catch::Contains("simulated write failure"));
        }
        // Nothing half-written: every delivery is delivered or pending, and what the run
        // recorded as delivered is whole groups that were committed before the failure.
        const auto counts = state::Outbox(store).counts("job");
        committed = counts.delivered;
        CHECK(counts.pending + counts.delivered == k_deliveries);
        CHECK(counts.dead == 0);
        // The trigger lets the count reach 1000: a group that ends there commits, and the
        // next one fails at its first delivery. That a failing group is rolled back whole is
        // shown, deterministically, by the OutboxThread tests.
        CHECK(committed <= 1000);
        failed_runs_receiver.stop(); // every request it accepted has been answered
        const std::lock_guard<std::mutex> lock(mutex);
        before_failure = acknowledged;
        CHECK(static_cast<long>(before_failure.size()) >= committed);
    }
    set_failure(false);
    LoopbackHook receiver(answer);
    options.url = receiver.url();
    {
        state::StateStore store(temp.path());
        const auto sent = webhook::deliver_pending(store, "job", options);
        CHECK(sent.delivered == k_deliveries - committed);
        const auto counts = state::Outbox(store).counts("job");
        CHECK(counts.delivered == k_deliveries);
        CHECK(counts.pending == 0);
    }
    receiver.stop();
    // None lost; sent twice only what the failed run had sent and not committed.
    CHECK(acknowledged.size() == static_cast<std::size_t>(k_deliveries));
    long repeated = 0;
    for (const auto& [id, times] : acknowledged) {
        CHECK(times <= 2);
        if (times == 2) {
            ++repeated;
            CHECK(before_failure.count(id) == 1);
        }
    }
    CHECK(repeated == static_cast<long>(before_failure.size()) - committed);
}

TEST_CASE("webhook::deliver_pending stops with libcurl's error when a connection lane fails, "
          "records every answer it had, and the next run sends the rest",
          "[unit][http][sqlite]") {
    TempState temp;
    std::mutex mutex;
    std::map<std::string, int> acknowledged; // webhook-id -> times answered 2xx
    // libcurl fails on the second lane's thread (out of memory) once 1,000 deliveries are in.
    crmsync::testing::CurlMultiPerformFault fault(
        crmsync::testing::CurlMultiPerformFault::Where::other_threads);
    LoopbackHook hook([&](const httplib::Request& req, httplib::Response& res) {
        const std::lock_guard<std::mutex> lock(mutex);
        if (++acknowledged[req.get_header_value("webhook-id")] == 1 &&
            acknowledged.size() == 1000) {
            fault.arm();
        }
        res.status = 204;
    });
    constexpr int k_deliveries = 3000;
    enqueue_three_per_contact(temp.path(), k_deliveries);
    webhook::SenderOptions options;
    options.url = hook.url();
    options.rate = 0;
    options.in_flight = 8;
    options.lanes = 2;

    long committed = 0;
    std::map<std::string, int> before_failure;
    {
        state::StateStore store(temp.path());
        try {
            webhook::deliver_pending(store, "job", options);
            FAIL("the run ended without libcurl's error");
        } catch (const std::exception& e) {
            CHECK_THAT(std::string(e.what()), Catch::Contains("curl_multi_perform failed"));
        }
        CHECK(fault.failures() >= 1);
        const auto counts = state::Outbox(store).counts("job");
        committed = counts.delivered;
        CHECK(counts.pending + counts.delivered == k_deliveries);
        const std::lock_guard<std::mutex> lock(mutex);
        before_failure = acknowledged;
        // Every answer the run had was recorded before the error went on: the receiver took at
        // most the transfers in flight (8) without the state file knowing. Outcomes waiting in
        // memory to be written in a group (up to 2,000) would be far more.
        CHECK(committed >= 1000 - 8);
        CHECK(static_cast<long>(before_failure.size()) >= committed);
        CHECK(static_cast<long>(before_failure.size()) - committed <= 8);
    }
    fault.disarm();
    {
        state::StateStore store(temp.path());
        const auto sent = webhook::deliver_pending(store, "job", options);
        CHECK(sent.delivered == k_deliveries - committed);
        CHECK(state::Outbox(store).counts("job").delivered == k_deliveries);
    }
    hook.stop();
    CHECK(acknowledged.size() == static_cast<std::size_t>(k_deliveries));
    for (const auto& [id, times] : acknowledged) {
        CHECK(times <= 2);
    }
}

TEST_CASE("webhook::deliver_pending leaves other writers of the state file their turn while it "
          "delivers",
          "[unit][http][sqlite]") {
    TempState temp;
    // Another process's job on the same file (refresh-tokens from cron, another webhook job):
    // a connection of its own, writing every few milliseconds while the delivery runs.
    {
        state::StateStore store(temp.path());
        state::Outbox outbox(store);
        for (int i = 0; i < 300; ++i) {
            REQUIRE(outbox.enqueue(
                test_delivery("msg_" + std::to_string(i), "contact_" + std::to_string(i))));
        }
    }
    SQLite::Database other(temp.path(), SQLite::OPEN_READWRITE);
    other.setBusyTimeout(60'000);
    other.exec("CREATE TABLE other_job (n INTEGER)");
    LoopbackHook hook([&](const httplib::Request&, httplib::Response& res) {
        std::this_thread::sleep_for(2ms); // 300 answers one after the other: over 0.6 s
        res.status = 204;
    });
    std::atomic<bool> delivering{false};
    std::atomic<bool> stop{false};
    std::atomic<int> written_while_delivering{0};
    std::thread other_job([&] {
        while (!stop.load()) {
            other.exec("BEGIN IMMEDIATE");
            other.exec("INSERT INTO other_job VALUES (1)");
            other.exec("COMMIT");
            if (delivering.load()) {
                ++written_while_delivering;
            }
            std::this_thread::sleep_for(5ms);
        }
    });
    webhook::SendStats sent;
    {
        state::StateStore store(temp.path());
        webhook::SenderOptions options;
        options.url = hook.url();
        options.rate = 0;
        options.in_flight = 1;
        delivering = true;
        sent = webhook::deliver_pending(store, "job", options);
        delivering = false;
    }
    stop = true;
    other_job.join();
    CHECK(sent.delivered == 300);
    // The sender holds the write lock only while it writes a group of outcomes (a few
    // milliseconds per 200 ms here), not for the whole delivery: the other job wrote all along.
    CHECK(written_while_delivering.load() >= 20);
}

TEST_CASE("webhook::deliver_pending stops sending while 2,000 outcomes wait to be committed",
          "[unit][http][sqlite]") {
    // What a crash could send again is bounded by what waits uncommitted: another connection
    // holds the state file's write lock, so no group can be committed, and the sender must
    // stop at the bound instead of sending on.
    TempState temp;
    constexpr int k_deliveries = 3000;
    {
        state::StateStore store(temp.path());
        state::Outbox outbox(store);
        for (int i = 0; i < k_deliveries; ++i) {
            REQUIRE(outbox.enqueue(
                test_delivery("msg_" + std::to_string(i), "contact_" + std::to_string(i))));
        }
    }
    std::atomic<int> received{0};
    LoopbackHook hook([&](const httplib::Request&, httplib::Response& res) {
        ++received;
        res.status = 204;
    });
    SQLite::Database other(temp.path(), SQLite::OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    webhook::SendStats sent;
    std::thread delivery([&] {
        state::StateStore store(temp.path());
        webhook::SenderOptions options;
        options.url = hook.url();
        options.rate = 0;
        options.in_flight = 4;
        sent = webhook::deliver_pending(store, "job", options);
    });
    // Wait until the receiver has seen no request for a second: the sender is waiting (a
    // sender without the bound would have sent all 3,000 by then).
    int seen = -1;
    while (received.load() != seen) {
        seen = received.load();
        std::this_thread::sleep_for(1s);
    }
    const int while_locked = received.load();
    INFO("received while the state file was locked: " << while_locked);
    other.exec("COMMIT");
    delivery.join();
    // The bound: 2,000 handed over and uncommitted, fewer than 32 more not handed over yet (a
    // batch grows past 32 only by transfers ending in the same poll, at most 4 here), and the
    // 4 in flight.
    CHECK(while_locked >= 2000);
    CHECK(while_locked <= 2000 + 32 + 4 + 4);
    CHECK(sent.delivered == k_deliveries);
    state::StateStore store(temp.path());
    CHECK(state::Outbox(store).counts("job").delivered == k_deliveries);
}
