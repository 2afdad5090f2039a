#include "drivers/dialfire/simdjson_contacts.hpp"
#include "drivers/dialfire/transform.hpp"
#include "drivers/sqlite/connection.hpp"
#include "lib/core/error.hpp"
#include "lib/pipeline/summary.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/sql/dialect.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

using crmsync::Error;
using crmsync::ErrorKind;
using crmsync::drivers::dialfire::CampaignField;
using crmsync::drivers::dialfire::DialfireSchema;
using crmsync::drivers::dialfire::TransactionFilter;
using crmsync::drivers::dialfire::TransformCounters;
using nlohmann::json;
namespace dialfire = crmsync::drivers::dialfire;
namespace sql = crmsync::sql;
namespace util = crmsync::util;
namespace pipeline = crmsync::pipeline;

namespace {

ErrorKind parse_error(const std::string& mode, const std::string& prefixes) {
    try {
        TransactionFilter::parse(mode, prefixes);
    } catch (const Error& e) {
        return e.kind();
    }
    FAIL("no error for mode '" << mode << "'");
    return ErrorKind::internal;
}

std::vector<std::string> column_names(const sql::Table& table) {
    std::vector<std::string> names;
    for (const auto& c : table.columns) {
        names.push_back(c.name);
    }
    return names;
}

// A SQLite file in a fresh temp dir, prepared with the Dialfire tables; transform_contact()
// writes through a TargetWriter and commit() makes the rows visible.
class SqliteTarget {
public:
    explicit SqliteTarget(const std::vector<CampaignField>& fields = {{"firstname", "text"},
                                                                      {"revenue", "number"}}) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "crmsync-unit-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        m_dir = pattern;
        db = crmsync::drivers::sqlite::connect(
            util::parse_database_url("sqlite://" + (m_dir / "target.db").string()));
        schema = DialfireSchema::build("dfire_", fields, 100, db->dialect().max_identifier_bytes());
        writer = std::make_unique<pipeline::TargetWriter>(*db, "TESTCAMPAIGN", summary);
        writer->prepare(schema.tables());
    }
    ~SqliteTarget() {
        writer.reset();
        db.reset();
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }

    void write(const json& contact, const TransactionFilter& filter = {}) {
        dialfire::transform_contact(contact, schema, filter, *writer, counters);
        writer->commit(std::nullopt, "{}");
    }

    // Rows of `sql` as text, NULL as "<NULL>".
    std::vector<std::vector<std::string>> rows(const std::string& query) {
        std::vector<std::vector<std::string>> out;
        for (const auto& row : db->query(query)) {
            std::vector<std::string> r;
            for (const auto& v : row) {
                r.push_back(v ? *v : "<NULL>");
            }
            out.push_back(r);
        }
        return out;
    }

    std::unique_ptr<sql::Database> db;
    DialfireSchema schema;
    pipeline::RunSummary summary;
    std::unique_ptr<pipeline::TargetWriter> writer;
    TransformCounters counters;

private:
    std::filesystem::path m_dir;
};

const char* const k_fired = "2024-01-01T10:00:00.000Z";

json sample_contact() {
    return json::parse(R"({
      "$id": "CONTACT1", "$md5": "m1", "$campaign_id": "CAMP", "$task": "fc_call",
      "$created_date": "2024-01-01T09:00:00.000Z", "firstname": "Anna", "revenue": 12.5,
      "$task_log": [{"task": "fc_call", "transactions": [
        {"fired": "2024-01-01T10:00:00.000Z", "type": "update", "task": "fc_call",
         "user": "agent1", "pause_time_sec": 3, "isHI": true,
         "connections": [
           {"id": "conn1", "technology": "phone", "started": "2024-01-01T10:00:01.000Z",
            "disconnected": "2024-01-01T10:01:00.000Z",
            "recordings": [
              {"started": "2024-01-01T10:00:02.000Z", "location": "gs://bucket/rec1.mp3"},
              {"started": "2024-01-01T10:00:05.000Z", "location": null}],
            "third_party_connections": [
              {"id": "tp1", "disconnected": "2024-01-01T10:00:30.000Z",
               "third_party_connections": [
                 {"id": "tp2", "disconnected": "2024-01-01T10:00:20.000Z"}]}]},
           {"id": "conn2", "technology": "transfer", "disconnected": "2024-01-01T10:02:00.000Z"},
           {"id": "conn3", "technology": "phone", "started": "2024-01-01T10:03:00.000Z"}
         ]},
        {"fired": "2024-01-01T10:00:00.000Z", "type": "update", "task": "fc_call", "user": "agent2"}
      ]}]
    })");
}

} // namespace

