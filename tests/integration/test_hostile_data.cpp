// Hostile Dialfire data end to end: records that once failed every run (and so stopped the job
// for good) are stored safely or rejected with their reason, and the next run is clean.

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

struct HostileFixture {
    TempDir dir;
    fakes::DialfireFake fake;
    std::string url;
    std::string prefix = crmsync::testing::unique_prefix();
    std::vector<fakes::HostileItem> items;

    explicit HostileFixture(std::string target_url) : fake(options()), url(std::move(target_url)) {
        fake.start();
        items = fake.add_hardening_cases();
    }

    static fakes::FakeCampaignOptions options() {
        fakes::FakeCampaignOptions o;
        o.contacts = 70; // a batch of more than 50 rows goes through PostgreSQL's COPY
        o.inbound_calls = 5;
        o.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
        return o;
    }

    ProcessResult sync() const {
        return crmsync::testing::run_crmsync({"db_sync", "--campaign", fake.options().campaign_id,
                                              "--api-url", fake.base_url(), "--url", url,
                                              "--table-prefix", prefix, "--log-dir",
                                              dir.file("logs"), "--retry-base", "20ms"},
                                             {{"CRMSYNC_TOKEN", fake.options().token}}, dir);
    }

    std::string job() const { return "db_sync:" + fake.options().campaign_id + ":" + prefix; }

    std::vector<std::pair<std::string, std::string>> rejects(sql::Database& db) const {
        const auto& d = db.dialect();
        const auto rows = db.query("SELECT " + d.quote("record_key") + ", " + d.quote("reason") +
                                       " FROM " + d.quote("crmsync_rejects") + " WHERE " +
                                       d.quote("job") + " = " + d.placeholder("p", 0),
                                   {job()});
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& row : rows) {
            out.emplace_back(row[0].value_or(""), row[1].value_or(""));
        }
        return out;
    }

    ~HostileFixture() {
        try {
            auto db = crmsync::testing::open(url);
            crmsync::testing::drop_prefixed(*db, prefix);
        } catch (...) {
        }
    }
};

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

bool has_reject(const std::vector<std::pair<std::string, std::string>>& rejects,
                const std::string& key_part, const std::string& reason_part) {
    for (const auto& [key, reason] : rejects) {
        if (key.find(key_part) != std::string::npos &&
            reason.find(reason_part) != std::string::npos) {
            return true;
        }
    }
    return false;
}

} // namespace

TEST_CASE("db_sync turns records that once stopped the job into rows or rejects",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("into " << target.name) {
            HostileFixture f(target.url);
            const auto first = f.sync();
            INFO(explain(first));
            REQUIRE(first.exit_code == 3);
            auto db = crmsync::testing::open(target.url);
            const auto& d = db->dialect();
            const auto rejects = f.rejects(*db);
            std::string listed;
            for (const auto& [key, reason] : rejects) {
                listed += key + ": " + reason + "\n";
            }
            INFO(listed);

            SECTION("a lone surrogate is stored as U+FFFD") {
                const auto rows = db->query("SELECT " + d.quote("x VALUES (y)") + " FROM " +
                                                d.quote(f.prefix + "contacts") + " WHERE " +
                                                d.quote("$id") + " = " + d.placeholder("p", 0),
                                            {std::string("HOSTILESURROGATE")});
                REQUIRE(rows.size() == 1);
                CHECK(rows[0][0] == std::optional<std::string>("a\xEF\xBF\xBD"
                                                               "b\xEF\xBF\xBD"));
            }
            SECTION("an unparsable body received twice rejects the ids asked for") {
                CHECK(has_reject(rejects, "HOSTILEBROKEN001", "same body that is not JSON"));
            }
            SECTION("a contact nested 200,000 levels deep is rejected by its id") {
                CHECK(has_reject(rejects, "HOSTILEDEEPNEST1", "deeper than 128"));
            }
            SECTION("a time past the year 9999 is rejected with the column's name") {
                CHECK(has_reject(rejects, "HOSTILEYEAR10000", "$created_date"));
            }
            SECTION("1e30 is stored where the column holds it and rejected where not") {
                const long stored = crmsync::testing::count_rows(
                    *db, f.prefix + "contacts", d.quote("$id") + " = 'HOSTILENUMBER001'");
                CHECK(stored + (has_reject(rejects, "HOSTILENUMBER001", "") ? 1 : 0) == 1);
            }
            SECTION("a NUL in an id becomes U+FFFD, never a cut key") {
                CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts",
                                                   d.quote("$id") + " = 'HOSTILENUL" +
                                                       "\xEF\xBF\xBD" + "ID001'") == 1);
                CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts",
                                                   d.quote("$id") + " = 'HOSTILENUL'") == 0);
            }
            SECTION("every contact is stored despite a column named x VALUES (y)") {
                // 70 generated, the lone surrogate and the NUL id; COPY took the batch.
                CHECK(crmsync::testing::count_rows(*db, f.prefix + "contacts") >= 72);
            }
            SECTION("the next run is never stuck and adds no rejects") {
                const auto again = f.sync();
                INFO(explain(again));
                CHECK((again.exit_code == 0 || again.exit_code == 3));
                CHECK(f.rejects(*db).size() == rejects.size());
            }
        }
    }
}
