// crmsync callcenter end to end: the real binary as a child process, the call-center fake
// in-process on loopback, real target databases (SQLite always; PostgreSQL and MariaDB when
// tests/run.sh started them), the webhook receiver for http(s) targets.

#include "tests/integration/support.hpp"

#include "tests/fakes/callcenter/callcenter_fake.hpp"
#include "tests/fakes/webhook_receiver/webhook_receiver.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <set>
#include <thread>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;
using nlohmann::json;

namespace {

constexpr long long k_base = 1'717'200'000'000; // 2024-06-01T00:00:00Z
const std::string k_sip_password = "S1p-Pa55-9f3e7c";
const std::string k_hook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const std::vector<std::string> k_tables{"contacts",    "contact_groups", "contact_group_members",
                                        "activities",  "agents",         "roles",
                                        "sip_accounts"};

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

json contact(int i, long long updated) {
    return {{"_id", "c" + std::to_string(i)},
            {"firstName", "First" + std::to_string(i)},
            {"lastName", "Last"},
            {"phone", "+8490000" + std::to_string(i)},
            {"createdAt", k_base},
            {"updatedAt", updated},
            {"deleted", false}};
}

json activity(int i) {
    json a = {{"_id", "a" + std::to_string(i)},
              {"creator", "ag1"},
              {"idContact", "c" + std::to_string(i % 10)},
              {"text", "activity " + std::to_string(i)},
              {"createdAt", k_base + i},
              {"updatedAt", k_base + i},
              {"deleted", false}};
    if (i % 3 == 0) {
        a["type"] = "calllog";
        a["body"] = {{"idCalllog", "call" + std::to_string(i)},
                     {"status", "success"},
                     {"duration", 42},
                     {"direction", "outgoing"},
                     {"source", "100"},
                     {"destination", "0900"},
                     {"start", k_base + 123},
                     {"end", k_base + 42'123},
                     {"recordUrl", "https://rec.example/" + std::to_string(i)},
                     {"codec", "opus"}};
    } else if (i % 3 == 1) {
        a["type"] = "reminder";
        a["body"] = {
            {"remindedAgent", "ag2"}, {"duedate", k_base + 86'400'000}, {"status", "unchecked"}};
    } else {
        a["type"] = "note";
    }
    return a;
}

void seed(fakes::CallcenterFake& fake, const std::string& cc, int contacts, int activities) {
    for (int i = 0; i < contacts; ++i) {
        fake.put(cc, "contacts", contact(i, k_base + 10 * i));
    }
    for (int g = 0; g < 3; ++g) {
        fake.put(cc, "contact_groups",
                 {{"_id", "g" + std::to_string(g)},
                  {"name", "Group " + std::to_string(g)},
                  {"contactList", {"c0", "c1", "c" + std::to_string(g + 2)}},
                  {"createdAt", k_base},
                  {"updatedAt", k_base + g},
                  {"deleted", false}});
    }
    for (int i = 0; i < activities; ++i) {
        fake.put(cc, "activities", activity(i));
    }
    for (int i = 0; i < 3; ++i) {
        fake.put(cc, "agents",
                 {{"_id", "ag" + std::to_string(i)},
                  {"role", "agent"},
                  {"idSip", "1900" + std::to_string(i)},
                  {"fullName", "Agent " + std::to_string(i)},
                  {"createdAt", k_base},
                  {"updatedAt", k_base + i},
                  {"deleted", false}});
    }
    fake.put(cc, "roles",
             {{"_id", "r1"}, {"name", "admin"}, {"createdAt", k_base}, {"updatedAt", k_base}});
    fake.put(cc, "roles",
             {{"_id", "r2"}, {"name", "agent"}, {"createdAt", k_base}, {"updatedAt", k_base}});
    for (int i = 0; i < 2; ++i) {
        fake.put(cc, "sip_accounts",
                 {{"_id", "1900" + std::to_string(i)},
                  {"domain", "sip.example"},
                  {"extension", "10" + std::to_string(i)},
                  {"password", k_sip_password},
                  {"proxy", "proxy.example:5060"},
                  {"createdAt", k_base},
                  {"updatedAt", k_base + i},
                  {"deleted", false}});
    }
}

struct Fixture {
    TempDir dir;
    fakes::CallcenterFake fake;
    std::string url;
    std::string prefix = crmsync::testing::unique_prefix();

    explicit Fixture(std::string target_url, fakes::CallcenterFakeOptions options = {})
        : fake(std::move(options)), url(std::move(target_url)) {
        fake.start();
    }
    explicit Fixture(fakes::CallcenterFakeOptions options = {}) : fake(std::move(options)) {
        url = "sqlite://" + dir.file("target.db");
        fake.start();
    }

    std::vector<std::string> args(const std::string& cc, std::vector<std::string> extra = {},
                                  const std::string& table_prefix = "") const {
        std::vector<std::string> a{"callcenter",
                                   "--api-url",
                                   fake.base_url(),
                                   "--callcenter",
                                   cc,
                                   "--url",
                                   url,
                                   "--table-prefix",
                                   table_prefix.empty() ? prefix : table_prefix,
                                   "--log-dir",
                                   dir.file("logs"),
                                   "--summary-json",
                                   dir.file("summary.json"),
                                   "--retry-base",
                                   "10ms",
                                   "--state",
                                   dir.file("state.db")};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    std::map<std::string, std::string> env() const {
        return {{"CRMSYNC_CALLCENTER_USER", "cc-user"}, {"CRMSYNC_CALLCENTER_SECRET", "cc-secret"}};
    }
    ProcessResult run(const std::string& cc = "cc1", std::vector<std::string> extra = {},
                      const std::string& table_prefix = "") const {
        return crmsync::testing::run_crmsync(args(cc, std::move(extra), table_prefix), env(), dir);
    }
    std::string table(const std::string& name) const { return prefix + name; }
    std::unique_ptr<sql::Database> db() const { return crmsync::testing::open(url); }
    json summary() const {
        return json::parse(crmsync::testing::read_file(dir.file("summary.json")));
    }
    std::optional<json> checkpoint(const std::string& cc = "cc1") const {
        auto d = db();
        const auto rows = d->query("SELECT checkpoint FROM crmsync_state WHERE job = " +
                                       d->dialect().placeholder("p", 0),
                                   {"callcenter:" + cc + ":" + prefix});
        if (rows.empty() || !rows[0][0]) {
            return std::nullopt;
        }
        return json::parse(*rows[0][0]);
    }
    std::string value(const std::string& tbl, const std::string& column, const std::string& id) {
        auto d = db();
        const auto rows = d->query("SELECT " + d->dialect().quote(column) + " FROM " +
                                       d->dialect().quote(table(tbl)) +
                                       " WHERE id = " + d->dialect().placeholder("p", 0),
                                   {id});
        return rows.empty() ? "<no row>" : rows[0][0].value_or("NULL");
    }
    // A timestamp as the database writes it as text (reading it as a date drops the ms).
    std::string time_text(const std::string& tbl, const std::string& column,
                          const std::string& id) {
        auto d = db();
        const std::string quoted = d->dialect().quote(column);
        const std::string expr = url.starts_with("sqlite") ? quoted
                                 : url.starts_with("mysql") || url.starts_with("mariadb")
                                     ? "CAST(" + quoted + " AS CHAR)"
                                     : "CAST(" + quoted + " AS TEXT)";
        const auto rows = d->query("SELECT " + expr + " FROM " + d->dialect().quote(table(tbl)) +
                                       " WHERE id = " + d->dialect().placeholder("p", 0),
                                   {id});
        return rows.empty() ? "<no row>" : rows[0][0].value_or("NULL");
    }
    // Every row of every table, for comparing two runs.
    std::map<std::string, std::vector<std::string>> dump(const std::string& with_prefix) const {
        auto d = db();
        std::map<std::string, std::vector<std::string>> out;
        for (const auto& t : k_tables) {
            out[t] = crmsync::testing::dump_table(*d, with_prefix + t);
        }
        return out;
    }
    void drop() const {
        auto d = db();
        for (const auto& t : k_tables) {
            if (crmsync::testing::table_exists(*d, prefix + t)) {
                d->execute("DROP TABLE " + d->dialect().quote(prefix + t));
            }
        }
    }
};

// A boolean column as each database hands it back as text.
bool truthy(const std::string& value) { return value == "1" || value == "t" || value == "true"; }

bool contains_password(const std::string& text) {
    return text.find(k_sip_password) != std::string::npos;
}

} // namespace

TEST_CASE("callcenter syncs every stream into each target, incrementally",
          "[sqlite][postgres][mysql]") {
    TempDir targets_dir;
    for (const auto& target : crmsync::testing::targets(targets_dir)) {
        CAPTURE(target.name);
        Fixture f(target.url);
        seed(f.fake, "cc1", 25, 40);

        const auto first = f.run("cc1", {"--page-size", "7"});
        INFO(explain(first));
        REQUIRE(first.exit_code == 0);
        auto db = f.db();
        CHECK(crmsync::testing::count_rows(*db, f.table("contacts")) == 25);
        CHECK(crmsync::testing::count_rows(*db, f.table("contact_groups")) == 3);
        CHECK(crmsync::testing::count_rows(*db, f.table("contact_group_members")) == 9);
        CHECK(crmsync::testing::count_rows(*db, f.table("activities")) == 40);
        CHECK(crmsync::testing::count_rows(*db, f.table("agents")) == 3);
        CHECK(crmsync::testing::count_rows(*db, f.table("roles")) == 2);
        CHECK(crmsync::testing::count_rows(*db, f.table("sip_accounts")) == 2);
        CHECK(f.value("activities", "type", "cc1/a3") == "calllog");
        CHECK(f.value("activities", "call_status", "cc1/a3") == "success");
        CHECK(f.value("activities", "direction", "cc1/a3") == "outgoing");
        CHECK(f.value("activities", "destination", "cc1/a3") == "0900");
        CHECK(f.time_text("activities", "started_at", "cc1/a3")
                  .starts_with("2024-06-01 00:00:00.123"));
        CHECK(
            f.time_text("activities", "ended_at", "cc1/a3").starts_with("2024-06-01 00:00:42.123"));
        CHECK(f.value("activities", "reminder_status", "cc1/a4") == "unchecked");
        CHECK(f.time_text("activities", "due_at", "cc1/a4").starts_with("2024-06-02 00:00:00"));
        CHECK(f.value("activities", "_id", "cc1/a4") == "a4");
        CHECK(f.value("activities", "call_center_id", "cc1/a4") == "cc1");
        CHECK(json::parse(f.value("activities", "_raw", "cc1/a3"))["body"]["codec"] == "opus");
        const auto cp = f.checkpoint();
        REQUIRE(cp.has_value());
        CHECK((*cp)["streams"]["contacts"]["changed"] == k_base + 240);
        CHECK((*cp)["streams"]["contacts"]["id"] == "c24");
        CHECK((*cp)["streams"].size() == 6);
        for (const auto& t : k_tables) {
            for (const auto& row : crmsync::testing::dump_table(*db, f.table(t))) {
                CHECK_FALSE(contains_password(row));
            }
        }

        // Changes: an update, a tombstone, a group losing a member.
        auto c1 = contact(1, k_base + 1000);
        c1["firstName"] = "Renamed";
        f.fake.put("cc1", "contacts", c1);
        auto c2 = contact(2, k_base + 1001);
        c2["deleted"] = true;
        f.fake.put("cc1", "contacts", c2);
        f.fake.put("cc1", "contact_groups",
                   {{"_id", "g0"},
                    {"name", "Group 0"},
                    {"contactList", {"c0", "c7"}},
                    {"createdAt", k_base},
                    {"updatedAt", k_base + 1002},
                    {"deleted", false}});
        const auto before = f.fake.requests().size();
        const auto second = f.run("cc1", {"--lookback", "0"});
        INFO(explain(second));
        REQUIRE(second.exit_code == 0);
        CHECK(f.value("contacts", "first_name", "cc1/c1") == "Renamed");
        CHECK(truthy(f.value("contacts", "deleted", "cc1/c2")));
        CHECK(crmsync::testing::count_rows(*db, f.table("contacts")) == 25);
        CHECK(truthy(f.value("contact_group_members", "deleted", "cc1/g0/c1")));
        CHECK(truthy(f.value("contact_group_members", "deleted", "cc1/g0/c2")));
        CHECK_FALSE(truthy(f.value("contact_group_members", "deleted", "cc1/g0/c7")));
        CHECK_FALSE(truthy(f.value("contact_group_members", "deleted", "cc1/g0/c0")));
        // With no lookback the second run asks from the stored (updatedAt, _id) on.
        const auto requests = f.fake.requests();
        bool asked_after = false;
        for (std::size_t i = before; i < requests.size(); ++i) {
            if (requests[i].path.ends_with("/contacts")) {
                asked_after =
                    asked_after || requests[i].query.find("afterId=c24") != std::string::npos;
            }
        }
        CHECK(asked_after);
        CHECK(f.summary()["fetched"].get<long>() < 20);
        f.drop();
    }
}

TEST_CASE("callcenter keeps two call centers apart in one set of tables", "[sqlite]") {
    Fixture f;
    seed(f.fake, "cc1", 5, 6);
    seed(f.fake, "cc2", 4, 3);
    REQUIRE(f.run("cc1").exit_code == 0);
    const auto second = f.run("cc2");
    INFO(explain(second));
    REQUIRE(second.exit_code == 0);
    auto db = f.db();
    CHECK(crmsync::testing::count_rows(*db, f.table("contacts")) == 9);
    CHECK(crmsync::testing::count_rows(*db, f.table("contacts"), "call_center_id = 'cc2'") == 4);
    CHECK(crmsync::testing::count_rows(*db, f.table("activities"), "call_center_id = 'cc1'") == 6);
    CHECK(f.value("contacts", "_id", "cc2/c3") == "c3");
    CHECK(f.checkpoint("cc1").has_value());
    CHECK(f.checkpoint("cc2").has_value());
}

TEST_CASE("callcenter pages by keyset: ties and records updated while paging", "[sqlite]") {
    fakes::CallcenterFakeOptions options;
    options.has_more = false;
    Fixture f(options);
    for (int i = 0; i < 10; ++i) {
        f.fake.put("cc1", "contacts", contact(i, k_base)); // all tied on updatedAt
    }
    // While the run pages: c0 (already read) and c8 (not yet read) are updated.
    f.fake.before_request([&f](std::size_t n) {
        if (n == 2) {
            auto c0 = contact(0, k_base + 500);
            c0["firstName"] = "Moved0";
            f.fake.put("cc1", "contacts", c0);
            auto c8 = contact(8, k_base + 600);
            c8["firstName"] = "Moved8";
            f.fake.put("cc1", "contacts", c8);
        }
    });
    const auto r = f.run("cc1", {"--streams", "contacts", "--page-size", "3"});
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    auto db = f.db();
    CHECK(crmsync::testing::count_rows(*db, f.table("contacts")) == 10);
    CHECK(f.value("contacts", "first_name", "cc1/c0") == "Moved0");
    CHECK(f.value("contacts", "first_name", "cc1/c8") == "Moved8");
    // Page 2 continued inside the tie: updatedFrom = the tie, afterId = the last id read.
    const auto requests = f.fake.requests();
    REQUIRE(requests.size() >= 2);
    CHECK(requests[1].query.find("afterId=c2") != std::string::npos);
    CHECK(requests[1].query.find("updatedFrom=" + std::to_string(k_base)) != std::string::npos);
}

TEST_CASE("callcenter auth modes, refused credentials and retried faults", "[sqlite]") {
    SECTION("apikey and bearer send the secret their way") {
        for (const std::string mode : {"apikey", "bearer"}) {
            fakes::CallcenterFakeOptions options;
            options.auth = mode;
            Fixture f(options);
            seed(f.fake, "cc1", 2, 2);
            const auto r = f.run("cc1", {"--auth", mode});
            INFO(explain(r));
            CHECK(r.exit_code == 0);
        }
    }
    SECTION("refused credentials exit 1 with one line naming the call center and auth mode") {
        Fixture f;
        seed(f.fake, "cc1", 2, 2);
        const auto r = crmsync::testing::run_crmsync(
            f.args("cc1"),
            {{"CRMSYNC_CALLCENTER_USER", "cc-user"}, {"CRMSYNC_CALLCENTER_SECRET", "wrong-pw"}},
            f.dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("crmsync: error:") != std::string::npos);
        CHECK(r.err.find("call center cc1") != std::string::npos);
        CHECK(r.err.find("auth mode basic") != std::string::npos);
        CHECK(r.err.find("wrong-pw") == std::string::npos);
    }
    SECTION("429 and 503 with Retry-After, 500, resets and cut-off bodies are retried") {
        Fixture f;
        seed(f.fake, "cc1", 12, 12);
        fakes::Fault f429;
        f429.status = 429;
        f429.retry_after = "1";
        f.fake.inject(f429);
        fakes::Fault f503;
        f503.status = 503;
        f503.retry_after = "0";
        f.fake.inject(f503);
        fakes::Fault f500;
        f500.status = 500;
        f.fake.inject(f500);
        fakes::Fault cut;
        cut.kind = fakes::FaultKind::truncate;
        f.fake.inject(cut);
        fakes::Fault reset;
        reset.kind = fakes::FaultKind::reset;
        f.fake.inject(reset);
        const auto r = f.run("cc1", {"--page-size", "5"});
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        // libcurl itself resends a request whose reused keep-alive connection was reset, so
        // that fault may not count as a retry.
        CHECK(f.summary()["retries"].get<long>() >= 4);
        auto db = f.db();
        CHECK(crmsync::testing::count_rows(*db, f.table("contacts")) == 12);
        CHECK(crmsync::testing::count_rows(*db, f.table("activities")) == 12);
    }
}

TEST_CASE("callcenter rejects records without _id or with wrong types", "[sqlite]") {
    Fixture f;
    seed(f.fake, "cc1", 3, 3);
    f.fake.put("cc1", "contacts", {{"firstName", "nobody"}, {"updatedAt", k_base - 5}});
    f.fake.put("cc1", "activities",
               {{"_id", "bad"},
                {"type", "calllog"},
                {"body", {{"start", "yesterday"}}},
                {"updatedAt", k_base - 5}});
    f.fake.put("cc1", "sip_accounts",
               {{"_id", "19009"}, {"password", k_sip_password}, {"updatedAt", "soon"}});
    const auto r = f.run();
    INFO(explain(r));
    CHECK(r.exit_code == 3);
    auto db = f.db();
    CHECK(crmsync::testing::count_rows(*db, "crmsync_rejects") == 3);
    CHECK(crmsync::testing::count_rows(*db, f.table("contacts")) == 3);
    for (const auto& row : crmsync::testing::dump_table(*db, "crmsync_rejects")) {
        CHECK_FALSE(contains_password(row));
    }
}

TEST_CASE("callcenter killed mid-run, then rerun, equals an uninterrupted run",
          "[sqlite][postgres][mysql]") {
    TempDir targets_dir;
    for (const auto& target : crmsync::testing::targets(targets_dir)) {
        CAPTURE(target.name);
        Fixture f(target.url);
        seed(f.fake, "cc1", 50, 600);
        const std::string clean_prefix = crmsync::testing::unique_prefix();
        const auto clean = f.run("cc1", {"--page-size", "20"}, clean_prefix);
        INFO(explain(clean));
        REQUIRE(clean.exit_code == 0);

        // Slow answers, so the kill lands while activities are being paged.
        f.fake.before_request(
            [](std::size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(15)); });
        const auto before = f.fake.requests().size();
        crmsync::testing::CrmsyncProcess child(f.args("cc1", {"--page-size", "20"}), f.env(),
                                               f.dir);
        while (f.fake.requests().size() < before + 12) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        child.kill(SIGKILL);
        const auto killed = child.wait();
        CHECK(killed.exit_code == 128 + SIGKILL);
        f.fake.before_request({});
        const auto rerun = f.run("cc1", {"--page-size", "20"});
        INFO(explain(rerun));
        REQUIRE(rerun.exit_code == 0);
        CHECK(f.dump(f.prefix) == f.dump(clean_prefix));
        f.drop();
        auto db = f.db();
        for (const auto& t : k_tables) {
            db->execute("DROP TABLE " + db->dialect().quote(clean_prefix + t));
        }
    }
}

TEST_CASE("callcenter into an http(s) URL posts each row once, signed, without the SIP password",
          "[http][sqlite]") {
    Fixture f;
    seed(f.fake, "cc1", 6, 9);
    fakes::WebhookReceiverOptions options;
    options.secret = k_hook_secret;
    fakes::WebhookReceiver receiver(options);
    receiver.start();
    auto env = f.env();
    env["HOOK_SECRET"] = k_hook_secret;
    auto args = f.args("cc1", {"--webhook-secret-env", "HOOK_SECRET", "--webhook-rate", "0"});
    args[6] = receiver.base_url() + "/hook";
    const auto r = crmsync::testing::run_crmsync(args, env, f.dir);
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    std::map<std::string, std::set<std::string>> keys;
    for (const auto& req : receiver.requests()) {
        CHECK_FALSE(contains_password(req.body));
        if (!req.acknowledged()) {
            continue;
        }
        CHECK(req.signature == fakes::SignatureCheck::valid);
        const auto body = json::parse(req.body);
        CHECK(keys[body["table"].get<std::string>()].insert(body["key"].get<std::string>()).second);
    }
    CHECK(keys[f.table("contacts")].size() == 6);
    CHECK(keys[f.table("activities")].size() == 9);
    CHECK(keys[f.table("sip_accounts")].size() == 2);
    CHECK(keys[f.table("contact_group_members")].size() == 9);

    SECTION("no output or file of any run holds the SIP password") {
        const auto sql = f.run("cc1");
        REQUIRE(sql.exit_code == 0);
        CHECK_FALSE(contains_password(sql.out + sql.err + r.out + r.err));
        for (const auto& file : crmsync::testing::list_files(f.dir.path())) {
            CAPTURE(file);
            CHECK_FALSE(contains_password(crmsync::testing::read_file(file)));
        }
    }
}
