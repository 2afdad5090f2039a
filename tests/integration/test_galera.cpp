// crmsync db_sync into a three-node MariaDB Galera cluster on loopback (tests/galera.sh, started
// by tests/run.sh): the job lock holds across nodes, a run whose node dies fails cleanly and
// the next continues through another node, and a URL may list several hosts.

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <thread>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

const char* const k_tables[] = {"contacts", "transactions", "connections", "recordings",
                                "inbound_calls"};
const std::string k_contacts_path = "/api/campaigns/DEMO0000CAMPAIGN/contacts/";

// The cluster tests/run.sh started. Without one the tests fail under CI (a broken galera-4
// must show) and only warn elsewhere.
struct Cluster {
    std::vector<std::string> urls; // one per node
    std::vector<int> ports;
    std::string dir;

    std::string multi_host(const std::vector<int>& order) const {
        std::string hosts;
        for (const int node : order) {
            hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") +
                     std::to_string(ports.at(static_cast<std::size_t>(node)));
        }
        return "mysql://crmsync:crmsync@" + hosts + "/crmsync_test";
    }

    int server_pid(int node) const {
        std::ifstream in(dir + "/n" + std::to_string(node + 1) + "/mysqld.pid");
        int pid = 0;
        in >> pid;
        return pid;
    }

    // Starts again any node an earlier test killed, and waits until every node is synced.
    void ensure_all_up() const {
        for (int n = 1; n <= 3; ++n) {
            const std::string command = "bash '" CRMSYNC_SOURCE_DIR
                                        "/tests/galera.sh' restart-node " +
                                        std::to_string(n) + " >/dev/null 2>&1";
            REQUIRE(std::system(command.c_str()) == 0);
        }
    }
};

std::optional<Cluster> cluster() {
    const char* urls = std::getenv("CRMSYNC_TEST_GALERA_URLS");
    const char* dir = std::getenv("CRMSYNC_TEST_GALERA_DIR");
    if (urls == nullptr || *urls == '\0' || dir == nullptr || *dir == '\0') {
        const char* ci = std::getenv("CI");
        if (ci != nullptr && std::string(ci) == "true") {
            FAIL("no Galera cluster: tests/run.sh could not start one (see its log)");
        }
        WARN("no Galera cluster (CRMSYNC_TEST_GALERA_URLS unset): run through tests/run.sh");
        return std::nullopt;
    }
    Cluster c;
    c.dir = dir;
    std::istringstream in(urls);
    for (std::string url; in >> url;) {
        const auto colon = url.rfind(':');
        c.ports.push_back(std::stoi(url.substr(colon + 1, url.find('/', colon) - colon - 1)));
        c.urls.push_back(url);
    }
    REQUIRE(c.urls.size() == 3);
    c.ensure_all_up();
    return c;
}

fakes::FakeCampaignOptions campaign(std::size_t contacts) {
    fakes::FakeCampaignOptions o;
    o.contacts = contacts;
    o.inbound_calls = 30;
    o.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
    return o;
}

struct GaleraSync {
    TempDir dir;
    fakes::DialfireFake fake;
    std::string prefix = crmsync::testing::unique_prefix();

    explicit GaleraSync(fakes::FakeCampaignOptions options) : fake(std::move(options)) {
        fake.start();
    }

    std::string job() const { return "db_sync:" + fake.options().campaign_id + ":" + prefix; }

