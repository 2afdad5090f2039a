// crmsync bulk-history end to end: the real binary as a child process, the Bitrix24 emulator
// in-process on loopback, real target databases (SQLite always; PostgreSQL and MariaDB when
// tests/run.sh started them).

#include "tests/integration/support.hpp"

#include "tests/fakes/bitrix24/bitrix24_fake.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sys/stat.h>
#include <thread>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

// 2024-06-01T00:00:00Z: a fixed history end makes every answer reproducible.
constexpr std::int64_t k_history_end_s = 1'717'200'000;
const std::vector<std::string> k_stamps{"ID", "DATE_INSERT", "DATE_UPDATE"};

fakes::Bitrix24Options portal(std::size_t deals, std::size_t per_deal = 5) {
    fakes::Bitrix24Options o;
    o.deals = deals;
    o.history_per_deal = per_deal;
    o.history_end = std::chrono::system_clock::time_point(std::chrono::seconds(k_history_end_s));
    o.worker_threads = 4;
    return o;
}

std::string utc(std::int64_t epoch_seconds) {
    const std::time_t t = epoch_seconds;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    return text;
}

// `args` with `flag` set to `value`, replacing the value it had.
std::vector<std::string> with(std::vector<std::string> args, const std::string& flag,
                              const std::string& value) {
    const auto it = std::find(args.begin(), args.end(), flag);
    if (it == args.end()) {
        args.insert(args.end(), {flag, value});
    } else {
        *(it + 1) = value;
    }
    return args;
}