TEST_CASE("dialfire::TransactionFilter::parse", "[unit]") {
    SECTION("no mode and no prefixes filter nothing") {
        const auto f = TransactionFilter::parse("", "");
        CHECK_FALSE(f.updates_only);
        CHECK_FALSE(f.human_only);
        CHECK(f.task_prefixes.empty());
    }
    SECTION("updates_only and hi_updates_only set their flags") {
        const auto u = TransactionFilter::parse("updates_only", "");
        CHECK(u.updates_only);
        CHECK_FALSE(u.human_only);
        const auto h = TransactionFilter::parse("hi_updates_only", "");
        CHECK(h.updates_only);
        CHECK(h.human_only);
    }
    SECTION("prefixes are split on commas and trimmed, so 'fc_, qc_' works") {
        CHECK(TransactionFilter::parse("", "fc_, qc_").task_prefixes ==
              std::vector<std::string>{"fc_", "qc_"});
        CHECK(TransactionFilter::parse("", " fc_ ,\tqc_\t").task_prefixes ==
              std::vector<std::string>{"fc_", "qc_"});
    }
    SECTION("empty prefixes are dropped") {
        CHECK(TransactionFilter::parse("", "fc_,,qc_,").task_prefixes ==
              std::vector<std::string>{"fc_", "qc_"});
        CHECK(TransactionFilter::parse("", " , ").task_prefixes.empty());
    }
    SECTION("an unknown mode is a usage error") {
        CHECK(parse_error("bogus", "") == ErrorKind::usage);
        CHECK(parse_error("webhook", "") == ErrorKind::usage);
    }
}

TEST_CASE("dialfire::TransactionFilter::accepts", "[unit]") {
    SECTION("without filters every transaction passes") {
        const TransactionFilter f;
        CHECK(f.accepts(json{{"type", "note"}, {"task", "zz"}}));
        CHECK(f.accepts(json::object()));
    }
    SECTION("updates_only skips a type present and not update") {
        const auto f = TransactionFilter::parse("updates_only", "");
        CHECK(f.accepts(json{{"type", "update"}}));
        CHECK_FALSE(f.accepts(json{{"type", "note"}}));
        CHECK_FALSE(f.accepts(json{{"type", ""}}));
    }
    SECTION("transactions lacking type or task pass") {
        const auto f = TransactionFilter::parse("updates_only", "fc_");
        CHECK(f.accepts(json{{"user", "a"}}));
        CHECK(f.accepts(json{{"type", nullptr}, {"task", nullptr}}));
    }
    SECTION("hi_updates_only also skips a null or missing user and $assigned") {
        const auto f = TransactionFilter::parse("hi_updates_only", "");
        CHECK(f.accepts(json{{"type", "update"}, {"user", "agent1"}}));
        CHECK(f.accepts(json{{"user", "agent1"}, {"status_detail", "success"}}));
        CHECK_FALSE(f.accepts(json{{"type", "update"}}));
        CHECK_FALSE(f.accepts(json{{"type", "update"}, {"user", nullptr}}));
        CHECK_FALSE(f.accepts(
            json{{"type", "update"}, {"user", "agent1"}, {"status_detail", "$assigned"}}));
        CHECK_FALSE(f.accepts(json{{"type", "note"}, {"user", "agent1"}}));
    }
    SECTION("prefixes skip a task present and matching none") {
        const auto f = TransactionFilter::parse("", "fc_, qc_");
        CHECK(f.accepts(json{{"task", "fc_call"}}));
        CHECK(f.accepts(json{{"task", "qc_check"}}));
        CHECK_FALSE(f.accepts(json{{"task", "xx_other"}}));
        CHECK_FALSE(f.accepts(json{{"task", "afc_call"}}));
        CHECK(f.accepts(json{{"type", "update"}}));
    }
    SECTION("--until skips transactions fired after it") {
        TransactionFilter f;
        f.until = util::parse_iso8601("2024-01-01T10:00:00.000Z");
        CHECK(f.accepts(json{{"fired", "2024-01-01T10:00:00.000Z"}}));
        CHECK(f.accepts(json{{"fired", "2023-12-31T23:59:59.999Z"}}));
        CHECK_FALSE(f.accepts(json{{"fired", "2024-01-01T10:00:00.001Z"}}));
        CHECK(f.accepts(json::object()));
    }
}

