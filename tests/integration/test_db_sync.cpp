// crmsync db_sync end to end: the real binary as a child process, the Dialfire emulator
// in-process on loopback, real target databases (SQLite always; PostgreSQL and MariaDB when
// tests/run.sh started them).

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include "drivers/dialfire/sync.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/sql/schema_manager.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <random>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

// Sets the process's JSON member order for a scope, and back to the default after it.
struct MemberOrderScope {
    explicit MemberOrderScope(sql::JsonMemberOrder order) { sql::set_json_member_order(order); }
    MemberOrderScope(const MemberOrderScope&) = delete;
    MemberOrderScope& operator=(const MemberOrderScope&) = delete;
    ~MemberOrderScope() { sql::set_json_member_order(sql::JsonMemberOrder::by_name); }
};

// The JSON texts a run wrote into `db` list members in the order of its dialect (jsonb's on
// PostgreSQL, by name elsewhere): each raw text of the job's rejects (a text column, so kept as
// sent) is the text written in that order. At least one of them differs in the other order, so
// a run that ignored its target's order fails this.
void check_member_order_of_rejects(sql::Database& db, const std::string& job) {
    const auto& d = db.dialect();
    const auto raws = db.query("SELECT " + d.quote("raw") + " FROM " + d.quote("crmsync_rejects") +
                                   " WHERE " + d.quote("job") + " = " + d.placeholder("p", 0) +
                                   " AND " + d.quote("raw") + " IS NOT NULL",
                               {job});
    REQUIRE_FALSE(raws.empty());
    const auto expected = d.json_member_order();
    const auto other = expected == sql::JsonMemberOrder::jsonb ? sql::JsonMemberOrder::by_name
                                                               : sql::JsonMemberOrder::jsonb;
    bool orders_differ = false;
    for (const auto& row : raws) {
        const auto parsed = nlohmann::json::parse(*row[0]);
        {
            const MemberOrderScope scope(expected);
            CHECK(sql::to_json_text(parsed) == *row[0]);
        }
        const MemberOrderScope scope(other);
        orders_differ = orders_differ || sql::to_json_text(parsed) != *row[0];
    }
    CHECK(orders_differ);
}

const char* const k_tables[] = {"contacts", "transactions", "connections", "recordings",
                                "inbound_calls"};

fakes::FakeCampaignOptions campaign(std::size_t contacts) {
    fakes::FakeCampaignOptions o;
    o.contacts = contacts;
    o.inbound_calls = 30;
    o.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
    return o;
}

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

struct SyncFixture {
    TempDir dir;
    fakes::DialfireFake fake;
    std::string url;
    std::string prefix = crmsync::testing::unique_prefix();

    SyncFixture(fakes::FakeCampaignOptions options, std::string target_url)
        : fake(std::move(options)), url(std::move(target_url)) {
        fake.start();
    }

