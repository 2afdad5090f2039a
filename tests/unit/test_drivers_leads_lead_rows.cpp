#include "drivers/leads/lead_rows.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace leads = crmsync::drivers::leads;
namespace sql = crmsync::sql;
using nlohmann::json;

namespace {

struct Reject {
    std::string key, reason, raw;
};

class RecordingEmitter final : public crmsync::pipeline::Emitter {
public:
    std::vector<sql::Row> rows;
    std::vector<Reject> rejects;

    void add(const sql::Table& /*table*/, sql::Row row) override { rows.push_back(std::move(row)); }
    void reject(const std::string& /*table*/, const std::string& key, const std::string& reason,
                const std::string& raw) override {
        rejects.push_back({key, reason, raw});
    }
};

std::optional<std::string> value(const sql::Row& row, const char* column) {
    return row.at(leads::leads_table().position(column));
}

json facebook_lead() {
    return {{"source", "facebook"},
            {"id", "1822987174970860009"},
            {"created_at", "2026-12-03T10:00:00Z"},
            {"name", "  Anna Nowak "},
            {"email", "anna@example.com"},
            {"phone", nullptr},
            {"message", "Call me"},
            {"details", {{"form_id", "55"}}}};
}

} // namespace

TEST_CASE("leads transform", "[unit]") {
    RecordingEmitter out;

    SECTION("turns a lead record into a row of the leads table and back") {
        leads::transform_lead(facebook_lead(), "w1", out);
        REQUIRE(out.rows.size() == 1);
        const auto& row = out.rows[0];
        CHECK(value(row, "lead_key") == "facebook/1822987174970860009");
        CHECK(value(row, "created_at") == "2026-12-03 10:00:00.000");
        CHECK(value(row, "name") == "Anna Nowak");
        CHECK(!value(row, "phone"));
        CHECK(value(row, "fetch_window") == "w1");
        const auto back = leads::lead_from_row(leads::leads_table(), row);
        CHECK(back["created_at"] == "2026-12-03T10:00:00.000Z");
        CHECK(back["details"]["form_id"] == "55");
        CHECK(leads::lead_title(back) == "Facebook 1822987174970860009: Anna Nowak");
    }
    SECTION("rejects a record the source could not read, with its reason") {
        leads::transform_lead({{"source", "gmail"},
                               {"id", "m1"},
                               {"error", "no Name: line in the mail"},
                               {"raw", "Hello"}},
                              "", out);
        REQUIRE(out.rejects.size() == 1);
        CHECK(out.rejects[0].key == "gmail/m1");
        CHECK(out.rejects[0].reason == "no Name: line in the mail");
        CHECK(out.rejects[0].raw == "Hello");
        CHECK(out.rows.empty());
    }
    SECTION("rejects wrong types, unknown sources and missing ids") {
        auto wrong = facebook_lead();
        wrong["email"] = 42;
        leads::transform_lead(wrong, "", out);
        auto bad_time = facebook_lead();
        bad_time["created_at"] = "yesterday";
        leads::transform_lead(bad_time, "", out);
        auto unknown = facebook_lead();
        unknown["source"] = "myspace";
        leads::transform_lead(unknown, "", out);
        auto no_id = facebook_lead();
        no_id.erase("id");
        leads::transform_lead(no_id, "", out);
        leads::transform_lead(json::array({1, 2}), "", out);
        REQUIRE(out.rejects.size() == 5);
        CHECK(out.rejects[0].reason == "email is not a string");
        CHECK(out.rejects[1].reason == "created_at is not an ISO-8601 time");
        CHECK(out.rejects[2].reason == "unknown lead source 'myspace'");
        CHECK(out.rejects[3].reason == "the lead has no id");
        CHECK(out.rejects[4].reason == "a lead record is not a JSON object");
        CHECK(out.rows.empty());
    }
    SECTION("titles carry the source's lead id, the phone for Callback24, else the name") {
        CHECK(leads::lead_title({{"source", "callback24"},
                                 {"id", "1822987"},
                                 {"phone", "+48500100200"},
                                 {"name", nullptr}}) == "Callback24 1822987: +48500100200");
        CHECK(leads::lead_title({{"source", "gmail"}, {"id", "18c2"}, {"email", "a@b.pl"}}) ==
              "Gmail 18c2: a@b.pl");
        CHECK(leads::title_marker("gmail", "18c2") == "Gmail 18c2:");
    }
}