// Waits until the emulator has answered `calls` more crm.stagehistory.list requests than
// `before`: progress measured on the API side, so a kill lands mid-upload however loaded the
// machine is, and the target database is not touched while crmsync opens it.
void wait_for_history_calls(const fakes::Bitrix24Fake& fake, std::size_t before,
                            std::size_t calls) {
    for (int i = 0; fake.call_count("crm.stagehistory.list") < before + calls; ++i) {
        if (i > 60'000) {
            FAIL("crmsync made no progress (a run failed early?)");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

struct HistoryFixture {
    TempDir dir;
    fakes::Bitrix24Fake fake;
    std::string url;
    std::string prefix = crmsync::testing::unique_prefix();

    HistoryFixture(fakes::Bitrix24Options options, std::string target_url)
        : fake(std::move(options)), url(std::move(target_url)) {
        fake.start();
    }

    std::string list() const { return prefix + "CRM_STAGE_LIST_PROD"; }
    std::string history() const { return prefix + "CRM_STAGE_HISTORY_PROD"; }
    std::string job(const std::string& with_prefix) const {
        return "bulk_history:127.0.0.1:" + std::to_string(fake.port()) + ":PROD:" + with_prefix;
    }
    std::string job() const { return job(prefix); }

    std::vector<std::string> args(std::vector<std::string> extra = {},
                                  const std::string& table_prefix = "") const {
        std::vector<std::string> a{"bulk-history",
                                   "--portal-url-env",
                                   "B24_WEBHOOK",
                                   "--url",
                                   url,
                                   "--env",
                                   "PROD",
                                   "--table-prefix",
                                   table_prefix.empty() ? prefix : table_prefix,
                                   "--log-dir",
                                   dir.file("logs"),
                                   "--summary-json",
                                   dir.file("summary.json"),
                                   "--retry-base",
                                   "20ms",
                                   "--rate",
                                   "0"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    std::map<std::string, std::string> env() const { return {{"B24_WEBHOOK", fake.base_url()}}; }

    ProcessResult run(std::vector<std::string> extra = {}) const {
        return crmsync::testing::run_crmsync(args(std::move(extra)), env(), dir);
    }

    nlohmann::json summary() const {
        return nlohmann::json::parse(crmsync::testing::read_file(dir.file("summary.json")));
    }

    long summary_count(const std::string& table, const char* what) const {
        const auto s = summary();
        const auto it = s["tables"].find(table);
        return it == s["tables"].end() ? 0 : it->at(what).get<long>();
    }

    std::optional<std::string> checkpoint(const std::string& with_prefix = "") const {
        auto db = crmsync::testing::open(url);
        if (!crmsync::testing::table_exists(*db, "crmsync_state")) {
            return std::nullopt;
        }
        const auto& d = db->dialect();
        const auto rows =
            db->query("SELECT " + d.quote("checkpoint") + " FROM " + d.quote("crmsync_state") +
                          " WHERE " + d.quote("job") + " = " + d.placeholder("p", 0),
                      {job(with_prefix.empty() ? prefix : with_prefix)});
        return rows.empty() ? std::nullopt : rows[0][0];
    }

    std::vector<std::string> dump(const std::string& table) const {
        auto db = crmsync::testing::open(url);
        return crmsync::testing::dump_table(*db, table, k_stamps);
    }

    void drop(const std::string& with_prefix) const {
        auto db = crmsync::testing::open(url);
        const auto& d = db->dialect();
        for (const char* t : {"CRM_STAGE_LIST_PROD", "CRM_STAGE_HISTORY_PROD"}) {
            if (crmsync::testing::table_exists(*db, with_prefix + t)) {
                db->execute("DROP TABLE " + d.quote(with_prefix + t));
            }
        }
        for (const char* t : {"crmsync_state", "crmsync_rejects"}) {
            if (crmsync::testing::table_exists(*db, t)) {
                db->execute("DELETE FROM " + d.quote(t) + " WHERE " + d.quote("job") + " = " +
                                d.placeholder("p", 0),
                            {job(with_prefix)});
            }
        }
    }

    ~HistoryFixture() {
        try {
            drop(prefix);
        } catch (...) {
        }
    }
};

// EXTERNAL_ID -> the row's columns, as text.
std::map<std::string, std::map<std::string, std::string>> history_rows(sql::Database& db,
                                                                       const std::string& table) {
    const std::vector<std::string> columns{
        "EXTERNAL_ID", "TYPE_ID",           "OWNER_ID",   "CREATED_TIME", "NAME",
        "CATEGORY_ID", "STAGE_SEMANTIC_ID", "STAGE_ID",   "IS_LOST",      "START_DATE",
        "END_DATE",    "RESPONSIBLE_ID",    "DATE_INSERT"};
    std::string select = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        select += (i ? ", " : "") + db.dialect().quote(columns[i]);
    }
    std::map<std::string, std::map<std::string, std::string>> out;
    for (const auto& row : db.query(select + " FROM " + db.dialect().quote(table))) {
        auto& fields = out[row[0].value_or("NULL")];
        for (std::size_t i = 1; i < columns.size(); ++i) {
            fields[columns[i]] = row[i].value_or("NULL");
        }
    }
    return out;
}

// STATUS_ID -> the stage row's columns, as text.
std::map<std::string, std::map<std::string, std::string>> list_rows(sql::Database& db,
                                                                    const std::string& table) {
    const std::vector<std::string> columns{
        "STATUS_ID", "EXTERNAL_ID", "ACTIVE",    "ENTITY_ID",   "NAME",        "NAME_INIT",
        "SORT",      "SYSTEM",      "SEMANTICS", "CATEGORY_ID", "DATE_INSERT", "DATE_UPDATE"};
    std::string select = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        select += (i ? ", " : "") + db.dialect().quote(columns[i]);
    }
    std::map<std::string, std::map<std::string, std::string>> out;
    for (const auto& row : db.query(select + " FROM " + db.dialect().quote(table))) {
        auto& fields = out[row[0].value_or("NULL")];
        for (std::size_t i = 1; i < columns.size(); ++i) {
            fields[columns[i]] = row[i].value_or("NULL");
        }
    }
    return out;
}

} // namespace

TEST_CASE("bulk-history uploads the stage list and the whole history, then only what is new",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            HistoryFixture f(portal(60, 5), target.url);
            const auto first = f.run();
            INFO(explain(first));
            REQUIRE(first.exit_code == 0);
            const auto port = std::to_string(f.fake.port());
            CHECK(first.out.rfind("crmsync: bulk-history 127.0.0.1:" + port + "/PROD ok", 0) == 0);
            const auto history = f.fake.history();
            REQUIRE(history.size() == 300);
            CHECK(f.summary_count(f.history(), "inserted") == 300);
            CHECK(f.summary_count(f.list(), "inserted") ==
                  static_cast<long>(f.fake.stages().size()));
            CHECK(f.summary()["fetched"] == 300);
            CHECK(f.checkpoint() == std::to_string(f.fake.last_history_id()));

            auto db = crmsync::testing::open(target.url);
            const auto rows = history_rows(*db, f.history());
            REQUIRE(rows.size() == history.size());
            for (const auto& entry : history) {
                INFO("history ID " << entry.id);
                const auto it = rows.find(std::to_string(entry.id));
                REQUIRE(it != rows.end());
                const auto& r = it->second;
                CHECK(r.at("TYPE_ID") == std::to_string(entry.type_id));
                CHECK(r.at("OWNER_ID") == std::to_string(entry.owner_id));
                CHECK(r.at("CREATED_TIME").substr(0, 19) == utc(entry.created));
                CHECK(r.at("CATEGORY_ID") == std::to_string(entry.category_id));
                CHECK(r.at("STAGE_SEMANTIC_ID") == std::string(1, entry.semantic_id));
                CHECK(r.at("STAGE_ID") == entry.stage_id);
                CHECK(r.at("IS_LOST") == (entry.semantic_id == 'F' ? "Y" : "N"));
                CHECK(r.at("NAME") == f.fake.deal(entry.owner_id)->title);
                CHECK(r.at("START_DATE") == "NULL");
                CHECK(r.at("END_DATE") == "NULL");
                CHECK(r.at("RESPONSIBLE_ID") == "NULL");
                CHECK(r.at("DATE_INSERT") != "NULL");
            }
            const auto stages = list_rows(*db, f.list());
            REQUIRE(stages.size() == f.fake.stages().size());
            for (const auto& stage : f.fake.stages()) {
                INFO("stage " << stage.status_id);
                const auto& s = stages.at(stage.status_id);
                CHECK(s.at("EXTERNAL_ID") == std::to_string(stage.id));
                CHECK(s.at("ACTIVE") == "Y");
                CHECK(s.at("ENTITY_ID") == stage.entity_id);
                CHECK(s.at("NAME") == stage.name);
                CHECK(s.at("NAME_INIT") == stage.name_init);
                CHECK(s.at("SORT") == std::to_string(stage.sort));
                CHECK(s.at("SYSTEM") == (stage.system ? "Y" : "N"));
                CHECK(s.at("CATEGORY_ID") == std::to_string(stage.category_id));
                CHECK(s.at("DATE_INSERT") != "NULL");
                CHECK(s.at("DATE_UPDATE") != "NULL");
            }

            SECTION("the actualizer appends only the history after the checkpoint") {
                const auto added = f.fake.add_history(7);
                f.fake.reset_stats();
                const auto second = f.run();
                INFO(explain(second));
                REQUIRE(second.exit_code == 0);
                CHECK(f.summary_count(f.history(), "inserted") == 7);
                CHECK(f.summary_count(f.history(), "updated") == 0);
                CHECK(f.summary_count(f.list(), "unchanged") ==
                      static_cast<long>(f.fake.stages().size()));
                CHECK(f.summary()["fetched"] == 7);
                CHECK(f.checkpoint() == std::to_string(added.back().id));
                CHECK(crmsync::testing::count_rows(*db, f.history()) == 307);
                // One page after the checkpoint, one batch for its deals, the stage list.
                CHECK(f.fake.request_count("crm.stagehistory.list") == 1);
                CHECK(f.fake.request_count("batch") == 1);
                for (const auto& r : f.fake.requests()) {
                    if (r.rest_method == "crm.stagehistory.list") {
                        CHECK(r.body.find("\">ID\":" + std::to_string(history.back().id)) !=
                              std::string::npos);
                    }
                }

                const auto third = f.run();
                INFO(explain(third));
                REQUIRE(third.exit_code == 0);
                CHECK(f.summary_count(f.history(), "inserted") == 0);
                CHECK(f.summary()["fetched"] == 0);
                CHECK(crmsync::testing::count_rows(*db, f.history()) == 307);
            }

            SECTION("a --since run re-reads newer history without moving the checkpoint") {
                const auto before = f.checkpoint();
                const auto since = history[200].created;
                const auto again = f.run({"--since", utc(since).replace(10, 1, "T")});
                INFO(explain(again));
                REQUIRE(again.exit_code == 0);
                const long newer = static_cast<long>(
                    std::count_if(history.begin(), history.end(),
                                  [&](const auto& e) { return e.created >= since; }));
                CHECK(f.summary()["fetched"] == newer);
                CHECK(f.summary_count(f.history(), "unchanged") == newer);
                CHECK(f.checkpoint() == before);
            }
        }
    }
}