    std::vector<std::string> args(const std::string& url, const std::string& table_prefix,
                                  std::vector<std::string> extra = {}) const {
        std::vector<std::string> a{"db_sync",   "--campaign",     fake.options().campaign_id,
                                   "--api-url", fake.base_url(),  "--url",
                                   url,         "--table-prefix", table_prefix,
                                   "--log-dir", dir.file("logs"), "--retry-base",
                                   "20ms"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    std::vector<std::string> args(const std::string& url) const { return args(url, prefix); }

    std::map<std::string, std::string> env(std::map<std::string, std::string> extra = {}) const {
        extra["CRMSYNC_TOKEN"] = fake.options().token;
        return extra;
    }

    ProcessResult sync(const std::string& url) const {
        return crmsync::testing::run_crmsync(args(url), env(), dir);
    }

    std::map<std::string, std::vector<std::string>> dump(const std::string& url,
                                                         const std::string& with_prefix) const {
        auto db = crmsync::testing::open(url);
        std::map<std::string, std::vector<std::string>> tables;
        for (const char* t : k_tables) {
            tables[t] = crmsync::testing::dump_table(*db, with_prefix + t);
        }
        return tables;
    }

    std::optional<std::string> checkpoint(const std::string& url) const {
        auto db = crmsync::testing::open(url);
        if (!crmsync::testing::table_exists(*db, "crmsync_state")) {
            return std::nullopt;
        }
        const auto rows =
            db->query("SELECT checkpoint FROM crmsync_state WHERE job = :p0", {job()});
        return rows.empty() ? std::nullopt : rows[0][0];
    }

    // Whether the job's lock row exists, read through `url`.
    bool lock_row(const std::string& url) const {
        auto db = crmsync::testing::open(url);
        if (!crmsync::testing::table_exists(*db, "crmsync_locks")) {
            return false;
        }
        return !db->query("SELECT owner FROM crmsync_locks WHERE job = :p0", {job()}).empty();
    }

    // Polls until a run took the job's lock (the row replicated to `url`'s node).
    void wait_for_lock_row(const std::string& url) const {
        for (int i = 0; i < 1500 && !lock_row(url); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        REQUIRE(lock_row(url));
    }

    void drop(const std::string& url, const std::string& with_prefix) const {
        try {
            auto db = crmsync::testing::open(url);
            crmsync::testing::drop_prefixed(*db, with_prefix);
        } catch (...) {
        }
    }
};

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

} // namespace

TEST_CASE("galera: of two runs through two nodes at once one writes and the other exits 4",
          "[galera]") {
    const auto c = cluster();
    if (!c) {
        return;
    }
    GaleraSync s(campaign(20));
    // Slow pages keep the first run inside its lock while the second starts.
    s.fake.inject({"POST", k_contacts_path, fakes::FaultKind::slow, 0, {}, 1500, 1});
    crmsync::testing::CrmsyncProcess first(s.args(c->urls[0]), s.env(), s.dir);
    s.wait_for_lock_row(c->urls[1]);
    const auto second = s.sync(c->urls[1]);
    const auto r1 = first.wait();
    INFO(explain(r1) << "\n" << explain(second));
    CHECK(r1.exit_code == 0);
    CHECK(second.exit_code == 4);
    CHECK(second.err.rfind("crmsync: error: another run of campaign DEMO0000CAMPAIGN", 0) == 0);
    // Released at the end: the next run through a third node takes it at once.
    CHECK_FALSE(s.lock_row(c->urls[2]));
    const auto third = s.sync(c->urls[2]);
    INFO(explain(third));
    CHECK(third.exit_code == 0);
    s.drop(c->urls[0], s.prefix);
}

TEST_CASE("galera: a run whose node dies fails cleanly and the next continues on another node",
          "[galera][slow]") {
    const auto c = cluster();
    if (!c) {
        return;
    }
    GaleraSync s(campaign(400));
    const std::string reference = crmsync::testing::unique_prefix();
    {
        const auto r = crmsync::testing::run_crmsync(s.args(c->urls[0], reference), s.env(), s.dir);
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
    }
    // Node 2 first: the run goes through it until it dies; then through node 1 or 3.
    const std::string url = c->multi_host({1, 0, 2});
    s.fake.inject({"POST", k_contacts_path, fakes::FaultKind::slow, 0, {}, 300, 1000});
    crmsync::testing::CrmsyncProcess run(s.args(url, s.prefix, {"--batch-rows", "50", "--w", "1"}),
                                         s.env(), s.dir);
    s.wait_for_lock_row(c->urls[0]);
    // A commit or two land before the kill, so the run dies with work already durable.
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    // (The checkpoint moves only once every contact is written, seconds later: the kill
    // comes long before.)
    const auto before = s.checkpoint(c->urls[0]);
    REQUIRE(::kill(c->server_pid(1), SIGKILL) == 0);
    const auto failed = run.wait();
    s.fake.clear_faults();
    {
        INFO(explain(failed));
        CHECK(failed.exit_code == 1);
        CHECK(failed.err.find("crmsync: error:") != std::string::npos);
        CHECK(s.checkpoint(c->urls[0]) == before);
    }
    // The failed run released its lock through a live node, so the next run need not wait for
    // the lease; its URL still names the dead node first.
    CHECK_FALSE(s.lock_row(c->urls[2]));
    const auto next = s.sync(url);
    INFO(explain(next));
    REQUIRE(next.exit_code == 0);
    const auto expected = s.dump(c->urls[2], reference);
    const auto actual = s.dump(c->urls[2], s.prefix);
    for (const char* t : k_tables) {
        INFO(t);
        CHECK(actual.at(t).size() == expected.at(t).size());
        CHECK(actual.at(t) == expected.at(t));
    }
    s.drop(c->urls[0], reference);
    s.drop(c->urls[0], s.prefix);
    c->ensure_all_up();
}

TEST_CASE("galera: a multi-host URL skips hosts that do not answer", "[galera]") {
    const auto c = cluster();
    if (!c) {
        return;
    }
    GaleraSync s(campaign(5));
    const int down = crmsync::testing::closed_port();
    const int down_too = crmsync::testing::closed_port();
    SECTION("the first host down: the run goes through the second") {
        const std::string url = "mysql://crmsync:crmsync@127.0.0.1:" + std::to_string(down) +
                                ",127.0.0.1:" + std::to_string(c->ports[1]) + "/crmsync_test";
        const auto r = s.sync(url);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(crmsync::testing::count_rows(*crmsync::testing::open(c->urls[1]),
                                           s.prefix + "contacts") == 5);
        const std::string reached = "mysql://127.0.0.1:" + std::to_string(c->ports[1]);
        // doctor and status take the same URL and name the node they reached.
        const auto doctor = crmsync::testing::run_crmsync(
            {"doctor", "db_sync", "--campaign", s.fake.options().campaign_id, "--api-url",
             s.fake.base_url(), "--url", url, "--log-dir", s.dir.file("logs")},
            s.env(), s.dir);
        INFO(explain(doctor));
        // (The cluster's password is "crmsync", so the database name shows redacted.)
        CHECK(doctor.out.find("ok       target: " + reached + "/") != std::string::npos);
        const auto status =
            crmsync::testing::run_crmsync({"status", "--url", url, "--json"}, {}, s.dir);
        INFO(explain(status));
        CHECK(status.exit_code == 0);
        CHECK(status.out.find(s.prefix) != std::string::npos);
        s.drop(c->urls[1], s.prefix);
    }
    SECTION("every host down: one error names each host's failure, never the password") {
        const std::string url = "mysql://crmsync:Pw-9c1e77f0@127.0.0.1:" + std::to_string(down) +
                                ",127.0.0.1:" + std::to_string(down_too) + "/crmsync_test";
        const auto r = s.sync(url);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("cannot connect to MySQL at any of 2 hosts") != std::string::npos);
        CHECK(r.err.find("127.0.0.1:" + std::to_string(down) + ": ") != std::string::npos);
        CHECK(r.err.find("127.0.0.1:" + std::to_string(down_too) + ": ") != std::string::npos);
        CHECK(r.err.find("Pw-9c1e77f0") == std::string::npos);
        CHECK(r.out.find("Pw-9c1e77f0") == std::string::npos);
    }
}

TEST_CASE("galera: a lock is taken over only after its lease expired", "[galera]") {
    const auto c = cluster();
    if (!c) {
        return;
    }
    GaleraSync s(campaign(5));
    {
        const auto r = s.sync(c->urls[0]); // creates crmsync_locks
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
    }
    auto db = crmsync::testing::open(c->urls[1]);
    // A run that died with -9 left its row behind, with an hour of lease left.
    db->execute("INSERT INTO crmsync_locks (job, owner, holder, expires_at, taken_at) VALUES "
                "(:p0, 'dead0000', 'crashed:1', UTC_TIMESTAMP(3) + INTERVAL 1 HOUR, "
                "UTC_TIMESTAMP(3))",
                {s.job()});
    {
        const auto r = s.sync(c->urls[2]);
        INFO(explain(r));
        CHECK(r.exit_code == 4);
    }
    db->execute("UPDATE crmsync_locks SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND "
                "WHERE job = :p0",
                {s.job()});
    {
        const auto r = s.sync(c->urls[2]);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
    }
    CHECK_FALSE(s.lock_row(c->urls[1]));
    s.drop(c->urls[0], s.prefix);
}

TEST_CASE("galera: a running job renews its lease, so a short lease is not taken over",
          "[galera]") {
    const auto c = cluster();
    if (!c) {
        return;
    }
    GaleraSync s(campaign(20));
    // One page that takes far longer than two leases, with no commit meanwhile: the second
    // run starts 2.5 s in, and has 3.5 s to ask for the lock while the first still holds it.
    s.fake.inject({"POST", k_contacts_path, fakes::FaultKind::slow, 0, {}, 6000, 1});
    crmsync::testing::CrmsyncProcess first(s.args(c->urls[0]),
                                           s.env({{"CRMSYNC_LOCK_LEASE_SECONDS", "1"}}), s.dir);
    s.wait_for_lock_row(c->urls[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    const auto second = crmsync::testing::run_crmsync(s.args(c->urls[1]), s.env(), s.dir);
    const auto r1 = first.wait();
    INFO(explain(r1) << "\n" << explain(second));
    CHECK(second.exit_code == 4);
    CHECK(r1.exit_code == 0);
    s.drop(c->urls[0], s.prefix);
}

TEST_CASE("galera: a run whose lock was taken over cannot commit", "[galera]") {
    const auto c = cluster();
    if (!c) {
        return;
    }
    GaleraSync s(campaign(20));
    s.fake.inject({"POST", k_contacts_path, fakes::FaultKind::slow, 0, {}, 1500, 1});
    crmsync::testing::CrmsyncProcess first(s.args(c->urls[0]), s.env(), s.dir);
    s.wait_for_lock_row(c->urls[1]);
    // What a run on another node does once the lease expired.
    crmsync::testing::open(c->urls[1])
        ->execute("UPDATE crmsync_locks SET owner = 'other0000' WHERE job = :p0", {s.job()});
    const auto r = first.wait();
    INFO(explain(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("taken over by another run") != std::string::npos);
    CHECK_FALSE(s.checkpoint(c->urls[1]));
    // Its row stays the other run's.
    CHECK(s.lock_row(c->urls[1]));
    crmsync::testing::open(c->urls[1])
        ->execute("DELETE FROM crmsync_locks WHERE job = :p0", {s.job()});
    s.drop(c->urls[0], s.prefix);
}
