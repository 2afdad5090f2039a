// Leaving dbsync2: one `crmsync db_sync --full-refresh` on the database dbsync2 filled repairs
// what it cut and collapsed (reference dbsync2.md §5: values silently truncated to varchar(50)
// and varchar(100), fractions rounded away by MySQL's decimal(10,0), and two transactions
// fired in the same millisecond stored as one row). The README's migration guide rests on this.
//
// The tables are created with dbsync2's own DDL (reference dbsync2-ddl.txt) and hold what
// dbsync2 would have written; PostgreSQL and MariaDB only (dbsync2 had no SQLite target).

#include "tests/integration/support.hpp"

#include "lib/util/hash.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <string>

using namespace crmsync;
using crmsync::testing::TempDir;

namespace {

// dbsync2 v1.15's DDL for the two tables it damages, with the table names prefixed.
std::vector<std::string> dbsync2_ddl(const std::string& target, const std::string& prefix) {
    if (target == "mysql") {
        return {
            "CREATE TABLE `" + prefix +
                "contacts` (`$id` varchar(50) NOT NULL PRIMARY KEY, `$md5` varchar(50), `$ref` "
                "varchar(50), `$version` varchar(50), `$campaign_id` varchar(50), `$task_id` "
                "varchar(50), `$task` varchar(50), `$status` varchar(50), `$status_detail` "
                "varchar(100), `$created_date` varchar(50), `$entry_date` varchar(50), `$owner` "
                "varchar(50), `$follow_up_date` varchar(50), `$phone` varchar(50), `$timezone` "
                "varchar(50), `$caller_id` varchar(50), `$source` varchar(50), `$comment` text, "
                "`$error` varchar(50), `$recording` varchar(100), `$recording_url` varchar(100), "
                "`$changed` varchar(50), `revenue` numeric) CHARACTER SET utf16",
            "CREATE INDEX `" + prefix + "$id|$md5` ON `" + prefix + "contacts`(`$id`,`$md5`)",
            "CREATE TABLE `" + prefix +
                "transactions` (`id` varchar(50) NOT NULL PRIMARY KEY, `contact_id` varchar(50), "
                "`task_id` varchar(50), `task` varchar(50), `status` varchar(50), `status_detail` "
                "varchar(100), `fired` varchar(50), `pause_time_sec` numeric, `edit_time_sec` "
                "numeric, `wrapup_time_sec` numeric, `user` varchar(50), `user_loginName` "
                "varchar(50), `user_branch` varchar(50), `user_tenantAlias` varchar(50), `actor` "
                "varchar(50), `type` varchar(50), `result` varchar(50), `trigger` varchar(50), "
                "`isHI` boolean, `revoked` boolean, `$changed` varchar(50)) CHARACTER SET utf16",
        };
    }
    return {
        "CREATE TABLE \"" + prefix +
            "contacts\" (\"$id\" varchar(50) NOT NULL PRIMARY KEY, \"$md5\" varchar(50), \"$ref\" "
            "varchar(50), \"$version\" varchar(50), \"$campaign_id\" varchar(50), \"$task_id\" "
            "varchar(50), \"$task\" varchar(50), \"$status\" varchar(50), \"$status_detail\" "
            "varchar, \"$created_date\" varchar(50), \"$entry_date\" varchar(50), \"$owner\" "
            "varchar(50), \"$follow_up_date\" varchar(50), \"$phone\" varchar(50), \"$timezone\" "
            "varchar(50), \"$caller_id\" varchar(50), \"$source\" varchar(50), \"$comment\" text, "
            "\"$error\" varchar(50), \"$recording\" varchar, \"$recording_url\" varchar, "
            "\"$changed\" varchar(50), \"revenue\" numeric)",
        "CREATE INDEX IF NOT EXISTS \"" + prefix + "$id|$md5\" ON \"" + prefix +
            "contacts\"(\"$id\",\"$md5\")",
        "CREATE TABLE \"" + prefix +
            "transactions\" (\"id\" varchar(50) NOT NULL PRIMARY KEY, \"contact_id\" varchar(50), "
            "\"task_id\" varchar(50), \"task\" varchar(50), \"status\" varchar(50), "
            "\"status_detail\" varchar, \"fired\" varchar(50), \"pause_time_sec\" numeric, "
            "\"edit_time_sec\" numeric, \"wrapup_time_sec\" numeric, \"user\" varchar(50), "
            "\"user_loginName\" varchar(50), \"user_branch\" varchar(50), \"user_tenantAlias\" "
            "varchar(50), \"actor\" varchar(50), \"type\" varchar(50), \"result\" varchar(50), "
            "\"trigger\" varchar(50), \"isHI\" boolean, \"revoked\" boolean, \"$changed\" "
            "varchar(50))",
    };
}

std::string value_of(sql::Database& db, const std::string& table, const std::string& column,
                     const std::string& key_column, const std::string& key) {
    const auto& d = db.dialect();
    const auto rows = db.query("SELECT " + d.quote(column) + " FROM " + d.quote(table) + " WHERE " +
                                   d.quote(key_column) + " = " + d.placeholder("p", 0),
                               {key});
    REQUIRE(rows.size() == 1);
    REQUIRE(rows[0][0]);
    return *rows[0][0];
}

} // namespace