TEST_CASE("bulk-history brings the stage list in step with renamed, re-sorted, added and "
          "deleted stages",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            HistoryFixture f(portal(10, 3), target.url);
            REQUIRE(f.run().exit_code == 0);
            auto db = crmsync::testing::open(target.url);
            const auto before = list_rows(*db, f.list());
            // DATE_UPDATE must visibly move; timestamps have millisecond precision or less.
            std::this_thread::sleep_for(std::chrono::milliseconds(1100));

            REQUIRE(f.fake.rename_stage("C3:UC_DATE2X", "Third date"));
            REQUIRE(f.fake.resort_stage("WON", 65));
            REQUIRE(f.fake.delete_stage("C3:UC_GHOST1"));
            fakes::Bitrix24StageSpec spec;
            spec.code = "UC_PICNIC";
            spec.name = "Picnic";
            spec.sort = 35;
            spec.system = false;
            const auto added = f.fake.add_stage(3, spec);

            const auto second = f.run();
            INFO(explain(second));
            REQUIRE(second.exit_code == 0);
            CHECK(f.summary_count(f.list(), "inserted") == 1);
            CHECK(f.summary_count(f.list(), "updated") == 3);
            CHECK(f.summary_count(f.list(), "unchanged") == static_cast<long>(before.size()) - 3);
            CHECK(f.summary()["stages deactivated"] == 1);

            const auto after = list_rows(*db, f.list());
            REQUIRE(after.size() == before.size() + 1);
            CHECK(after.at("C3:UC_DATE2X").at("NAME") == "Third date");
            CHECK(after.at("C3:UC_DATE2X").at("NAME_INIT") ==
                  before.at("C3:UC_DATE2X").at("NAME_INIT"));
            CHECK(after.at("WON").at("SORT") == "65");
            CHECK(after.at("C3:UC_GHOST1").at("ACTIVE") == "N");
            CHECK(after.at("C3:UC_GHOST1").at("NAME") == before.at("C3:UC_GHOST1").at("NAME"));
            CHECK(after.at("C3:UC_PICNIC").at("EXTERNAL_ID") == std::to_string(added.id));
            CHECK(after.at("C3:UC_PICNIC").at("CATEGORY_ID") == "3");
            CHECK(after.at("C3:UC_PICNIC").at("ACTIVE") == "Y");
            for (const auto& [status, row] : after) {
                INFO(status);
                if (status == "C3:UC_PICNIC") {
                    continue;
                }
                const bool changed =
                    status == "C3:UC_DATE2X" || status == "WON" || status == "C3:UC_GHOST1";
                CHECK((row.at("DATE_UPDATE") != before.at(status).at("DATE_UPDATE")) == changed);
                CHECK(row.at("DATE_INSERT") == before.at(status).at("DATE_INSERT"));
            }

            SECTION("a deleted stage stays inactive, and comes back active when re-created") {
                const auto third = f.run();
                INFO(explain(third));
                REQUIRE(third.exit_code == 0);
                CHECK(f.summary_count(f.list(), "updated") == 0);
                CHECK(f.summary()["stages deactivated"] == 0);
                CHECK(list_rows(*db, f.list()).at("C3:UC_GHOST1").at("ACTIVE") == "N");
            }

            SECTION("a run for one pipeline leaves the other pipelines' stages alone") {
                REQUIRE(f.fake.delete_stage("C3:UC_PICNIC"));
                REQUIRE(f.fake.delete_stage("APOLOGY"));
                const auto only_default = f.run({"--category", "0"});
                INFO(explain(only_default));
                REQUIRE(only_default.exit_code == 0);
                const auto rows = list_rows(*db, f.list());
                CHECK(rows.at("APOLOGY").at("ACTIVE") == "N");
                CHECK(rows.at("C3:UC_PICNIC").at("ACTIVE") == "Y");
            }
        }
    }
}

TEST_CASE("bulk-history with --category loads one pipeline under its own checkpoint", "[sqlite]") {
    TempDir dir;
    HistoryFixture f(portal(40, 4), "sqlite://" + dir.file("category.db"));
    const auto r = f.run({"--category", "3"});
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    const auto history = f.fake.history();
    const long in_pipeline = static_cast<long>(std::count_if(
        history.begin(), history.end(), [](const auto& e) { return e.category_id == 3; }));
    REQUIRE(in_pipeline > 0);
    REQUIRE(in_pipeline < static_cast<long>(history.size()));
    auto db = crmsync::testing::open(f.url);
    CHECK(crmsync::testing::count_rows(*db, f.history()) == in_pipeline);
    CHECK(crmsync::testing::count_rows(*db, f.history(),
                                       db->dialect().quote("CATEGORY_ID") + " <> 3") == 0);
    CHECK(crmsync::testing::count_rows(*db, f.list()) == 7);
    CHECK(f.summary()["job"] == "127.0.0.1:" + std::to_string(f.fake.port()) + "/PROD/C3");

    const auto missing = f.run({"--category", "9"});
    INFO(explain(missing));
    CHECK(missing.exit_code == 2);
    CHECK(missing.err.rfind("crmsync: error: the portal lists no stages for deal pipeline 9", 0) ==
          0);
}

