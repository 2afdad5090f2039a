// crmsync leads end to end: the real binary as a child process, the Callback24 and Pipedrive
// fakes in-process on loopback, the ledger in a state file of a temp dir.

#include "tests/integration/support.hpp"

#include "tests/fakes/callback24/callback24_fake.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/pipedrive/pipedrive_fake.hpp"
#include "tests/fakes/smtp/smtp_fake.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <set>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;
using nlohmann::json;

namespace {

const std::string k_service = "libertycar.pl";

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

json call(int id, const std::string& service, std::int64_t at_ms) {
    return {{"id", id},
            {"phone_number", "+48500100" + std::to_string(200 + id)},
            {"addition_time", fakes::callback24_time(at_ms)},
            {"service_name", service},
            {"call_start_time", fakes::callback24_time(at_ms + 17000)},
            {"has_status_realised", true}};
}

struct Fixture {
    TempDir dir;
    fakes::Callback24Fake callback24;
    fakes::PipedriveFake pipedrive;
    std::string state = dir.file("state/state.db");

    explicit Fixture(fakes::PipedriveFakeOptions pd = {}) : pipedrive(std::move(pd)) {
        callback24.start();
        pipedrive.start();
    }

    // `count` calls of the service a few minutes ago (ids from `first`), and one of another.
    void add_calls(int first, int count) {
        const auto base = now_ms() - 5 * 60 * 1000;
        for (int i = first; i < first + count; ++i) {
            callback24.put(call(i, k_service, base + i * 1000),
                           "https://libertycar.pl/oferta?utm_source=google&utm_campaign=zima");
        }
        callback24.put(call(first + 900, "other.example", base), "https://other.example/");
    }