TEST_CASE("dialfire::DialfireSchema::build", "[unit]") {
    SECTION("makes the five prefixed tables") {
        const auto s = DialfireSchema::build("dfire_", {}, 100, 63);
        REQUIRE(s.specs.size() == 5);
        CHECK(s.specs[s.contacts].table.name == "dfire_contacts");
        CHECK(s.specs[s.transactions].table.name == "dfire_transactions");
        CHECK(s.specs[s.connections].table.name == "dfire_connections");
        CHECK(s.specs[s.recordings].table.name == "dfire_recordings");
        CHECK(s.specs[s.inbound_calls].table.name == "dfire_inbound_calls");
        CHECK(s.tables().size() == 5);
        CHECK(DialfireSchema::build("", {}, 100, 63).specs[0].table.name == "contacts");
    }
    SECTION("custom fields become contacts columns after the fixed ones, typed by field type") {
        const auto base = DialfireSchema::build("dfire_", {}, 100, 63);
        const auto s = DialfireSchema::build(
            "dfire_", {{"firstname", "text"}, {"revenue", "number"}, {"agree", "checkbox"}}, 100,
            63);
        const auto& contacts = s.specs[s.contacts];
        const std::size_t fixed = base.specs[base.contacts].table.columns.size();
        REQUIRE(contacts.table.columns.size() == fixed + 3);
        CHECK(contacts.table.columns[fixed].name == "firstname");
        CHECK(contacts.table.columns[fixed].type == sql::ColumnType::text);
        CHECK(contacts.table.columns[fixed + 1].name == "revenue");
        CHECK(contacts.table.columns[fixed + 1].type == sql::ColumnType::number);
        CHECK(contacts.table.columns[fixed + 2].type == sql::ColumnType::text);
        CHECK(contacts.sources[fixed + 1] == "revenue");
        CHECK(s.custom_fields == std::vector<std::string>{"firstname", "revenue", "agree"});
    }
    SECTION("max_custom_fields limits the columns; 0 means all") {
        std::vector<CampaignField> fields;
        for (int i = 0; i < 150; ++i) {
            fields.push_back({"f" + std::to_string(i), "text"});
        }
        CHECK(DialfireSchema::build("dfire_", fields, 100, 63).custom_fields.size() == 100);
        CHECK(DialfireSchema::build("dfire_", fields, 1, 63).custom_fields ==
              std::vector<std::string>{"f0"});
        CHECK(DialfireSchema::build("dfire_", fields, 0, 63).custom_fields.size() == 150);
    }
    SECTION("$-fields that have fixed columns are not duplicated and do not count") {
        const auto base = DialfireSchema::build("dfire_", {}, 100, 63);
        const auto s = DialfireSchema::build(
            "dfire_", {{"$id", "text"}, {"$status", "text"}, {"$phone", "text"}, {"x", "text"}}, 2,
            63);
        CHECK(s.custom_fields == std::vector<std::string>{"x"});
        CHECK(s.specs[s.contacts].table.columns.size() ==
              base.specs[base.contacts].table.columns.size() + 1);
    }
    SECTION("a field listed twice is one column") {
        const auto s = DialfireSchema::build("dfire_", {{"x", "text"}, {"x", "number"}}, 100, 63);
        CHECK(s.custom_fields == std::vector<std::string>{"x"});
    }
    SECTION("hostile names are sanitised, length-limited and collision-free") {
        const std::string long_name(100, 'L');
        const auto s = DialfireSchema::build("dfire_",
                                             {{"a\"b", "text"},
                                              {"a`b", "text"},
                                              {"x]y", "text"},
                                              {"_raw", "text"},
                                              {"$changed", "text"},
                                              {"FirstName", "text"},
                                              {"firstname", "text"},
                                              {"$ID", "text"},
                                              {"q?:", "text"},
                                              {long_name, "text"},
                                              {" ", "text"}},
                                             0, 63);
        const auto& table = s.specs[s.contacts].table;
        std::set<std::string> keys;
        for (const auto& name : column_names(table)) {
            INFO(name);
            CHECK(keys.insert(util::collision_key(name)).second);
            CHECK(name.size() <= 63);
            CHECK(name.find_first_of("\"`[]?:'\\") == std::string::npos);
            CHECK_FALSE(name.empty());
        }
        CHECK(s.custom_fields.size() == 11);
        // The fixed columns keep their names.
        CHECK(table.find("_raw") != nullptr);
        CHECK(table.find("$changed") != nullptr);
        CHECK(table.find("$id") != nullptr);
        CHECK(table.columns[table.position("_raw")].type == sql::ColumnType::json);
    }
}