TEST_CASE("bulk-history retries 503 and 429, and exits 1 without writing on 401",
          "[sqlite][http]") {
    TempDir dir;
    const std::string url = "sqlite://" + dir.file("faults.db");

    SECTION("503 QUERY_LIMIT_EXCEEDED and 429 OPERATION_TIME_LIMIT are backed off and retried") {
        HistoryFixture f(portal(30, 5), url);
        using fakes::Bitrix24FaultKind;
        f.fake.inject({"crm.stagehistory.list", Bitrix24FaultKind::status, 503, "", "", {}, 0, 2});
        f.fake.inject({"crm.status.list", Bitrix24FaultKind::status, 429, "", "", {}, 0, 1});
        f.fake.inject({"batch", Bitrix24FaultKind::status, 503, "", "", {}, 0, 1});
        // Inside a batch: the sub-call fails in result_error of an HTTP 200.
        f.fake.inject({"crm.deal.list", Bitrix24FaultKind::status, 429, "", "", {}, 0, 2});
        f.fake.inject({"crm.stagehistory.list", Bitrix24FaultKind::truncate, 0, "", "", {}, 0, 1});
        const auto r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(f.fake.pending_faults() == 0);
        CHECK(f.summary()["retries"] == 7);
        CHECK(f.summary_count(f.history(), "inserted") == 150);
        auto db = crmsync::testing::open(url);
        CHECK(crmsync::testing::count_rows(*db, f.history(),
                                           db->dialect().quote("NAME") + " IS NULL") == 0);
    }

    SECTION("Retry-After is honoured when a portal sends one") {
        HistoryFixture f(portal(5, 2), url);
        f.fake.inject(
            {"crm.stagehistory.list", fakes::Bitrix24FaultKind::status, 503, "", "", "1", 0, 1});
        const auto start = std::chrono::steady_clock::now();
        const auto r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(900));
        CHECK(f.summary()["retries"] == 1);
    }

    SECTION("503s beyond --retry-attempts fail with exit 1 and keep the checkpoint") {
        HistoryFixture f(portal(30, 5), url);
        REQUIRE(f.run().exit_code == 0);
        const auto before = f.checkpoint();
        f.fake.add_history(60);
        f.fake.inject(
            {"crm.stagehistory.list", fakes::Bitrix24FaultKind::status, 503, "", "", {}, 0, 100});
        const auto r = f.run({"--retry-attempts", "3"});
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.rfind("crmsync: error: Bitrix24 crm.stagehistory.list failed after 3 "
                          "attempts",
                          0) == 0);
        CHECK(f.checkpoint() == before);
        CHECK(f.summary()["status"] == "failed");
        f.fake.clear_faults();
        const auto healed = f.run();
        INFO(explain(healed));
        CHECK(healed.exit_code == 0);
        CHECK(f.summary_count(f.history(), "inserted") == 60);
    }

    SECTION("a wrong webhook code is 401: exit 1, a clear line, nothing written") {
        HistoryFixture f(portal(10, 2), url);
        std::string wrong = f.fake.base_url();
        wrong.replace(wrong.find(f.fake.options().webhook_code), 16, "wrongwebhook0000");
        const auto r =
            crmsync::testing::run_crmsync(f.args({"--l", "5"}), {{"B24_WEBHOOK", wrong}}, f.dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.rfind("crmsync: error: Bitrix24 crm.status.list was refused with HTTP 401: "
                          "{\"error\":\"NO_AUTH_FOUND\"",
                          0) == 0);
        CHECK(r.err.find("crmsync: hint: the webhook in $B24_WEBHOOK is wrong, expired or "
                         "deleted") != std::string::npos);
        CHECK(f.fake.request_count() == 1);
        auto db = crmsync::testing::open(url);
        CHECK_FALSE(crmsync::testing::table_exists(*db, f.list()));
        CHECK_FALSE(crmsync::testing::table_exists(*db, f.history()));
        CHECK_FALSE(crmsync::testing::table_exists(*db, "crmsync_state"));
        // The webhook code is a secret: in no output, log or summary.
        std::string everything =
            r.out + r.err + crmsync::testing::read_file(f.dir.file("summary.json"));
        for (const auto& file : crmsync::testing::list_files(f.dir.file("logs"))) {
            everything += crmsync::testing::read_file(file);
        }
        CHECK(everything.find("wrongwebhook0000") == std::string::npos);
    }

    SECTION("the webhook code of a good run appears nowhere") {
        HistoryFixture f(portal(5, 2), url);
        const auto r = f.run({"--l", "5", "--v"});
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        std::string everything =
            r.out + r.err + crmsync::testing::read_file(f.dir.file("summary.json"));
        const auto logs = crmsync::testing::list_files(f.dir.file("logs"));
        CHECK_FALSE(logs.empty());
        for (const auto& file : logs) {
            everything += crmsync::testing::read_file(file);
            struct stat st {};
            ::stat(file.c_str(), &st);
            CHECK((st.st_mode & 0777) == 0600);
        }
        CHECK(everything.find(f.fake.options().webhook_code) == std::string::npos);
    }
}

TEST_CASE("bulk-history keeps to --rate so the portal's leaky bucket never overflows",
          "[sqlite][http]") {
    TempDir dir;
    // 250 rows: the stage list, the first history page, one batch of 4 pages, one of titles.
    auto options = portal(50, 5);
    options.rate_limit = true;
    options.rate_limit_burst = 2;
    options.rate_limit_per_second = 2;
    HistoryFixture f(options, "sqlite://" + dir.file("rate.db"));
    const auto limit_answers = [&] {
        long n = 0;
        for (const auto& r : f.fake.requests()) {
            n += r.error == "QUERY_LIMIT_EXCEEDED" ? 1 : 0;
        }
        return n;
    };

    SECTION("at the default 2 requests per second no request is refused") {
        auto args = f.args({"--retry-attempts", "1"});
        args.erase(std::find(args.begin(), args.end(), "--rate"),
                   std::find(args.begin(), args.end(), "--rate") + 2);
        const auto r = crmsync::testing::run_crmsync(args, f.env(), f.dir);
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(limit_answers() == 0);
        CHECK(f.summary_count(f.history(), "inserted") == 250);
    }

    SECTION("without a limit the portal refuses requests, and each is retried") {
        const auto r = crmsync::testing::run_crmsync(
            with(f.args({"--retry-attempts", "30"}), "--retry-base", "300ms"), f.env(), f.dir);
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(limit_answers() > 0);
        CHECK(f.summary()["retries"].get<long>() >= limit_answers());
        CHECK(f.summary_count(f.history(), "inserted") == 250);
    }
}