    std::vector<std::string> args(std::vector<std::string> extra = {}) const {
        std::vector<std::string> a{"db_sync",
                                   "--campaign",
                                   fake.options().campaign_id,
                                   "--api-url",
                                   fake.base_url(),
                                   "--url",
                                   url,
                                   "--table-prefix",
                                   prefix,
                                   "--log-dir",
                                   dir.file("logs"),
                                   "--summary-json",
                                   dir.file("summary.json"),
                                   "--retry-base",
                                   "20ms"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    std::map<std::string, std::string> env() const {
        return {{"CRMSYNC_TOKEN", fake.options().token}};
    }

    ProcessResult sync(std::vector<std::string> extra = {}) const {
        return crmsync::testing::run_crmsync(args(std::move(extra)), env(), dir);
    }

    nlohmann::json summary() const {
        return nlohmann::json::parse(crmsync::testing::read_file(dir.file("summary.json")));
    }

    long inserted(const std::string& table) const {
        const auto s = summary();
        const auto it = s["tables"].find(prefix + table);
        return it == s["tables"].end() ? 0 : it->at("inserted").get<long>();
    }

    std::map<std::string, std::vector<std::string>> dump(const std::string& with_prefix) const {
        auto db = crmsync::testing::open(url);
        std::map<std::string, std::vector<std::string>> tables;
        for (const char* t : k_tables) {
            tables[t] = crmsync::testing::dump_table(*db, with_prefix + t);
        }
        return tables;
    }

    std::optional<std::string> checkpoint() const {
        auto db = crmsync::testing::open(url);
        if (!crmsync::testing::table_exists(*db, "crmsync_state")) {
            return std::nullopt;
        }
        const auto rows =
            db->query("SELECT " + db->dialect().quote("checkpoint") + " FROM " +
                          db->dialect().quote("crmsync_state") + " WHERE " +
                          db->dialect().quote("job") + " = " + db->dialect().placeholder("p", 0),
                      {"db_sync:" + fake.options().campaign_id + ":" + prefix});
        return rows.empty() ? std::nullopt : rows[0][0];
    }

    // Every contact request answered 60 ms late, so that a run lasts long enough for a test to
    // interrupt it; clear with fake.clear_faults().
    void slow_contact_requests() {
        fake.inject({"POST",
                     "/api/campaigns/" + fake.options().campaign_id + "/contacts/",
                     fakes::FaultKind::slow,
                     0,
                     {},
                     60,
                     1000});
    }
    // Runs the job uninterrupted into a table prefix of its own, for finish_like() to compare
    // with; returns that prefix.
    std::string run_reference() const {
        const std::string reference_prefix = crmsync::testing::unique_prefix();
        auto a = args();
        *(std::find(a.begin(), a.end(), "--table-prefix") + 1) = reference_prefix;
        const auto r = crmsync::testing::run_crmsync(a, env(), dir);
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        return reference_prefix;
    }
    // Runs the job once more, which must succeed and leave every table as the reference run
    // left its own; then drops the reference's tables.
    void finish_like(const std::string& reference_prefix) const {
        const auto r = sync();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        const auto expected = dump(reference_prefix);
        const auto actual = dump(prefix);
        for (const char* t : k_tables) {
            INFO(t);
            CHECK(actual.at(t).size() == expected.at(t).size());
            CHECK(actual.at(t) == expected.at(t));
        }
        auto db = crmsync::testing::open(url);
        crmsync::testing::drop_prefixed(*db, reference_prefix);
    }
    ~SyncFixture() {
        try {
            auto db = crmsync::testing::open(url);
            crmsync::testing::drop_prefixed(*db, prefix);
        } catch (...) {
        }
    }
};

} // namespace

TEST_CASE("db_sync loads a campaign and then only what changed", "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            SyncFixture f(campaign(120), target.url);
            const auto first = f.sync();
            INFO(explain(first));
            REQUIRE(first.exit_code == 0);
            CHECK(f.inserted("contacts") == 120);
            CHECK(f.inserted("transactions") == 360);
            CHECK(f.inserted("inbound_calls") == 30);
            CHECK(first.out.rfind("crmsync: db_sync " + f.fake.options().campaign_id + " ok", 0) ==
                  0);
            const auto stored = f.checkpoint();
            REQUIRE(stored);
            auto db = crmsync::testing::open(target.url);
            CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts") == 120);
            CHECK(crmsync::testing::count_rows(*db, f.prefix + "recordings") > 0);
            CHECK(crmsync::testing::count_rows(*db, f.prefix + "connections") > 0);

            SECTION("a second run fetches no contact whose md5 is unchanged") {
                f.fake.reset_stats();
                const auto second = f.sync();
                INFO(explain(second));
                REQUIRE(second.exit_code == 0);
                CHECK(f.fake.request_count("/api/campaigns/" + f.fake.options().campaign_id +
                                           "/contacts/") -
                          f.fake.request_count("/api/campaigns/" + f.fake.options().campaign_id +
                                               "/contacts/list") ==
                      0);
                CHECK(f.summary()["fetched"].get<long>() == 0);
            }

            SECTION("a changed contact is fetched again and its new transaction stored") {
                const auto touched = f.fake.touch_contacts(3);
                const auto before = crmsync::testing::count_rows(*db, f.prefix + "transactions");
                const auto second = f.sync();
                INFO(explain(second));
                REQUIRE(second.exit_code == 0);
                CHECK(f.summary()["tables"][f.prefix + "contacts"]["updated"].get<long>() == 3);
                CHECK(crmsync::testing::count_rows(*db, f.prefix + "transactions") == before + 3);
            }

            SECTION("a full refresh finds every row unchanged") {
                const auto again = f.sync({"--full-refresh"});
                INFO(explain(again));
                REQUIRE(again.exit_code == 0);
                const auto s = f.summary();
                CHECK(s["tables"][f.prefix + "contacts"]["unchanged"].get<long>() == 120);
                CHECK(s["tables"][f.prefix + "contacts"]["updated"].get<long>() == 0);
                CHECK(s["tables"][f.prefix + "transactions"]["inserted"].get<long>() == 0);
            }

            SECTION("a custom field added to the campaign becomes a column on the next run") {
                f.fake.add_custom_field("Kundennummer neu", "number");
                f.fake.touch_contacts(2);
                const auto second = f.sync();
                INFO(explain(second));
                REQUIRE(second.exit_code == 0);
                CHECK(crmsync::testing::dump_table(*db, f.prefix + "contacts", {})
                          .front()
                          .find("Kundennummer neu=") != std::string::npos);
            }
        }
    }
}