    std::vector<std::string> args(std::vector<std::string> extra = {}) const {
        std::vector<std::string> a{"leads",
                                   "--source",
                                   "callback24",
                                   "--api-url",
                                   callback24.base_url(),
                                   "--token-env",
                                   "CB24_TOKEN",
                                   "--service",
                                   k_service,
                                   "--pipedrive-url",
                                   pipedrive.base_url(),
                                   "--pipedrive-token-env",
                                   "PD_TOKEN",
                                   "--state",
                                   state,
                                   "--since",
                                   fakes::format_iso_ms(now_ms() - 3'600'000),
                                   "--log-dir",
                                   dir.file("logs"),
                                   "--retry-base",
                                   "20ms"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    std::map<std::string, std::string> env() const {
        return {{"CB24_TOKEN", "cb24-token"}, {"PD_TOKEN", "pd-token"}};
    }

    ProcessResult run(std::vector<std::string> extra = {}) const {
        return crmsync::testing::run_crmsync(args(std::move(extra)), env(), dir);
    }

    // Every Pipedrive lead title, sorted.
    std::vector<std::string> titles() const {
        std::vector<std::string> out;
        for (const auto& lead : pipedrive.leads()) {
            out.push_back(lead["title"].get<std::string>());
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

// Holds the first request of `method path` at `point` until released; tells when it arrived.
class Gate {
public:
    Gate(fakes::PipedriveFake& fake, std::string method, std::string path, fakes::HookPoint point)
        : m_fake(fake) {
        fake.set_hook([this, method, path, point](const std::string& m, const std::string& p,
                                                  fakes::HookPoint at) {
            std::unique_lock lock(m_mutex);
            if (m_fired || m != method || p != path || at != point) {
                return true;
            }
            m_fired = true;
            m_cv.notify_all();
            m_cv.wait(lock, [this] { return m_released; });
            return false; // the client is gone: drop the answer
        });
    }
    ~Gate() {
        release();
        m_fake.set_hook({});
    }
    void wait_reached() {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [this] { return m_fired; });
    }
    void release() {
        std::lock_guard lock(m_mutex);
        m_released = true;
        m_cv.notify_all();
    }

private:
    fakes::PipedriveFake& m_fake;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_fired = false;
    bool m_released = false;
};

json status_json(const Fixture& f) {
    const auto r =
        crmsync::testing::run_crmsync({"status", "--state", f.state, "--json"}, {}, f.dir);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

} // namespace

TEST_CASE("leads: Callback24 calls become one person and one lead each in Pipedrive",
          "[cli][http]") {
    Fixture f;
    f.add_calls(1, 3);
    // Call 2's phone already belongs to a person: found, not created again.
    const auto existing =
        f.pipedrive.add_person("Jan Kowalski", {"jan@example.com"}, {"+48500100202"});

    const auto first = f.run();
    REQUIRE(first.exit_code == 0);
    INFO(explain(first));
    CHECK(f.titles() == std::vector<std::string>{"Callback24 1: +48500100201",
                                                 "Callback24 2: +48500100202",
                                                 "Callback24 3: +48500100203"});
    CHECK(f.pipedrive.persons().size() == 3); // the existing one and two new
    for (const auto& lead : f.pipedrive.leads()) {
        if (lead["title"] == "Callback24 2: +48500100202") {
            CHECK(lead["person_id"] == existing);
        }
    }
    CHECK(first.out.find("persons_found 1, persons_created 2, leads_created 3") !=
          std::string::npos);
    CHECK(first.out.find("filtered 1") != std::string::npos);
    // Requests carry the token in x-api-token, never in the URL.
    for (const auto& request : f.pipedrive.requests()) {
        CHECK(request.query.find("api_token") == std::string::npos);
    }
    CHECK(f.callback24.count("/api/v1/phoneCalls/getCallInfo") == 3);

    SECTION("a rerun over the same window creates nothing") {
        const auto posts = f.pipedrive.count("POST", "/");
        const auto again = f.run();
        REQUIRE(again.exit_code == 0);
        CHECK(f.pipedrive.count("POST", "/") == posts);
        CHECK(f.pipedrive.leads().size() == 3);
        CHECK(again.out.find("queued 0") != std::string::npos);
    }
    SECTION("the lookback overlap queues only the new calls") {
        f.add_calls(4, 1);
        // No --since: from the checkpoint minus the lookback, which covers calls 1-3 again.
        auto a = f.args();
        const auto since = std::find(a.begin(), a.end(), "--since");
        a.erase(since, since + 2);
        const auto next = crmsync::testing::run_crmsync(a, f.env(), f.dir);
        REQUIRE(next.exit_code == 0);
        INFO(explain(next));
        CHECK(next.out.find("fetched 4") != std::string::npos);
        CHECK(next.out.find("queued 1") != std::string::npos);
        CHECK(f.pipedrive.leads().size() == 4);
        CHECK(f.pipedrive.duplicate_leads() == 0);
    }
    SECTION("status shows the ledger") {
        const auto status = status_json(f);
        REQUIRE(status["state"].size() == 1);
        CHECK(status["state"][0]["leads"]["done"] == 3);
        CHECK(status["state"][0]["parked"].empty());
    }
}

TEST_CASE("leads: a run killed at any step is finished by the rerun without duplicates",
          "[cli][http]") {
    struct Step {
        const char* name;
        const char* method;
        const char* path;
        fakes::HookPoint point;
    };
    const Step step = GENERATE(
        Step{"between the search and the person create", "POST", "/api/v2/persons",
             fakes::HookPoint::before},
        Step{"after the person create, before the ledger write", "POST", "/api/v2/persons",
             fakes::HookPoint::after},
        Step{"between the person and the lead", "POST", "/api/v1/leads", fakes::HookPoint::before},
        Step{"after the lead POST, before the ledger write", "POST", "/api/v1/leads",
             fakes::HookPoint::after});
    INFO(step.name);
    Fixture f;
    f.add_calls(1, 3);
    {
        Gate gate(f.pipedrive, step.method, step.path, step.point);
        crmsync::testing::CrmsyncProcess child(f.args(), f.env(), f.dir);
        gate.wait_reached();
        child.kill(SIGKILL);
        CHECK(child.wait().exit_code == 128 + SIGKILL);
    }
    const auto rerun = f.run();
    REQUIRE(rerun.exit_code == 0);
    INFO(explain(rerun));
    CHECK(f.pipedrive.persons().size() == 3);
    CHECK(f.pipedrive.duplicate_persons() == 0);
    CHECK(f.titles() == std::vector<std::string>{"Callback24 1: +48500100201",
                                                 "Callback24 2: +48500100202",
                                                 "Callback24 3: +48500100203"});
    CHECK(f.pipedrive.duplicate_leads() == 0);
    const auto status = status_json(f);
    CHECK(status["state"][0]["leads"]["done"] == 3);
}

TEST_CASE("leads: Pipedrive refusing a lead parks it with the answer", "[cli][http]") {
    Fixture f;
    f.add_calls(1, 2);
    f.pipedrive.inject({"POST", "/api/v1/leads", fakes::FaultKind::status, 400, {}, 0, 1});
    const auto first = f.run();
    INFO(explain(first));
    REQUIRE(first.exit_code == 3);
    CHECK(first.err.find("parked: creating a Pipedrive lead was refused: HTTP 400") !=
          std::string::npos);
    CHECK(f.pipedrive.leads().size() == 1);

    const auto status = crmsync::testing::run_crmsync({"status", "--state", f.state}, {}, f.dir);
    REQUIRE(status.exit_code == 0);
    CHECK(status.out.find("parked callback24/") != std::string::npos);
    CHECK(status.out.find("fault injected by the fake") != std::string::npos);
    const auto ledger = status_json(f)["state"][0];
    CHECK(ledger["parked"].size() == 1);
    CHECK(ledger["leads"]["done"] == 1);

    // Parked stays parked: the next run neither retries it nor fails on it.
    const auto posts = f.pipedrive.count("POST", "/api/v1/leads");
    const auto again = f.run();
    CHECK(again.exit_code == 0);
    CHECK(f.pipedrive.count("POST", "/api/v1/leads") == posts);
}

TEST_CASE("leads: Pipedrive's limits are waited for, never failed on", "[cli][http]") {
    SECTION("a 429 with Retry-After is waited out and repeated") {
        Fixture f;
        f.add_calls(1, 1);
        f.pipedrive.inject({"POST", "/api/v2/persons", fakes::FaultKind::status, 429, "2", 0, 1});
        const auto started = std::chrono::steady_clock::now();
        const auto r = f.run();
        const auto took = std::chrono::steady_clock::now() - started;
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(took >= std::chrono::seconds(2));
        CHECK(f.pipedrive.persons().size() == 1);
        CHECK(f.pipedrive.leads().size() == 1);
        CHECK(r.out.find("throttled 1") != std::string::npos);
    }
    SECTION("the 2-second burst budget is spent, then its reset is waited for") {
        fakes::PipedriveFakeOptions options;
        options.burst_limit = 8;
        Fixture f(options);
        f.add_calls(1, 6); // 3 requests per lead: 18 requests, three windows
        const auto r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(f.pipedrive.leads().size() == 6);
        const auto stats = f.pipedrive.budget_stats();
        CHECK(stats.throttled == 0); // the headers were read: no request over the budget
        CHECK(stats.requests == 18);
        CHECK(stats.full_windows >= 2);
        CHECK(r.out.find("budget_waits 0,") == std::string::npos);
    }
}

TEST_CASE("leads: a Pipedrive outage leaves the leads queued, with one notice per episode",
          "[cli][http]") {
    Fixture f;
    fakes::SmtpFake smtp;
    smtp.start();
    f.add_calls(1, 2);
    const std::vector<std::string> notify{
        "--notify-smtp",    "smtp://127.0.0.1:" + std::to_string(smtp.port()),
        "--notify-to",      "ops@example.com",
        "--retry-attempts", "2"};
    f.pipedrive.inject({"", "/api/", fakes::FaultKind::status, 500, {}, 0, 100000});
    const auto down = f.run(notify);
    INFO(explain(down));
    CHECK(down.exit_code == 1);
    CHECK(down.err.find("Pipedrive may be down") != std::string::npos);
    CHECK(f.pipedrive.leads().empty());
    CHECK(smtp.message_count() == 1);

    const auto still_down = f.run(notify);
    CHECK(still_down.exit_code == 1);
    CHECK(smtp.message_count() == 1); // the same episode: no second mail

    // The outage ends. The next window holds no call, so only the ledger knows the leads.
    f.pipedrive.clear_faults();
    auto a = f.args(notify);
    const auto since = std::find(a.begin(), a.end(), "--since");
    a.erase(since, since + 2);
    a.insert(a.end(), {"--lookback", "0s"});
    const auto up = crmsync::testing::run_crmsync(a, f.env(), f.dir);
    INFO(explain(up));
    CHECK(up.exit_code == 0);
    CHECK(up.out.find("fetched 0") != std::string::npos);
    CHECK(f.titles() ==
          std::vector<std::string>{"Callback24 1: +48500100201", "Callback24 2: +48500100202"});
    REQUIRE(smtp.message_count() == 2);
    CHECK(smtp.messages()[1].subject.find("recovered") != std::string::npos);
}

TEST_CASE("leads: unreadable calls are rejected with their reason, the rest go through",
          "[cli][http]") {
    Fixture f;
    f.add_calls(1, 1);
    auto no_phone = call(77, k_service, now_ms() - 60'000);
    no_phone.erase("phone_number");
    f.callback24.put(no_phone, "https://libertycar.pl/");
    f.callback24.put("not a call", "");
    f.callback24.put(call(78, k_service, now_ms() - 60'000), ""); // getCallInfo answers 404
    f.callback24.inject(
        {"GET", "/api/v1/phoneCalls/history", fakes::FaultKind::truncate, 200, {}, 0, 1});
    const auto r = f.run();
    INFO(explain(r));
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("rejected lead callback24/77: the call has no phone number") !=
          std::string::npos);
    CHECK(r.err.find("a call in the history is not an object") != std::string::npos);
    CHECK(r.out.find("rejected 2") != std::string::npos);
    CHECK(f.titles() ==
          std::vector<std::string>{"Callback24 1: +48500100201", "Callback24 78: +48500100278"});
}

TEST_CASE("leads: --dry-run prints the leads and writes nothing", "[cli][http]") {
    Fixture f;
    f.add_calls(1, 2);
    const auto r = f.run({"--dry-run"});
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("would create: lead \"Callback24 1: +48500100201\"") != std::string::npos);
    CHECK(r.out.find("would create: lead \"Callback24 2: +48500100202\"") != std::string::npos);
    CHECK(f.pipedrive.requests().empty());
    CHECK(!std::filesystem::exists(f.state));
}

TEST_CASE("leads: usage errors", "[cli]") {
    TempDir dir;
    const auto facebook =
        crmsync::testing::run_crmsync({"leads", "--source", "facebook", "--form", "123"}, {}, dir);
    CHECK(facebook.exit_code == 2);
    CHECK(facebook.err.find("crmsync: error: no Facebook page access token given") !=
          std::string::npos);
    const auto no_service =
        crmsync::testing::run_crmsync({"leads", "--source", "callback24"}, {}, dir);
    CHECK(no_service.exit_code == 2);
    CHECK(no_service.err.find("--service") != std::string::npos);
    const auto no_token = crmsync::testing::run_crmsync(
        {"leads", "--source", "callback24", "--service", "x", "--token-env", "NOPE_UNSET"}, {},
        dir);
    CHECK(no_token.exit_code == 2);
    CHECK(no_token.err.find("NOPE_UNSET is empty") != std::string::npos);
}