// History requests the emulator answered: crm.stagehistory.list alone, and batches of it.
struct HistoryRequests {
    long single = 0;
    long batches = 0;
};

HistoryRequests history_requests(const fakes::Bitrix24Fake& fake) {
    HistoryRequests out;
    for (const auto& r : fake.requests()) {
        if (r.rest_method == "crm.stagehistory.list") {
            ++out.single;
        } else if (r.rest_method == "batch" &&
                   r.body.find("crm.stagehistory.list") != std::string::npos) {
            ++out.batches;
        }
    }
    return out;
}

// The first command of a recorded batch body (its first 2 KiB hold it), "" if none.
std::string first_command(const std::string& body) {
    const std::string key = "\"h00\":\"";
    const auto at = body.find(key);
    if (at == std::string::npos) {
        return "";
    }
    const auto start = at + key.size();
    return body.substr(start, body.find('"', start) - start);
}

TEST_CASE("bulk-history chains 50 history pages in one batch request and writes the same rows "
          "as one page per request",
          "[sqlite][http]") {
    TempDir dir;
    // 3009 rows: the counted first page, a batch of 50 pages, a batch of 10 (the last one 9 rows).
    HistoryFixture f(portal(1003, 3), "sqlite://" + dir.file("batch.db"));
    const auto history = f.fake.history();
    REQUIRE(history.size() == 3009);

    const std::string slow = crmsync::testing::unique_prefix();
    f.fake.reset_stats();
    const auto one_by_one =
        crmsync::testing::run_crmsync(f.args({"--pages-per-request", "1"}, slow), f.env(), f.dir);
    INFO(explain(one_by_one));
    REQUIRE(one_by_one.exit_code == 0);
    const auto unbatched = history_requests(f.fake);
    CHECK(unbatched.single == 61);
    CHECK(unbatched.batches == 0);

    f.fake.reset_stats();
    const auto batched = f.run();
    INFO(explain(batched));
    REQUIRE(batched.exit_code == 0);
    const auto requests = history_requests(f.fake);
    CHECK(requests.single == 1);
    CHECK(requests.batches == 2);
    CHECK(f.fake.call_count("crm.stagehistory.list") == 61); // 1 + 50 + 10 pages
    CHECK(f.summary_count(f.history(), "inserted") == 3009);
    CHECK(f.summary()["fetched"] == 3009);
    CHECK(f.checkpoint() == std::to_string(f.fake.last_history_id()));

    // The same rows, ids and counts as one page per request, and exactly the portal's rows.
    const auto expected = f.dump(slow + "CRM_STAGE_HISTORY_PROD");
    CHECK(expected.size() == 3009);
    CHECK(f.dump(f.history()) == expected);
    auto db = crmsync::testing::open(f.url);
    const auto rows = history_rows(*db, f.history());
    REQUIRE(rows.size() == history.size());
    for (const auto& entry : history) {
        const auto it = rows.find(std::to_string(entry.id));
        REQUIRE(it != rows.end());
        CHECK(it->second.at("STAGE_ID") == entry.stage_id);
        CHECK(it->second.at("NAME") == f.fake.deal(entry.owner_id)->title);
    }
    f.drop(slow);

    SECTION("after full pages the batch's last command finds the end; nothing new is one page") {
        // The counted first page, then a batch of 3: two full pages and the empty one.
        const auto added = f.fake.add_history(150);
        f.fake.reset_stats();
        const auto again = f.run();
        INFO(explain(again));
        REQUIRE(again.exit_code == 0);
        CHECK(f.summary_count(f.history(), "inserted") == 150);
        CHECK(f.checkpoint() == std::to_string(added.back().id));
        const auto more = history_requests(f.fake);
        CHECK(more.batches == 1);
        CHECK(more.single == 1);
        CHECK(crmsync::testing::count_rows(*db, f.history()) == 3159);

        f.fake.reset_stats();
        const auto idle = f.run();
        INFO(explain(idle));
        REQUIRE(idle.exit_code == 0);
        CHECK(f.summary()["fetched"] == 0);
        CHECK(history_requests(f.fake).single == 1);
        CHECK(history_requests(f.fake).batches == 0);
    }
}