TEST_CASE("dialfire::transform_contact into SQLite", "[sqlite]") {
    SqliteTarget target;
    const std::string tx1 = util::md5_hex(std::string("CONTACT1") + k_fired);
    const std::string tx_dup = util::md5_hex(std::string("CONTACT1") + k_fired + "#1");

    SECTION("stores the contact with its custom fields and a valid _raw") {
        target.write(sample_contact());
        const auto rows = target.rows(
            R"(SELECT "$id", "$md5", "$campaign_id", "firstname", "revenue", "$created_date", "_raw" FROM "dfire_contacts")");
        REQUIRE(rows.size() == 1);
        CHECK(rows[0][0] == "CONTACT1");
        CHECK(rows[0][1] == "m1");
        CHECK(rows[0][2] == "CAMP");
        CHECK(rows[0][3] == "Anna");
        CHECK(rows[0][4] == "12.5");
        CHECK(rows[0][5] == "2024-01-01 09:00:00.000");
        const auto raw = json::parse(rows[0][6]);
        CHECK(raw["$id"] == "CONTACT1");
        CHECK(raw["firstname"] == "Anna");
    }
    SECTION("the contact's _raw keeps $task_log entries without their transactions") {
        target.write(sample_contact());
        const auto rows = target.rows(R"(SELECT "_raw" FROM "dfire_contacts")");
        REQUIRE(rows.size() == 1);
        const auto raw = json::parse(rows[0][0]);
        REQUIRE(raw["$task_log"].is_array());
        CHECK(raw["$task_log"][0]["task"] == "fc_call");
        CHECK_FALSE(raw["$task_log"][0].contains("transactions"));
    }
    SECTION("a contact without $task_log is stored alone") {
        json contact = sample_contact();
        contact.erase("$task_log");
        target.write(contact);
        CHECK(target.rows(R"(SELECT "$id" FROM "dfire_contacts")").size() == 1);
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_transactions")").empty());
        CHECK(target.rows(R"(SELECT "id" FROM "crmsync_rejects")").empty());
    }
    SECTION("transaction ids are md5($id + fired), a duplicate fired gets a distinct id") {
        target.write(sample_contact());
        CHECK(tx1.rfind("c72c96f3", 0) == 0);
        const auto rows = target.rows(
            R"(SELECT "id", "contact_id", "user", "fired", "pause_time_sec", "isHI", "_raw" FROM "dfire_transactions" ORDER BY "user")");
        REQUIRE(rows.size() == 2);
        CHECK(rows[0][0] == tx1);
        CHECK(rows[0][1] == "CONTACT1");
        CHECK(rows[0][2] == "agent1");
        CHECK(rows[0][3] == "2024-01-01 10:00:00.000");
        CHECK(rows[0][4] == "3");
        CHECK(rows[0][5] == "1");
        CHECK(rows[1][0] == tx_dup);
        CHECK(rows[1][0] != rows[0][0]);
        CHECK(rows[1][2] == "agent2");
        const auto raw = json::parse(rows[0][6]);
        CHECK(raw["fired"] == k_fired);
        CHECK_FALSE(raw.contains("connections"));
    }
    SECTION(
        "connections are flattened with parent_connection_id for transfers and third-party legs") {
        target.write(sample_contact());
        const auto rows = target.rows(
            R"(SELECT "id", "parent_connection_id", "transaction_id", "contact_id", "_raw" FROM "dfire_connections" ORDER BY "id")");
        std::map<std::string, std::string> parent;
        for (const auto& r : rows) {
            parent[r[0]] = r[1];
            CHECK(r[2] == tx1);
            CHECK(r[3] == "CONTACT1");
            const auto raw = json::parse(r[4]);
            CHECK(raw["id"] == r[0]);
            CHECK_FALSE(raw.contains("recordings"));
            CHECK_FALSE(raw.contains("third_party_connections"));
        }
        CHECK(parent ==
              std::map<std::string, std::string>{
                  {"conn1", "<NULL>"}, {"conn2", "conn1"}, {"tp1", "conn1"}, {"tp2", "tp1"}});
    }
    SECTION("a connection without disconnected is skipped and counted as in progress") {
        target.write(sample_contact());
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_connections" WHERE "id" = 'conn3')").empty());
        CHECK(target.counters.in_progress == 1);
    }
    SECTION("recording ids are md5(connection id + location), else + started") {
        target.write(sample_contact());
        const auto rows = target.rows(
            R"(SELECT "id", "connection_id", "contact_id", "location", "started", "_raw" FROM "dfire_recordings" ORDER BY "started")");
        REQUIRE(rows.size() == 2);
        CHECK(rows[0][0] == util::md5_hex("conn1gs://bucket/rec1.mp3"));
        CHECK(rows[0][0].rfind("6a42c0ec", 0) == 0);
        CHECK(rows[0][1] == "conn1");
        CHECK(rows[0][2] == "CONTACT1");
        CHECK(rows[0][3] == "gs://bucket/rec1.mp3");
        CHECK(rows[1][0] == util::md5_hex("conn12024-01-01T10:00:05.000Z"));
        CHECK(rows[1][3] == "<NULL>");
        CHECK_NOTHROW(json::parse(rows[1][5]));
    }
    SECTION("a contact without $id is rejected into crmsync_rejects with its reason") {
        json contact = sample_contact();
        contact.erase("$id");
        target.write(contact);
        CHECK(target.rows(R"(SELECT "$id" FROM "dfire_contacts")").empty());
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_transactions")").empty());
        const auto rejects =
            target.rows(R"(SELECT "job", "table_name", "reason", "raw" FROM "crmsync_rejects")");
        REQUIRE(rejects.size() == 1);
        CHECK(rejects[0][0] == "TESTCAMPAIGN");
        CHECK(rejects[0][1] == "dfire_contacts");
        CHECK(rejects[0][2].find("$id") != std::string::npos);
        CHECK(json::parse(rejects[0][3])["$md5"] == "m1");
        CHECK(target.summary.rejected == 1);
    }
    SECTION("a contact that is not an object is rejected, not a crash") {
        target.write(json::array({1, 2}));
        target.write(json("text"));
        CHECK(target.rows(R"(SELECT "id" FROM "crmsync_rejects")").size() == 2);
    }
    SECTION("a transaction with pause_time_sec \"abc\" is rejected, its contact is stored") {
        json contact = sample_contact();
        contact["$task_log"][0]["transactions"].push_back(
            {{"fired", "2024-01-02T10:00:00.000Z"}, {"pause_time_sec", "abc"}});
        target.write(contact);
        CHECK(target.rows(R"(SELECT "$id" FROM "dfire_contacts")").size() == 1);
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_transactions")").size() == 2);
        const auto rejects =
            target.rows(R"(SELECT "table_name", "record_key", "reason" FROM "crmsync_rejects")");
        REQUIRE(rejects.size() == 1);
        CHECK(rejects[0][0] == "dfire_transactions");
        CHECK(rejects[0][2].find("pause_time_sec") != std::string::npos);
        CHECK(rejects[0][2].find("abc") != std::string::npos);
    }
    SECTION("a wrongly typed custom field rejects the contact with the column named") {
        json contact = sample_contact();
        contact["revenue"] = "lots";
        target.write(contact);
        const auto rejects =
            target.rows(R"(SELECT "table_name", "record_key", "reason" FROM "crmsync_rejects")");
        REQUIRE(rejects.size() == 1);
        CHECK(rejects[0][0] == "dfire_contacts");
        CHECK(rejects[0][1] == "CONTACT1");
        CHECK(rejects[0][2].find("revenue") != std::string::npos);
    }
    SECTION("filtered transactions are counted and not stored") {
        target.write(sample_contact(), TransactionFilter::parse("", "qc_"));
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_transactions")").empty());
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_connections")").empty());
        CHECK(target.counters.filtered == 2);
        CHECK(target.rows(R"(SELECT "$id" FROM "dfire_contacts")").size() == 1);
    }
    SECTION("writing the same contact twice leaves one row per id") {
        target.write(sample_contact());
        target.write(sample_contact());
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_transactions")").size() == 2);
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_connections")").size() == 4);
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_recordings")").size() == 2);
    }
    SECTION("NUL characters and hostile strings are stored safely") {
        json contact = sample_contact();
        contact["firstname"] = std::string("An\0na'); DROP TABLE x;--", 24);
        target.write(contact);
        const auto rows = target.rows(R"(SELECT "firstname" FROM "dfire_contacts")");
        REQUIRE(rows.size() == 1);
        CHECK(rows[0][0] == "An\xEF\xBF\xBDna'); DROP TABLE x;--");
    }
}

