#include "drivers/callcenter/transform.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace cc = crmsync::drivers::callcenter;
namespace sql = crmsync::sql;
using nlohmann::json;

namespace {

struct Recorded {
    std::string table;
    std::map<std::string, std::optional<std::string>> values;
};

struct Reject {
    std::string table, key, reason, raw;
};

class RecordingEmitter final : public crmsync::pipeline::Emitter {
public:
    std::vector<Recorded> rows;
    std::vector<Reject> rejects;

    void add(const sql::Table& table, sql::Row row) override {
        Recorded r{table.name, {}};
        for (std::size_t i = 0; i < table.columns.size(); ++i) {
            r.values[table.columns[i].name] = row[i];
        }
        rows.push_back(std::move(r));
    }
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override {
        rejects.push_back({table, key, reason, raw});
    }
};

std::string text(const Recorded& r, const std::string& column) {
    const auto it = r.values.find(column);
    REQUIRE(it != r.values.end());
    return it->second.value_or("NULL");
}

} // namespace

TEST_CASE("callcenter::transform_record", "[unit]") {
    const cc::CallcenterSchema schema("cc_");
    RecordingEmitter out;

    SECTION("a call log keeps its type and flattens its body into typed columns") {
        const json call = {{"_id", "a1"},
                           {"type", "calllog"},
                           {"creator", "ag1"},
                           {"body",
                            {{"idCalllog", "call1"},
                             {"status", "missed"},
                             {"duration", 12.5},
                             {"direction", "incoming"},
                             {"source", "0901"},
                             {"destination", "100"},
                             {"start", 1717200000123},
                             {"end", 1717200012623},
                             {"recordUrl", "https://rec/1"},
                             {"extra", 1}}},
                           {"createdAt", 1717200000000},
                           {"updatedAt", 1717200000999},
                           {"deleted", false}};
        cc::transform_record("activities", call, "cc9", schema, json(), out);
        REQUIRE(out.rows.size() == 1);
        const auto& r = out.rows[0];
        CHECK(r.table == "cc_activities");
        CHECK(text(r, "id") == "cc9/a1");
        CHECK(text(r, "call_center_id") == "cc9");
        CHECK(text(r, "_id") == "a1");
        CHECK(text(r, "type") == "calllog");
        CHECK(text(r, "call_status") == "missed");
        CHECK(text(r, "duration_s") == "12.5");
        CHECK(text(r, "direction") == "incoming");
        CHECK(text(r, "started_at") == "2024-06-01 00:00:00.123");
        CHECK(text(r, "ended_at") == "2024-06-01 00:00:12.623");
        CHECK(text(r, "updated_at") == "2024-06-01 00:00:00.999");
        CHECK(text(r, "record_url") == "https://rec/1");
        CHECK(text(r, "reminder_status") == "NULL");
        CHECK(json::parse(text(r, "_raw"))["body"]["extra"] == 1);
    }
    SECTION("a reminder fills the reminder columns only") {
        const json reminder = {
            {"_id", "a2"},
            {"type", "reminder"},
            {"body", {{"remindedAgent", "ag2"}, {"duedate", 1717286400000}, {"status", "checked"}}},
            {"updatedAt", 1717200000000}};
        cc::transform_record("activities", reminder, "cc9", schema, json(), out);
        REQUIRE(out.rows.size() == 1);
        CHECK(text(out.rows[0], "reminded_agent") == "ag2");
        CHECK(text(out.rows[0], "due_at") == "2024-06-02 00:00:00.000");
        CHECK(text(out.rows[0], "reminder_status") == "checked");
        CHECK(text(out.rows[0], "call_status") == "NULL");
    }
    SECTION("a SIP account's password is never in a row or a reject") {
        const json sip = {{"_id", "1900"},
                          {"domain", "sip.example"},
                          {"password", "hunter2-sip"},
                          {"updatedAt", 1717200000000}};
        cc::transform_record("sip_accounts", sip, "cc9", schema, json(), out);
        json bad = sip;
        bad["updatedAt"] = "later";
        cc::transform_record("sip_accounts", bad, "cc9", schema, json(), out);
        REQUIRE(out.rows.size() == 1);
        REQUIRE(out.rejects.size() == 1);
        for (const auto& [column, value] : out.rows[0].values) {
            CHECK(value.value_or("").find("hunter2-sip") == std::string::npos);
        }
        CHECK(out.rejects[0].raw.find("hunter2-sip") == std::string::npos);
        CHECK(out.rejects[0].reason.find("updated_at") != std::string::npos);
    }
    SECTION("records without a string _id or with wrong types are rejected, not thrown") {
        cc::transform_record("contacts", {{"firstName", "x"}}, "cc9", schema, json(), out);
        cc::transform_record("contacts", {{"_id", 5}}, "cc9", schema, json(), out);
        cc::transform_record("contacts", json("text"), "cc9", schema, json(), out);
        cc::transform_record("contacts", {{"_id", "c1"}, {"deleted", "maybe"}}, "cc9", schema,
                             json(), out);
        cc::transform_record("activities",
                             {{"_id", "a1"}, {"type", "calllog"}, {"body", {{"start", 1.5}}}},
                             "cc9", schema, json(), out);
        CHECK(out.rows.empty());
        REQUIRE(out.rejects.size() == 5);
        CHECK(out.rejects[0].table == "cc_contacts");
        CHECK(out.rejects[3].key == "cc9/c1");
        CHECK(out.rejects[4].reason.find("started_at") != std::string::npos);
    }
    SECTION("a tombstone is kept with deleted set") {
        cc::transform_record("contacts", {{"_id", "c1"}, {"deleted", true}}, "cc9", schema, json(),
                             out);
        REQUIRE(out.rows.size() == 1);
        CHECK(text(out.rows[0], "deleted") == "1");
    }
    SECTION("a group replaces its members: removed ones become tombstones") {
        const json group = {{"_id", "g1"},
                            {"name", "VIP"},
                            {"contactList", {"c1", "c3"}},
                            {"updatedAt", 1717200000000}};
        cc::transform_record("contact_groups", group, "cc9", schema, json{"c1", "c2"}, out);
        REQUIRE(out.rows.size() == 4);
        CHECK(out.rows[0].table == "cc_contact_groups");
        std::map<std::string, std::string> members;
        for (std::size_t i = 1; i < out.rows.size(); ++i) {
            CHECK(out.rows[i].table == "cc_contact_group_members");
            members[text(out.rows[i], "id")] = text(out.rows[i], "deleted");
        }
        CHECK(members == std::map<std::string, std::string>{
                             {"cc9/g1/c1", "0"}, {"cc9/g1/c2", "1"}, {"cc9/g1/c3", "0"}});
    }
}