TEST_CASE("bulk-history commits the pages before a batch command that fails, and the next run "
          "completes without duplicates",
          "[sqlite][http]") {
    TempDir dir;
    HistoryFixture f(portal(600, 5), "sqlite://" + dir.file("midbatch.db")); // 3000 rows
    const auto history = f.fake.history();
    // Page 1 comes alone; the batch asks for pages 2-51. The command for page 21 fails.
    const auto after_page_20 = history[20 * 50 - 1].id;

    SECTION("a permanent error: exit 1, checkpoint at the last good page") {
        fakes::Bitrix24Fault fault;
        fault.status = 400;
        fault.error = "INVALID_ARG_VALUE";
        fault.error_description = "Invalid filter";
        f.fake.fail_history_after(after_page_20, fault);
        const auto r = f.run();
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK_THAT(r.err, Catch::Contains("crmsync: error: Bitrix24 crm.stagehistory.list after "
                                          "ID " +
                                          std::to_string(after_page_20) +
                                          " failed inside a batch: INVALID_ARG_VALUE"));
        CHECK(f.fake.pending_faults() == 0);
        CHECK(f.checkpoint() == std::to_string(after_page_20));
        auto db = crmsync::testing::open(f.url);
        CHECK(crmsync::testing::count_rows(*db, f.history()) == 1000);

        const auto healed = f.run();
        INFO(explain(healed));
        REQUIRE(healed.exit_code == 0);
        CHECK(f.summary_count(f.history(), "inserted") == 2000);
        CHECK(f.checkpoint() == std::to_string(f.fake.last_history_id()));
    }

    SECTION("QUERY_LIMIT_EXCEEDED inside the batch: backed off and resumed after the last good "
            "page") {
        fakes::Bitrix24Fault fault;
        fault.status = 503;
        fault.count = 2;
        f.fake.fail_history_after(after_page_20, fault);
        const auto r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(f.fake.pending_faults() == 0);
        CHECK(f.summary()["retries"] == 2);
        CHECK(f.summary_count(f.history(), "inserted") == 3000);
        // The retries start where the good pages ended.
        long resumed = 0;
        for (const auto& req : f.fake.requests()) {
            resumed += req.rest_method == "batch" &&
                               first_command(req.body).ends_with("filter[%3EID]=" +
                                                                 std::to_string(after_page_20))
                           ? 1
                           : 0;
        }
        CHECK(resumed == 2);
    }

    auto db = crmsync::testing::open(f.url);
    const auto& d = db->dialect();
    CHECK(crmsync::testing::count_rows(*db, f.history()) == 3000);
    const auto distinct = db->query("SELECT COUNT(DISTINCT " + d.quote("EXTERNAL_ID") + ") FROM " +
                                    d.quote(f.history()));
    CHECK(distinct.at(0).at(0) == "3000");
}

TEST_CASE("bulk-history at the portal's real 2 requests/s brings 2,500 rows per request",
          "[sqlite][http]") {
    TempDir dir;
    auto options = portal(1200, 5); // 6000 rows
    options.rate_limit = true;      // the reference's 2/s drain and burst of 50
    HistoryFixture f(options, "sqlite://" + dir.file("real_rate.db"));
    auto args = f.args({"--retry-attempts", "1"});
    args.erase(std::find(args.begin(), args.end(), "--rate"),
               std::find(args.begin(), args.end(), "--rate") + 2);
    const auto r = crmsync::testing::run_crmsync(args, f.env(), f.dir);
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    CHECK(f.summary_count(f.history(), "inserted") == 6000);
    long refused = 0;
    for (const auto& req : f.fake.requests()) {
        refused += req.error == "QUERY_LIMIT_EXCEEDED" ? 1 : 0;
    }
    CHECK(refused == 0);
    // 6000 rows: the stage list, the first page, batches of 50, 50 and 20 pages (the last one
    // empty), the titles of all 1200 deals in one batch.
    const auto requests = history_requests(f.fake);
    CHECK(requests.single == 1);
    CHECK(requests.batches == 3);
    CHECK(f.fake.request_count() == 6);
}

TEST_CASE("bulk-history verifies every page and keeps the checkpoint when one fails", "[sqlite]") {
    TempDir dir;
    HistoryFixture f(portal(20, 5), "sqlite://" + dir.file("verify.db"));
    REQUIRE(f.run().exit_code == 0);
    // The counted first page of 50, then one batch of two pages: 50 + 30.
    const auto added = f.fake.add_history(130);
    REQUIRE(added.size() == 130);
    auto db = crmsync::testing::open(f.url);
    const auto& d = db->dialect();
    // A trigger that silently removes one row of the batch's second page, as a rogue job might.
    const std::string victim = std::to_string(added[110].id);
    db->execute("CREATE TRIGGER drop_one AFTER INSERT ON " + d.quote(f.history()) + " WHEN NEW." +
                d.quote("EXTERNAL_ID") + " = " + victim + " BEGIN DELETE FROM " +
                d.quote(f.history()) + " WHERE " + d.quote("EXTERNAL_ID") + " = " + victim +
                "; END");
    const auto before = crmsync::testing::count_rows(*db, f.history());
    const auto r = f.run();
    INFO(explain(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.rfind("crmsync: error: verification failed: 1 of 30 history rows after ID " +
                          std::to_string(added[99].id) + " did not read back from " + f.history() +
                          " (EXTERNAL_ID " + victim + ")",
                      0) == 0);
    // The pages before committed with their checkpoint; the third was rolled back whole.
    CHECK(f.checkpoint() == std::to_string(added[99].id));
    CHECK(crmsync::testing::count_rows(*db, f.history()) == before + 100);

    db->execute("DROP TRIGGER drop_one");
    const auto healed = f.run();
    INFO(explain(healed));
    REQUIRE(healed.exit_code == 0);
    CHECK(f.summary_count(f.history(), "inserted") == 30);
    CHECK(f.checkpoint() == std::to_string(added.back().id));
}

TEST_CASE("bulk-history rejects hostile history items by ID and moves on, and the next run is "
          "clean",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            HistoryFixture f(portal(24, 5), target.url); // 120 rows: pages of 50, 50, 20
            // Text that is not JSON (a raw control character in a string) comes the same on
            // every attempt, so retrying cannot help; once it failed every run for good.
            f.fake.send_history_field_raw(7, "STAGE_ID", "\"C1:\x01NEW\"");
            // A value no column can hold, and a year past 9999 once the offset is applied.
            f.fake.send_history_field_raw(23, "TYPE_ID", "1e30");
            f.fake.send_history_field_raw(75, "CREATED_TIME", "\"9999-12-31T23:00:00-03:00\"");
            // Nesting deeper than the parser's limit: once stored with STAGE_ID left out.
            f.fake.send_history_field_raw(61, "STAGE_ID",
                                          std::string(200, '[') + std::string(200, ']'));

            const auto first = f.run();
            INFO(explain(first));
            REQUIRE(first.exit_code == 3);
            CHECK(f.checkpoint() == std::to_string(f.fake.last_history_id()));
            auto db = crmsync::testing::open(f.url);
            const auto rows = history_rows(*db, f.history());
            CHECK(rows.size() == 116);
            for (const char* id : {"7", "23", "61", "75"}) {
                CHECK_FALSE(rows.contains(id));
            }
            CHECK(rows.contains("6"));
            CHECK(rows.contains("8"));
            CHECK(rows.contains("62"));
            const auto& d = db->dialect();
            std::map<std::string, std::string> rejects;
            for (const auto& row :
                 db->query("SELECT " + d.quote("record_key") + ", " + d.quote("reason") + " FROM " +
                               d.quote("crmsync_rejects") + " WHERE " + d.quote("job") + " = " +
                               d.placeholder("p", 0),
                           {f.job()})) {
                rejects[row[0].value_or("")] = row[1].value_or("");
            }
            REQUIRE(rejects.size() == 4);
            // Pages 2 and 3 came in one batch (of 50: the first page, read item by item, gave
            // no count), whose answer item 61 spoiled: they were fetched again one page per
            // request, and page 2 item by item.
            std::string logs;
            for (const auto& file : crmsync::testing::list_files(f.dir.file("logs"))) {
                logs += crmsync::testing::read_file(file);
            }
            CHECK_THAT(logs, Catch::Contains("Bitrix24 batch of 50 crm.stagehistory.list pages "
                                             "after ID"));
            CHECK_THAT(logs, Catch::Contains("fetching them one page per request"));
            CHECK_THAT(rejects["7"], Catch::Contains("same text that is not JSON twice"));
            CHECK_THAT(rejects["61"], Catch::Contains("nested deeper than 128 levels"));
            CHECK_THAT(rejects["23"], Catch::Contains("TYPE_ID"));
            CHECK_THAT(rejects["75"], Catch::Contains("CREATED_TIME"));

            f.fake.add_history(3);
            const auto second = f.run();
            INFO(explain(second));
            CHECK(second.exit_code == 0);
            CHECK(f.summary_count(f.history(), "inserted") == 3);
            CHECK(f.checkpoint() == std::to_string(f.fake.last_history_id()));
        }
    }
}