TEST_CASE("dialfire::transform_contact keeps number precision in SQLite", "[sqlite]") {
    SqliteTarget target(std::vector<CampaignField>{{"big", "number"}});
    SECTION("a number with more digits than a double holds is stored exactly or rejected") {
        json contact = sample_contact();
        contact["big"] = "12345678901234567890.123456789";
        target.write(contact);
        const auto rejected = target.rows(R"(SELECT "id" FROM "crmsync_rejects")").size();
        const auto rows = target.rows(R"(SELECT "big" FROM "dfire_contacts")");
        if (rejected == 0) {
            REQUIRE(rows.size() == 1);
            CHECK(rows[0][0] == "12345678901234567890.123456789");
        } else {
            CHECK(rows.empty());
        }
    }
}

TEST_CASE("dialfire::transform_inbound_call into SQLite", "[sqlite]") {
    SqliteTarget target;
    SECTION("copies dbsync2's renamed fields") {
        const json call = json::parse(R"({
          "id": "IC1", "line_id": "L1", "campaign_id": "CAMP", "task_id": "T1",
          "task_name": "inbound", "contact_id": "CONTACT1", "calling_number": "+491701234",
          "called_number": "+4930999", "call_time": "2024-01-01T10:00:00.000Z",
          "connect_time": "2024-01-01T10:00:05.000Z", "hangup_time": "2024-01-01T10:02:00.000Z",
          "user": "agent1", "state": "done", "dispatch_error": false})");
        dialfire::transform_inbound_call(call, target.schema, *target.writer);
        target.writer->commit(std::nullopt, "{}");
        const auto rows = target.rows(
            R"(SELECT "id", "remote_number", "line_number", "started", "connected", "disconnected", "dispatch_error", "_raw" FROM "dfire_inbound_calls")");
        REQUIRE(rows.size() == 1);
        CHECK(rows[0][0] == "IC1");
        CHECK(rows[0][1] == "+491701234");
        CHECK(rows[0][2] == "+4930999");
        CHECK(rows[0][3] == "2024-01-01 10:00:00.000");
        CHECK(rows[0][4] == "2024-01-01 10:00:05.000");
        CHECK(rows[0][5] == "2024-01-01 10:02:00.000");
        CHECK(rows[0][6] == "0");
        CHECK(json::parse(rows[0][7])["calling_number"] == "+491701234");
    }
    SECTION("an inbound call without id is rejected") {
        dialfire::transform_inbound_call(json{{"line_id", "L1"}}, target.schema, *target.writer);
        target.writer->commit(std::nullopt, "{}");
        CHECK(target.rows(R"(SELECT "id" FROM "dfire_inbound_calls")").empty());
        const auto rejects = target.rows(R"(SELECT "table_name" FROM "crmsync_rejects")");
        REQUIRE(rejects.size() == 1);
        CHECK(rejects[0][0] == "dfire_inbound_calls");
    }
}