// MySQL and MariaDB on Windows store table names lower-cased and compare them without case
// (lower_case_table_names=1; macOS has 2). A prefix with capitals is then listed back in lower
// case: every run must still find its tables (no CREATE again, no column "added" twice) and
// write into them. tests/run.sh starts a second MariaDB with that setting for this test.
TEST_CASE("db_sync with a mixed-case prefix into MariaDB with lower_case_table_names=1",
          "[mysql]") {
    const char* url = std::getenv("CRMSYNC_TEST_MYSQL_LCTN_URL");
    if (url == nullptr || *url == '\0') {
        const char* ci = std::getenv("CI");
        if (ci != nullptr && std::string(ci) == "true") {
            FAIL("no MariaDB with lower_case_table_names=1: tests/run.sh could not start it");
        }
        WARN("CRMSYNC_TEST_MYSQL_LCTN_URL unset: run through tests/run.sh");
        return;
    }
    auto db = crmsync::testing::open(url);
    REQUIRE(db->query("SELECT @@lower_case_table_names").at(0).at(0) ==
            std::optional<std::string>("1"));
    SyncFixture f(campaign(120), url);
    f.prefix = "Mixed_Case_" + f.prefix;

    SECTION("the schema step finds the tables it created under their stored names") {
        sql::Table table;
        table.name = f.prefix + "Notes";
        table.primary_key = "id";
        table.columns = {{"id", sql::ColumnType::key}, {"Label", sql::ColumnType::text}};
        table.indexes = {{{"Label"}, false}};
        sql::SchemaManager schema(*db);
        const auto created = schema.ensure(table);
        CHECK(created.created_tables.size() == 1);
        const auto again = schema.ensure(table);
        CHECK(again.created_tables.empty());
        CHECK(again.added_columns.empty());
        CHECK(again.created_indexes.empty());
        db->execute("DROP TABLE " + db->dialect().quote(table.name));
    }

    SECTION("a first load, a run with nothing to do, changes, and a full refresh") {
        const auto first = f.sync();
        INFO(explain(first));
        REQUIRE(first.exit_code == 0);
        CHECK(f.inserted("contacts") == 120);
        CHECK(f.inserted("transactions") == 360);
        CHECK(f.inserted("inbound_calls") == 30);
        CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts") == 120);
        REQUIRE(f.checkpoint());
        // Runs of the same second share a log file, so lines are counted over all of them.
        const auto schema_lines_logged = [&](const std::string& what) {
            std::size_t n = 0;
            for (const auto& file : crmsync::testing::list_files(f.dir.file("logs"))) {
                const auto text = crmsync::testing::read_file(file);
                for (auto at = text.find(what); at != std::string::npos;
                     at = text.find(what, at + 1)) {
                    ++n;
                }
            }
            return n;
        };
        const auto created_by_first = schema_lines_logged("created table");
        CHECK(created_by_first >= 5);

        const auto idle = f.sync();
        INFO(explain(idle));
        REQUIRE(idle.exit_code == 0);
        CHECK(f.summary()["fetched"].get<long>() == 0);

        f.fake.touch_contacts(3);
        const auto before = crmsync::testing::count_rows(*db, f.prefix + "transactions");
        const auto changed = f.sync();
        INFO(explain(changed));
        REQUIRE(changed.exit_code == 0);
        CHECK(f.summary()["tables"][f.prefix + "contacts"]["updated"].get<long>() == 3);
        CHECK(crmsync::testing::count_rows(*db, f.prefix + "transactions") == before + 3);

        const auto refresh = f.sync({"--full-refresh"});
        INFO(explain(refresh));
        REQUIRE(refresh.exit_code == 0);
        CHECK(f.summary()["tables"][f.prefix + "contacts"]["unchanged"].get<long>() == 120);

        // Only the first run created tables, and no run added a column.
        CHECK(schema_lines_logged("created table") == created_by_first);
        CHECK(schema_lines_logged("added column") == 0);
    }
}

namespace {

// A TargetWriter that counts what the source asks of it.
class AskedSink final : public pipeline::Sink {
public:
    explicit AskedSink(pipeline::TargetWriter& inner) : m_inner(inner) {}

    bool lock() override { return m_inner.lock(); }
    std::string description() const override { return m_inner.description(); }
    void prepare(const std::vector<const sql::Table*>& tables) override { m_inner.prepare(tables); }
    std::optional<std::string> load_checkpoint() override { return m_inner.load_checkpoint(); }
    std::size_t max_identifier_bytes() const override { return m_inner.max_identifier_bytes(); }
    void add(const sql::Table& table, sql::Row row) override { m_inner.add(table, std::move(row)); }
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override {
        m_inner.reject(table, key, reason, raw);
    }
    std::size_t buffered() const override { return m_inner.buffered(); }
    void commit(const std::optional<std::string>& checkpoint,
                const std::string& progress) override {
        m_inner.commit(checkpoint, progress);
    }
    std::map<std::string, std::vector<std::optional<std::string>>>
    lookup(const sql::Table& table, const std::vector<std::string>& columns,
           const std::vector<std::string>& keys) override {
        ++lookups;
        return m_inner.lookup(table, columns, keys);
    }
    std::optional<bool> holds_rows(const sql::Table& table) override {
        ++holds_rows_asked;
        return m_inner.holds_rows(table);
    }