TEST_CASE("a database dbsync2 filled is repaired by one db_sync --full-refresh",
          "[integration][dbsync2]") {
    TempDir dir;
    bool ran = false;
    for (const auto& target : crmsync::testing::targets(dir)) {
        if (target.name == "sqlite") {
            continue;
        }
        ran = true;
        DYNAMIC_SECTION(target.name) {
            fakes::FakeCampaignOptions options;
            options.contacts = 12;
            options.inbound_calls = 5;
            options.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
            fakes::DialfireFake fake(options);
            fake.add_custom_field("revenue", "number");
            fake.start();

            // One contact with what dbsync2 damages: a long status detail, a fraction, and two
            // transactions fired in the same millisecond, one with a long login name.
            const std::string id = fake.contact_ids().front();
            auto contact = nlohmann::json::parse(*fake.contact_text(id));
            const std::string long_detail(150, 'd');
            const std::string long_login = std::string(70, 'u') + "@example.com";
            contact["$status_detail"] = long_detail;
            contact["revenue"] = 12.75;
            contact.erase("$md5");
            auto& log = contact["$task_log"];
            REQUIRE(log.is_array());
            REQUIRE(!log.empty());
            auto& txs = log[0]["transactions"];
            REQUIRE(!txs.empty());
            auto twin = txs[0];
            twin["status"] = "twin";
            twin["user_loginName"] = long_login;
            twin["connections"] = nlohmann::json::array();
            txs.push_back(twin);
            fake.set_contact_json(id, contact);
            const std::string fired = txs[0]["fired"].get<std::string>();
            long transactions = 0;
            for (const auto& entry : log) {
                transactions += static_cast<long>(entry["transactions"].size());
            }

            const std::string prefix = crmsync::testing::unique_prefix();
            auto db = crmsync::testing::open(target.url);
            for (const auto& statement : dbsync2_ddl(target.name, prefix)) {
                db->execute(statement);
            }
            // What dbsync2 stored: the detail cut, the revenue rounded, one transaction of
            // the two (same id md5($id + fired)), and the current md5, so a normal run would
            // skip the contact as unchanged.
            const auto& d = db->dialect();
            db->execute("INSERT INTO " + d.quote(prefix + "contacts") + " (" + d.quote("$id") +
                            ", " + d.quote("$md5") + ", " + d.quote("$status_detail") + ", " +
                            d.quote("revenue") + ") VALUES (" + d.placeholder("p", 0) + ", " +
                            d.placeholder("p", 1) + ", " + d.placeholder("p", 2) + ", 13)",
                        {id, *fake.contact_md5(id), long_detail.substr(0, 100)});
            db->execute("INSERT INTO " + d.quote(prefix + "transactions") + " (" + d.quote("id") +
                            ", " + d.quote("contact_id") + ", " + d.quote("fired") + ", " +
                            d.quote("status") + ") VALUES (" + d.placeholder("p", 0) + ", " +
                            d.placeholder("p", 1) + ", " + d.placeholder("p", 2) + ", 'twin')",
                        {util::md5_hex(id + fired), id, fired});

            const std::vector<std::string> args{
                "db_sync",   "--campaign",     fake.options().campaign_id,
                "--api-url", fake.base_url(),  "--url",
                target.url,  "--table-prefix", prefix,
                "--log-dir", dir.file("logs"), "--retry-base",
                "20ms"};
            const std::map<std::string, std::string> env{{"CRMSYNC_TOKEN", fake.options().token}};
            auto refresh = args;
            refresh.push_back("--full-refresh");
            const auto result = crmsync::testing::run_crmsync(refresh, env, dir);
            INFO("stdout: " << result.out << "\nstderr: " << result.err);
            REQUIRE(result.exit_code == 0);

            CHECK(value_of(*db, prefix + "contacts", "$status_detail", "$id", id) == long_detail);
            CHECK(std::strtod(value_of(*db, prefix + "contacts", "revenue", "$id", id).c_str(),
                              nullptr) == 12.75);
            // Both transactions of that millisecond, the second under crmsync's "#1" id.
            CHECK(crmsync::testing::count_rows(*db, prefix + "transactions",
                                               d.quote("contact_id") + " = '" + id + "'") ==
                  transactions);
            CHECK(value_of(*db, prefix + "transactions", "user_loginName", "id",
                           util::md5_hex(id + fired + "#1")) == long_login);
            CHECK(value_of(*db, prefix + "transactions", "status", "id",
                           util::md5_hex(id + fired)) != "twin");
            // Every contact of the campaign is there, and the next plain run has nothing to do.
            CHECK(crmsync::testing::count_rows(*db, prefix + "contacts") ==
                  static_cast<long>(fake.contact_ids().size()));
            const auto again = crmsync::testing::run_crmsync(args, env, dir);
            CHECK(again.exit_code == 0);
            CHECK(value_of(*db, prefix + "contacts", "$status_detail", "$id", id) == long_detail);
            crmsync::testing::drop_prefixed(*db, prefix);
        }
    }
    if (!ran) {
        WARN("no PostgreSQL or MariaDB given (tests/run.sh starts them): nothing checked");
    }
}