TEST_CASE("bulk-history fails, keeping its checkpoint, when not even the IDs of a page can be "
          "read",
          "[sqlite]") {
    TempDir dir;
    HistoryFixture f(portal(20, 5), "sqlite://" + dir.file("broken.db"));
    // A proxy's HTML page on every history request: no item can be named, so none is skipped.
    f.fake.inject(
        {"crm.stagehistory.list", fakes::Bitrix24FaultKind::malformed, 0, "", "", {}, 0, 1000});
    const auto r = f.run();
    INFO(explain(r));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("not even the IDs of its items"));
    CHECK(f.checkpoint() == std::nullopt);
}

TEST_CASE("bulk-history reads numbers sent as strings and completes tables that lost a column",
          "[sqlite]") {
    TempDir dir;
    auto options = portal(20, 3);
    options.history_numbers_as_strings = true; // numbers as strings are read as numbers
    HistoryFixture f(options, "sqlite://" + dir.file("reject.db"));
    const auto r = f.run();
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    CHECK(f.summary_count(f.history(), "inserted") == 60);

    SECTION("a column dropped from a table is added back on the next run") {
        auto db = crmsync::testing::open(f.url);
        db->execute("ALTER TABLE " + db->dialect().quote(f.history()) + " DROP COLUMN " +
                    db->dialect().quote("IS_LOST"));
        f.fake.add_history(2);
        const auto again = f.run();
        INFO(explain(again));
        REQUIRE(again.exit_code == 0);
        CHECK(crmsync::testing::count_rows(*db, f.history(),
                                           db->dialect().quote("IS_LOST") + " IS NOT NULL") == 2);
    }
}

TEST_CASE("bulk-history killed with SIGKILL mid-upload resumes to the same tables as an "
          "uninterrupted upload",
          "[sqlite][postgres][mysql][slow]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            HistoryFixture f(portal(1500, 5), target.url); // 7500 rows, 150 pages
            const std::string reference = crmsync::testing::unique_prefix();
            {
                const auto r = crmsync::testing::run_crmsync(f.args({}, reference), f.env(), f.dir);
                INFO(explain(r));
                REQUIRE(r.exit_code == 0);
            }
            std::mt19937 rng(11);
            // Kill after this many more history pages were fetched (groups of 10 pages, in
            // batches of 3, are written as their deal titles arrive).
            std::uniform_int_distribution<std::size_t> when(11, 25);
            int killed = 0;
            std::set<std::string> checkpoints;
            for (int attempt = 0; attempt < 6; ++attempt) {
                // Slow pages stretch the upload so the kill lands inside it.
                fakes::Bitrix24Fault slow;
                slow.rest_method = "crm.stagehistory.list";
                slow.kind = fakes::Bitrix24FaultKind::slow;
                slow.delay_ms = 40;
                slow.count = 1000;
                f.fake.inject(slow);
                slow.rest_method = "batch";
                f.fake.inject(slow);
                const auto before = f.fake.call_count("crm.stagehistory.list");
                crmsync::testing::CrmsyncProcess run(f.args({"--pages-per-request", "3"}), f.env(),
                                                     f.dir);
                wait_for_history_calls(f.fake, before, when(rng));
                run.kill(SIGKILL);
                const auto r = run.wait();
                killed += r.exit_code == 128 + SIGKILL ? 1 : 0;
                f.fake.clear_faults();
                checkpoints.insert(f.checkpoint().value_or("none"));
            }
            CHECK(killed == 6);
            CHECK(checkpoints.size() >= 3); // the kills landed at different points
            const auto final_run = f.run();
            INFO(explain(final_run));
            REQUIRE(final_run.exit_code == 0);
            CHECK(f.checkpoint() == std::to_string(f.fake.last_history_id()));

            auto db = crmsync::testing::open(target.url);
            const auto& d = db->dialect();
            CHECK(crmsync::testing::count_rows(*db, f.history()) == 7500);
            const auto distinct = db->query("SELECT COUNT(DISTINCT " + d.quote("EXTERNAL_ID") +
                                            ") FROM " + d.quote(f.history()));
            CHECK(distinct.at(0).at(0) == "7500");
            // Every column but the identity and the write stamps is identical.
            const auto expected_history = f.dump(reference + "CRM_STAGE_HISTORY_PROD");
            const auto actual_history = f.dump(f.history());
            CHECK(actual_history.size() == expected_history.size());
            CHECK(actual_history == expected_history);
            CHECK(f.dump(f.list()) == f.dump(reference + "CRM_STAGE_LIST_PROD"));
            f.drop(reference);
        }
    }
}