    std::atomic<int> lookups = 0;
    std::atomic<int> holds_rows_asked = 0;

private:
    pipeline::TargetWriter& m_inner;
};

} // namespace

TEST_CASE("db_sync compares md5s only when the contacts table held rows at the start",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            SyncFixture f(campaign(120), target.url);
            auto db = crmsync::testing::open(target.url);
            drivers::dialfire::SyncOptions options;
            options.api.base_url = f.fake.base_url();
            options.api.campaign = f.fake.options().campaign_id;
            options.api.token = f.fake.options().token;
            options.table_prefix = f.prefix;
            options.batch_rows = 100;
            options.show_progress = false;
            // One run in-process; returns how often it asked for stored md5s, and its summary.
            const auto run = [&](drivers::dialfire::SyncMode mode) {
                options.mode = mode;
                pipeline::RunSummary summary;
                pipeline::TargetWriter writer(*db, drivers::dialfire::job_key(options), summary);
                AskedSink sink(writer);
                REQUIRE(sink.lock());
                CHECK(drivers::dialfire::run_sync(options, sink, summary) ==
                      pipeline::Ending::complete);
                CHECK(sink.holds_rows_asked == 1);
                return std::pair<int, pipeline::RunSummary>(sink.lookups.load(), summary);
            };

            // A first load: nothing stored to compare with, so nothing is asked.
            const auto [first_lookups, first] = run(drivers::dialfire::SyncMode::incremental);
            CHECK(first_lookups == 0);
            CHECK(first.fetched == 120 + 30); // records: contacts, then inbound calls
            CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts") == 120);

            // Half of the contacts lost (a load cut short, rows deleted): everything listed
            // again, only the missing half fetched.
            const auto& d = db->dialect();
            db->execute("DELETE FROM " + d.quote(f.prefix + "contacts") + " WHERE " +
                        d.quote("$id") + " IN (SELECT " + d.quote("$id") + " FROM (SELECT " +
                        d.quote("$id") + " FROM " + d.quote(f.prefix + "contacts") + " ORDER BY " +
                        d.quote("$id") + " LIMIT 60) AS half)");
            const auto [again_lookups, again] = run(drivers::dialfire::SyncMode::initial);
            CHECK(again_lookups > 0);
            CHECK(again.fetched == 60 + 30);
            CHECK(again.skipped == 60);
            CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts") == 120);
        }
    }
}

TEST_CASE("db_sync retries what the API fails and keeps the checkpoint on failure",
          "[sqlite][http]") {
    TempDir dir;
    const std::string url = "sqlite://" + dir.file("faults.db");
    const std::string c = "/api/campaigns/DEMO0000CAMPAIGN";

    SECTION("retries 500 three times, then succeeds") {
        SyncFixture f(campaign(40), url);
        f.fake.inject({"POST", c + "/contacts/", fakes::FaultKind::status, 500, {}, 0, 3});
        const auto r = f.sync();
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(f.summary()["retries"].get<long>() >= 3);
        CHECK(f.inserted("contacts") == 40);
    }

    SECTION("waits for Retry-After on 429 and for the normal backoff on Retry-After: 0") {
        SyncFixture f(campaign(10), url);
        f.fake.inject({"GET", c + "/fields/list", fakes::FaultKind::status, 429, "1", 0, 1});
        f.fake.inject({"GET", c + "/contacts/list", fakes::FaultKind::status, 429, "0", 0, 1});
        const auto start = std::chrono::steady_clock::now();
        const auto r = f.sync();
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(900));
        CHECK(f.summary()["retries"].get<long>() == 2);
    }

    SECTION("retries resets, truncated and malformed answers") {
        SyncFixture f(campaign(30), url);
        f.fake.inject({"POST", c + "/contacts/", fakes::FaultKind::reset, 0, {}, 0, 1});
        f.fake.inject({"POST", c + "/contacts/", fakes::FaultKind::truncate, 0, {}, 0, 1});
        f.fake.inject({"GET", c + "/contacts/list", fakes::FaultKind::malformed, 0, {}, 0, 1});
        f.fake.inject({"GET", c + "/inbound/calls/", fakes::FaultKind::truncate, 0, {}, 0, 1});
        const auto r = f.sync();
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(f.inserted("contacts") == 30);
        CHECK(f.summary()["retries"].get<long>() == 4);
    }

    SECTION("gives up after the attempts run out: exit 1, checkpoint unmoved") {
        SyncFixture f(campaign(30), url);
        REQUIRE(f.sync().exit_code == 0);
        const auto before = f.checkpoint();
        f.fake.touch_contacts(5);
        f.fake.inject({"POST", c + "/contacts/", fakes::FaultKind::status, 503, {}, 0, 100});
        const auto r = f.sync({"--retry-attempts", "3"});
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.rfind("crmsync: error: POST contacts (5 ids) failed after 3 attempts", 0) == 0);
        CHECK(f.checkpoint() == before);
        CHECK(f.summary()["status"] == "failed");
        f.fake.clear_faults();
        const auto healed = f.sync();
        CHECK(healed.exit_code == 0);
        CHECK(f.summary()["tables"][f.prefix + "contacts"]["updated"].get<long>() == 5);
    }

    SECTION("a refused token fails at once with exit 1 and writes nothing") {
        SyncFixture f(campaign(10), url);
        const auto r =
            crmsync::testing::run_crmsync(f.args(), {{"CRMSYNC_TOKEN", "wrong-token"}}, f.dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("refused with HTTP 403") != std::string::npos);
        CHECK(f.fake.request_count() == 1);
    }
}