TEST_CASE("dialfire::transform_contact with NUL bytes in the id", "[sqlite]") {
    SqliteTarget target;
    SECTION("the id becomes U+FFFD in the contact and in every key computed from it") {
        json contact = sample_contact();
        contact["$id"] = std::string("CON\0TACT", 8);
        target.write(contact);
        const std::string scrubbed = "CON\xEF\xBF\xBDTACT";
        const auto contacts = target.rows(R"(SELECT "$id" FROM "dfire_contacts")");
        REQUIRE(contacts.size() == 1);
        CHECK(contacts[0][0] == scrubbed);
        const auto txs = target.rows(R"(SELECT DISTINCT "contact_id" FROM "dfire_transactions")");
        REQUIRE(txs.size() == 1);
        CHECK(txs[0][0] == scrubbed);
    }
}

namespace {

// What a transform emitted, in order, as text: rows with their table and values, rejects with
// everything they carry.
struct RecordingEmitter : pipeline::Emitter {
    std::vector<std::string> events;
    void add(const sql::Table& table, sql::Row row) override {
        std::string event = "add " + table.name;
        for (const auto& value : row) {
            event += value ? "|" + *value : "|<NULL>";
        }
        events.push_back(std::move(event));
    }
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override {
        events.push_back("reject " + table + "|" + key + "|" + reason + "|" + raw);
    }
};

} // namespace