TEST_CASE("bulk-history stops early on SIGTERM (130) and on --max-runtime (3), resumable",
          "[sqlite]") {
    TempDir dir;
    HistoryFixture f(portal(600, 5), "sqlite://" + dir.file("stop.db")); // 60 pages
    fakes::Bitrix24Fault slow;
    slow.rest_method = "crm.stagehistory.list";
    slow.kind = fakes::Bitrix24FaultKind::slow;
    slow.delay_ms = 40;
    slow.count = 1000;
    f.fake.inject(slow);
    // Two pages per batch request, each request slowed: 30 history requests.
    slow.rest_method = "batch";
    slow.delay_ms = 80;
    f.fake.inject(slow);
    const auto last = std::to_string(f.fake.last_history_id());

    SECTION("SIGTERM: the page in flight is committed, exit 130") {
        crmsync::testing::CrmsyncProcess run(f.args({"--pages-per-request", "2"}), f.env(), f.dir);
        // The first group of pages is being written when the signal comes.
        wait_for_history_calls(f.fake, 0, 15);
        run.kill(SIGTERM);
        const auto r = run.wait();
        INFO(explain(r));
        REQUIRE(r.exit_code == 130);
        CHECK(f.summary()["status"] == "interrupted");
        const auto stopped = f.checkpoint();
        REQUIRE(stopped);
        CHECK(*stopped != last);
        auto db = crmsync::testing::open(f.url);
        CHECK(crmsync::testing::count_rows(*db, f.history()) ==
              f.summary_count(f.history(), "inserted"));
    }

    SECTION("--max-runtime: what is fetched is committed, exit 3, the next run goes on") {
        const auto r = f.run({"--max-runtime", "1s", "--pages-per-request", "2"});
        INFO(explain(r));
        REQUIRE(r.exit_code == 3);
        CHECK(f.summary()["status"] == "partial");
        CHECK(f.checkpoint() != last);
    }

    f.fake.clear_faults();
    const auto rest = f.run();
    INFO(explain(rest));
    REQUIRE(rest.exit_code == 0);
    CHECK(f.checkpoint() == last);
    auto db = crmsync::testing::open(f.url);
    CHECK(crmsync::testing::count_rows(*db, f.history()) == 3000);
}

TEST_CASE("bulk-history lets only one run of a job write at a time", "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            HistoryFixture f(portal(5, 2), target.url);
            auto holder = crmsync::testing::open(target.url);
            REQUIRE(holder->try_lock(f.job()));
            const auto r = f.run();
            INFO(explain(r));
            CHECK(r.exit_code == 4);
            CHECK(r.err.rfind("crmsync: error: another run of bulk-history 127.0.0.1:" +
                                  std::to_string(f.fake.port()) + "/PROD into ",
                              0) == 0);
            CHECK(f.fake.request_count() == 0);
            CHECK(f.summary()["status"] == "locked");
        }
    }
}

TEST_CASE("bulk-history checks its command line before any I/O", "[sqlite][cli]") {
    TempDir dir;
    HistoryFixture f(portal(3, 1), "sqlite://" + dir.file("cli.db"));
    const auto expect = [&](std::vector<std::string> extra, std::map<std::string, std::string> env,
                            const std::string& error) {
        auto args = f.args();
        const auto flag = std::find(args.begin(), args.end(), "--env");
        args.erase(flag, flag + 2);
        args.insert(args.end(), extra.begin(), extra.end());
        const auto r = crmsync::testing::run_crmsync(args, env, f.dir);
        INFO(explain(r));
        CHECK(r.exit_code == 2);
        CHECK(r.err.rfind("crmsync: error: " + error, 0) == 0);
    };
    expect({}, f.env(), "no --env given");
    expect({"--env", "STAGING"}, f.env(), "--env 'STAGING' is not PROD, TEST or DEV");
    expect({"--env", "PROD"}, {}, "environment variable B24_WEBHOOK is empty");
    expect({"--env", "PROD"}, {{"B24_WEBHOOK", "https://example.bitrix24.com/crm/deal/"}},
           "the portal URL in $B24_WEBHOOK is not an inbound webhook URL");
    expect({"--env", "PROD"}, {{"B24_WEBHOOK", "ftp://example.bitrix24.com/rest/1/abc/"}},
           "the portal URL in $B24_WEBHOOK is not an http(s) URL");
    expect({"--env", "PROD", "--since", "yesterday"}, f.env(), "--since 'yesterday' is not a date");
    expect({"--env", "PROD", "--url", "oracle://x"}, f.env(), "");
    expect({"--env", "PROD", "--portal-url-file", dir.file("missing")}, {},
           "--portal-url-env and --portal-url-file both given");
    CHECK(f.fake.request_count() == 0);
    CHECK_FALSE(std::filesystem::exists(dir.file("cli.db")));

    SECTION("--portal-url-file and lower-case --env work") {
        const std::string file = dir.file("webhook.url");
        {
            std::FILE* out = std::fopen(file.c_str(), "w");
            std::fputs((f.fake.base_url() + "\n").c_str(), out);
            std::fclose(out);
        }
        auto args = f.args();
        const auto flag = std::find(args.begin(), args.end(), "--portal-url-env");
        args.erase(flag, flag + 2);
        std::replace(args.begin(), args.end(), std::string("PROD"), std::string("prod"));
        args.insert(args.end(), {"--portal-url-file", file});
        const auto r = crmsync::testing::run_crmsync(args, {}, f.dir);
        INFO(explain(r));
        CHECK(r.exit_code == 0);
        CHECK(f.summary_count(f.history(), "inserted") == 3);
    }
}