TEST_CASE("db_sync keeps the checkpoint when the database fails a bulk load in the middle",
          "[postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        if (target.name == "sqlite") {
            continue; // its columns take any value
        }
        DYNAMIC_SECTION("into " << target.name) {
            SyncFixture f(campaign(120), target.url);
            REQUIRE(f.sync().exit_code == 0);
            const auto before_checkpoint = f.checkpoint();
            REQUIRE(before_checkpoint);
            // A column too narrow for what the next run brings: the load of the changed contacts
            // (60, so the bulk path) fails at the first of them.
            auto db = crmsync::testing::open(target.url);
            const auto& d = db->dialect();
            const std::string contacts = d.quote(f.prefix + "contacts");
            const std::string raw = d.quote("_raw");
            db->execute("UPDATE " + contacts + " SET " + raw + " = '{}'");
            db->execute(target.name == "mysql"
                            ? "ALTER TABLE " + contacts + " MODIFY " + raw + " varchar(8)"
                            : "ALTER TABLE " + contacts + " ALTER COLUMN " + raw +
                                  " TYPE varchar(8)");
            const auto before = f.dump(f.prefix);
            f.fake.touch_contacts(60);

            const auto failed = f.sync();
            INFO(explain(failed));
            CHECK(failed.exit_code != 0);
            CHECK(failed.err.find("crmsync: error: database error") != std::string::npos);
            if (target.name == "mysql") {
                CHECK(failed.err.find("LOAD DATA") != std::string::npos);
            }
            CHECK(f.summary()["status"] == "failed");
            CHECK(f.checkpoint() == before_checkpoint);
            CHECK(f.dump(f.prefix) == before);

            db->execute(target.name == "mysql"
                            ? "ALTER TABLE " + contacts + " MODIFY " + raw + " json"
                            : "ALTER TABLE " + contacts + " ALTER COLUMN " + raw +
                                  " TYPE jsonb USING " + raw + "::jsonb");
            // Checkpoints are the server's Date (whole seconds): move the fake's clock on, or a
            // quick machine ends all three runs within one second and the checkpoint cannot move.
            f.fake.set_clock_offset(std::chrono::seconds(5));
            const auto healed = f.sync();
            INFO(explain(healed));
            REQUIRE(healed.exit_code == 0);
            CHECK(f.summary()["tables"][f.prefix + "contacts"]["updated"].get<long>() == 60);
            CHECK(f.checkpoint() != before_checkpoint);
        }
    }
}

TEST_CASE("db_sync stores hostile data safely and rejects what it cannot store",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            auto options = campaign(30);
            options.hostile = true;
            SyncFixture f(options, target.url);
            const auto r = f.sync({"--max-custom-fields", "0"});
            INFO(explain(r));
            REQUIRE(r.exit_code == 3);
            auto db = crmsync::testing::open(target.url);
            const auto rejects = db->query("SELECT " + db->dialect().quote("reason") + " FROM " +
                                               db->dialect().quote("crmsync_rejects") + " WHERE " +
                                               db->dialect().quote("job") + " = " +
                                               db->dialect().placeholder("p", 0),
                                           {"db_sync:DEMO0000CAMPAIGN:" + f.prefix});
            std::string reasons;
            for (const auto& row : rejects) {
                reasons += row[0].value_or("") + "\n";
            }
            CHECK(reasons.find("contact without $id") != std::string::npos);
            CHECK(reasons.find("transaction without fired") != std::string::npos);
            CHECK(reasons.find("pause_time_sec: expected a number") != std::string::npos);
            check_member_order_of_rejects(*db, "db_sync:DEMO0000CAMPAIGN:" + f.prefix);
            // Every other contact is stored, 1 MB value and broken bytes included.
            CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts") == 29);
            for (const auto& item : f.fake.hostile_items()) {
                if (item.what == fakes::HostileCase::value_1mb) {
                    const auto rows = db->query("SELECT " + db->dialect().quote("_raw") + " FROM " +
                                                    db->dialect().quote(f.prefix + "contacts") +
                                                    " WHERE " + db->dialect().quote("$id") + " = " +
                                                    db->dialect().placeholder("p", 0),
                                                {item.contact_id});
                    REQUIRE(rows.size() == 1);
                    CHECK(rows[0][0]->size() > fakes::k_hostile_huge_value_size);
                }
            }
            // Rejected again on a full refresh, under the same reject ids: no duplicates.
            const auto again = f.sync({"--max-custom-fields", "0", "--full-refresh"});
            INFO(explain(again));
            CHECK(again.exit_code == 3);
            CHECK(crmsync::testing::count_rows(*db, "crmsync_rejects",
                                               db->dialect().quote("job") + " = '" +
                                                   "db_sync:DEMO0000CAMPAIGN:" + f.prefix + "'") ==
                  static_cast<long>(rejects.size()));
        }
    }
}