TEST_CASE("dialfire::transform_contact gives the same rows from simdjson's document as from "
          "nlohmann's",
          "[unit][http]") {
    crmsync::fakes::FakeCampaignOptions campaign;
    campaign.contacts = 120;
    campaign.inbound_calls = 0;
    campaign.hostile = true;
    crmsync::fakes::DialfireFake fake(campaign);
    fake.start();
    auto ids = fake.contact_ids();
    // Besides the hostile campaign's own: what simdjson keeps and nlohmann's map does not
    // (repeated names, in the contact and inside its transactions), NULs, wrong types.
    fake.set_contact_text(
        ids[0], R"({"$id":")" + ids[0] + R"(","firstname":"one","firstname":"two","$id":")" +
                    ids[0] +
                    R"(","$task_log":[{"transactions":[{"fired":"2026-01-01T10:00:00Z",)"
                    R"("type":"update","type":"other","user":"u","connections":[)"
                    R"({"id":"c1","disconnected":null,"disconnected":"2026-01-01T10:01:00Z",)"
                    R"("technology":"phone","recordings":[{"location":"l"},{"started":7}]}]}]}]})");
    fake.set_contact_text(ids[1], R"({"$id":")" + ids[1] +
                                      R"(\u0000x","na\u0000me":"v\u0000","revenue":"abc",)"
                                      R"("$task_log":"not a list"})");
    fake.set_contact_text(ids[2], R"({"$id":17,"firstname":["a"]})");
    fake.set_contact_text(
        ids[3], R"({"$id":")" + ids[3] +
                    R"(","$task_log":[{"transactions":[{"fired":"x"},{"nofired":1},)"
                    R"({"fired":"2026-01-01T10:00:00Z","connections":[{"technology":"transfer"},)"
                    R"({"id":"t2","technology":"transfer","disconnected":"2026-01-01T10:00:00Z",)"
                    R"("third_party_connections":[{"id":"leg","disconnected":1.5}]}]}]}],)"
                    R"("revenue":1e3})");

    crmsync::drivers::dialfire::ApiConfig config;
    config.base_url = fake.base_url();
    config.campaign = fake.options().campaign_id;
    config.token = fake.options().token;
    crmsync::http::RetryPolicy policy;
    policy.base_delay = std::chrono::milliseconds(1);
    crmsync::http::RetryStats stats;
    dialfire::ApiClient api(config, crmsync::http::RetryContext{
                                        policy, stats, crmsync::Clock::real(), std::nullopt, ""});
    std::vector<CampaignField> fields = api.fields();
    const auto schema = DialfireSchema::build("df_", fields, 0, 64);

    TransactionFilter filter;
    SECTION("no filter") {}
    SECTION("every filter") {
        filter = TransactionFilter::parse("hi_updates_only", "Task, Sales");
        filter.until = *util::parse_iso8601("2026-06-01T00:00:00Z");
    }
    const auto order = GENERATE(sql::JsonMemberOrder::by_name, sql::JsonMemberOrder::jsonb);
    sql::set_json_member_order(order);
    long kept_contacts = 0;
    for (std::size_t start = 0; start < ids.size(); start += dialfire::k_contacts_per_request) {
        const std::vector<std::string> asked(
            ids.begin() + static_cast<long>(start),
            ids.begin() +
                static_cast<long>(std::min(ids.size(), start + dialfire::k_contacts_per_request)));
        const auto slow = api.fetch_contacts(asked);
        const auto fast = api.fetch_contacts(asked, true);
        INFO("request from contact " << start);
        CHECK(fast.missing == slow.missing);
        CHECK(fast.rejects.size() == slow.rejects.size());
        REQUIRE(slow.kept == nullptr);
        RecordingEmitter slow_rows;
        RecordingEmitter fast_rows;
        TransformCounters slow_counters;
        TransformCounters fast_counters;
        for (const auto& contact : slow.contacts) {
            dialfire::transform_contact(contact, schema, filter, slow_rows, slow_counters);
        }
        for (const auto& contact : fast.contacts) {
            dialfire::transform_contact(contact, schema, filter, fast_rows, fast_counters);
        }
        if (fast.kept) {
            kept_contacts += static_cast<long>(fast.kept->size());
            for (const auto& contact : fast.kept->contacts) {
                dialfire::transform_contact(contact, schema, filter, fast_rows, fast_counters);
            }
        }
        CHECK(fast_rows.events.size() == slow_rows.events.size());
        for (std::size_t i = 0; i < std::min(fast_rows.events.size(), slow_rows.events.size());
             ++i) {
            INFO("event " << i);
            CHECK(fast_rows.events[i] == slow_rows.events[i]);
        }
        CHECK(fast_counters.filtered == slow_counters.filtered);
        CHECK(fast_counters.in_progress == slow_counters.in_progress);
    }
    // Most answers were read straight from simdjson's document.
    CHECK(kept_contacts > static_cast<long>(ids.size()) / 2);
    sql::set_json_member_order(sql::JsonMemberOrder::by_name);
}