TEST_CASE("db_sync killed with SIGKILL at any moment ends identical to an uninterrupted run",
          "[sqlite][postgres][mysql][slow]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            SyncFixture f(campaign(400), target.url);
            const std::string reference_prefix = f.run_reference();
            std::mt19937 rng(7);
            std::uniform_int_distribution<int> when(100, 300);
            int killed = 0;
            for (int attempt = 0; attempt < 6; ++attempt) {
                // Slow answers stretch the run so the kill lands inside it.
                f.slow_contact_requests();
                crmsync::testing::CrmsyncProcess run(f.args({"--batch-rows", "150", "--w", "1"}),
                                                     f.env(), f.dir);
                std::this_thread::sleep_for(std::chrono::milliseconds(when(rng)));
                run.kill(SIGKILL);
                const auto r = run.wait();
                killed += r.exit_code == 128 + SIGKILL ? 1 : 0;
                f.fake.clear_faults();
            }
            CHECK(killed >= 3);
            f.finish_like(reference_prefix);
        }
    }
}

// A connection to `url` once its server takes them again (it refuses them while it recovers
// from a crash, and a restarted server while it starts).
std::unique_ptr<sql::Database> connect_when_back(const std::string& url) {
    for (int attempt = 0;; ++attempt) {
        try {
            return crmsync::testing::open(url);
        } catch (const std::exception& e) {
            if (attempt == 1200) {
                FAIL("the database server did not come back after the crash: " << e.what());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
}

// Waits until the run has committed rows to `table` beyond `rows_before` (polling through
// `monitor`); false when it never does.
bool wait_for_committed_rows(sql::Database& monitor, const std::string& table, long rows_before) {
    for (int poll = 0; poll < 3000; ++poll) {
        if (crmsync::testing::table_exists(monitor, table) &&
            crmsync::testing::count_rows(monitor, table) > rows_before) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

// How a test crashes a database server and brings it back.
struct ServerCrash {
    // Kills the server (or the part whose death takes it down) while a run writes to it;
    // false when this process may not signal it.
    std::function<bool(sql::Database& monitor)> kill;
    // Starts it again when it does not come back by itself; may be empty.
    std::function<void()> restart;
    // A query that returns a row while the run's session is inside a bulk load (a COPY, a
    // LOAD DATA), its rows only partly sent.
    std::string in_bulk_load_query;
};

// Runs the job against a server that crashes mid-run: twice right after the run committed a
// batch of contacts (the run then waits for its next page), then once while the run's session
// is inside a bulk load. Each crashed run must fail with an error line and a failed summary,
// and the next run must leave every table as an uninterrupted run does.
void check_runs_across_server_crashes(SyncFixture& f, const std::string& url,
                                      const ServerCrash& crash) {
    const std::string reference_prefix = f.run_reference();
    const std::string contacts = f.prefix + "contacts";
    // Kills the server under `run`, checks how the run ended and brings the server back; false
    // when this process may not signal the server (the test then ends with a warning).
    const auto crash_under = [&](crmsync::testing::CrmsyncProcess& run, sql::Database& monitor) {
        if (!crash.kill(monitor)) {
            run.kill(SIGKILL);
            run.wait();
            WARN("cannot signal the server's processes (run the tests as root, as tests/run.sh "
                 "does); the crash was not tested");
            crmsync::testing::drop_prefixed(monitor, reference_prefix);
            return false;
        }
        const auto crashed = run.wait();
        f.fake.clear_faults();
        INFO(explain(crashed));
        CHECK(crashed.exit_code == 1);
        CHECK(crashed.err.find("crmsync: error: ") != std::string::npos);
        CHECK(f.summary()["status"] == "failed");
        if (crash.restart) {
            crash.restart();
        }
        connect_when_back(url); // the server is back
        return true;
    };
    for (int attempt = 0; attempt < 2; ++attempt) {
        INFO("crash " << attempt << " after a committed batch");
        f.slow_contact_requests();
        auto monitor = connect_when_back(url);
        const long rows_before = crmsync::testing::table_exists(*monitor, contacts)
                                     ? crmsync::testing::count_rows(*monitor, contacts)
                                     : 0;
        crmsync::testing::CrmsyncProcess run(f.args({"--batch-rows", "150", "--w", "1"}), f.env(),
                                             f.dir);
        REQUIRE(wait_for_committed_rows(*monitor, contacts, rows_before));
        if (!crash_under(run, *monitor)) {
            return;
        }
    }
    // Inside a bulk load: full refreshes (each has every row to write again) until the monitor
    // sees the run's session in one; the polls are a few milliseconds apart and a run has about
    // a dozen bulk loads, so the first run nearly always is the one.
    bool caught = false;
    for (int attempt = 0; attempt < 10 && !caught; ++attempt) {
        INFO("crash inside a bulk load, attempt " << attempt);
        auto monitor = connect_when_back(url);
        crmsync::testing::CrmsyncProcess run(f.args({"--full-refresh", "--w", "1"}), f.env(),
                                             f.dir);
        while (!caught && !run.exited()) {
            caught = !monitor->query(crash.in_bulk_load_query).empty();
        }
        if (!caught) {
            const auto r = run.wait();
            INFO(explain(r));
            REQUIRE(r.exit_code == 0);
            continue;
        }
        if (!crash_under(run, *monitor)) {
            return;
        }
    }
    CHECK(caught);
    f.finish_like(reference_prefix);
}

// A crash of the database server, not of crmsync: the server loses what it had not yet written
// out, which on PostgreSQL includes the last batches a run committed without waiting for the
// disk (synchronous_commit off). Killing one backend with SIGKILL makes the postmaster end every
// session and replay its WAL, as after a power cut of the server alone.
TEST_CASE("db_sync after a crash of the PostgreSQL server mid-run ends identical to an "
          "uninterrupted run",
          "[postgres][slow]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "postgres");
    if (!target) {
        return;
    }
    SyncFixture f(campaign(400), target->url);
    ServerCrash crash;
    crash.kill = [](sql::Database& monitor) {
        const auto backends = monitor.query("SELECT pid FROM pg_stat_activity WHERE "
                                            "application_name = 'crmsync' AND pid <> "
                                            "pg_backend_pid() AND backend_type = 'client backend'");
        REQUIRE_FALSE(backends.empty());
        return ::kill(std::stoi(*backends[0][0]), SIGKILL) == 0;
    };
    crash.in_bulk_load_query = "SELECT 1 FROM pg_stat_activity WHERE application_name = "
                               "'crmsync' AND pid <> pg_backend_pid() AND state = 'active' AND "
                               "query LIKE '%COPY %FROM STDIN%'";
    check_runs_across_server_crashes(f, target->url, crash);
}

// The process `pid`'s command line, one string per argument.
std::vector<std::string> command_line_of(pid_t pid) {
    const std::string text =
        crmsync::testing::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> args;
    for (std::size_t start = 0; start < text.size();) {
        const auto end = text.find('\0', start);
        args.push_back(text.substr(start, end - start));
        start = end == std::string::npos ? text.size() : end + 1;
    }
    return args;
}

// Whether `pid` has exited (gone, or a zombie its parent has not reaped yet).
bool has_exited(pid_t pid) {
    std::string stat;
    try {
        stat = crmsync::testing::read_file("/proc/" + std::to_string(pid) + "/stat");
    } catch (...) {
        return true;
    }
    const auto paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z';
}

// Starts `args` as a daemon would run: its own session, no terminal, none of this process's
// descriptors (the fakes' sockets stay the test's).
void start_detached(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& arg : args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::setsid();
        const int null_fd = ::open("/dev/null", O_RDWR);
        ::dup2(null_fd, 0);
        ::dup2(null_fd, 1);
        ::dup2(null_fd, 2);
        ::close_range(3, ~0U, 0);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
}

// The same for MariaDB, whose server has no supervisor to restart it: mariadbd is killed with
// SIGKILL and started again with its own command line, as a service manager would; InnoDB
// replays its redo log at the start. The crashes land as check_runs_across_server_crashes says:
// between batches, and inside a LOAD DATA whose rows are only partly sent.
TEST_CASE("db_sync after a crash of the MariaDB server mid-run ends identical to an "
          "uninterrupted run",
          "[mysql][slow]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "mysql");
    if (!target) {
        return;
    }
    SyncFixture f(campaign(400), target->url);
    pid_t server = 0;
    std::vector<std::string> server_args;
    ServerCrash crash;
    crash.kill = [&](sql::Database& monitor) {
        const auto pid_file = monitor.query("SELECT @@pid_file");
        REQUIRE(pid_file.size() == 1);
        server =
            static_cast<pid_t>(std::stol(crmsync::testing::read_file(pid_file[0][0].value_or(""))));
        server_args = command_line_of(server);
        REQUIRE_FALSE(server_args.empty());
        return ::kill(server, SIGKILL) == 0;
    };
    crash.restart = [&] {
        // Once the old process is gone, its port and files are free.
        for (int wait = 0; wait < 600 && !has_exited(server); ++wait) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        start_detached(server_args);
    };
    crash.in_bulk_load_query = "SELECT 1 FROM information_schema.processlist WHERE id <> "
                               "CONNECTION_ID() AND info LIKE 'LOAD DATA%'";
    check_runs_across_server_crashes(f, target->url, crash);
}

TEST_CASE("db_sync lets only one run of a job write at a time", "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            SyncFixture f(campaign(20), target.url);
            SECTION("a run finds the lock taken and exits 4 at once") {
                auto holder = crmsync::testing::open(target.url);
                REQUIRE(holder->try_lock("db_sync:DEMO0000CAMPAIGN:" + f.prefix));
                const auto r = f.sync();
                INFO(explain(r));
                CHECK(r.exit_code == 4);
                CHECK(r.err.rfind("crmsync: error: another run of campaign DEMO0000CAMPAIGN", 0) ==
                      0);
                CHECK_FALSE(f.checkpoint());
            }
            SECTION("of two overlapping runs one writes and one exits 4") {
                // Two slow pages (1.5 s each, after the fields and the list): the first run
                // holds its lock well past its first call to the API.
                f.fake.inject({"POST",
                               "/api/campaigns/DEMO0000CAMPAIGN/contacts/",
                               fakes::FaultKind::slow,
                               0,
                               {},
                               1500,
                               2});
                crmsync::testing::CrmsyncProcess first(f.args(), f.env(), f.dir);
                // It calls the API only once it holds the lock (a fixed wait let a slow start
                // lose the race). The fake counts a slowed request when it has answered it.
                crmsync::testing::wait_until([&] { return f.fake.request_count() > 0; },
                                             "the first run never called the API");
                const auto second = f.sync();
                const auto r1 = first.wait();
                INFO(explain(r1) << "\n" << explain(second));
                CHECK(r1.exit_code == 0);
                CHECK(second.exit_code == 4);
            }
        }
    }
}

TEST_CASE("db_sync never writes a secret to its output or its files", "[sqlite][postgres]") {
    TempDir dir;
    const std::string token = "tok-Secret-7f3a9c2e51";
    auto options = campaign(10);
    options.token = token;
    std::vector<std::pair<std::string, std::string>> urls{
        {"sqlite://" + dir.file("secret.db"), ""}};
    const std::string password = "pw-Secret@:/9d8e7";
    if (const char* pg = std::getenv("CRMSYNC_TEST_POSTGRES_URL"); pg != nullptr && *pg) {
        auto admin = crmsync::testing::open(pg);
        // Tables of an earlier, aborted run would keep the role from being dropped.
        admin->execute("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                       "'crmsync_secret_user') THEN EXECUTE 'DROP OWNED BY crmsync_secret_user'; "
                       "END IF; END $$");
        admin->execute("DROP ROLE IF EXISTS crmsync_secret_user");
        admin->execute("CREATE ROLE crmsync_secret_user LOGIN SUPERUSER PASSWORD '" + password +
                       "'");
        std::string url = pg;
        const auto at = url.find('@');
        const auto scheme = url.find("://") + 3;
        urls.push_back(
            {url.substr(0, scheme) + "crmsync_secret_user@" + url.substr(at + 1), password});
    }
    for (const auto& [url, db_password] : urls) {
        DYNAMIC_SECTION(url.substr(0, 8)) {
            SyncFixture f(options, url);
            std::map<std::string, std::string> env{{"CRMSYNC_TOKEN", token}};
            if (!db_password.empty()) {
                env["CRMSYNC_DB_PASSWORD"] = db_password;
            }
            const auto ok = crmsync::testing::run_crmsync(f.args({"--l", "5"}), env, f.dir);
            INFO(explain(ok));
            CHECK(ok.exit_code == 0);
            // A failing run prints errors: they must be clean too.
            auto failing_env = env;
            failing_env["CRMSYNC_DB_PASSWORD"] = db_password.empty() ? "unused" : db_password + "x";
            const auto failed = crmsync::testing::run_crmsync(
                f.args({"--l", "5", "--ct", token, "--api-url", "http://127.0.0.1:1"}), failing_env,
                f.dir);
            CHECK(failed.exit_code != 0);
            std::string everything = ok.out + ok.err + failed.out + failed.err;
            const auto files = crmsync::testing::list_files(f.dir.file("logs"));
            CHECK_FALSE(files.empty());
            for (const auto& file : files) {
                everything += crmsync::testing::read_file(file);
                struct stat st {};
                ::stat(file.c_str(), &st);
                CHECK((st.st_mode & 0777) == 0600);
            }
            everything += crmsync::testing::read_file(f.dir.file("summary.json"));
            CHECK(everything.find(token) == std::string::npos);
            if (!db_password.empty()) {
                CHECK(everything.find(db_password) == std::string::npos);
                CHECK(everything.find("pw-Secret%40") == std::string::npos);
            }
        }
    }
}
