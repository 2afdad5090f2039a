#include "drivers/facebook/lead_fields.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using nlohmann::json;
namespace facebook = crmsync::drivers::facebook;

namespace {

json field(const std::string& name, std::vector<std::string> values) {
    return {{"name", name}, {"values", values}};
}

// The lead of the reference (apis.md §5), as Graph sends it.
json reference_lead() {
    return {{"id", "1822987174970860009"},
            {"created_time", "2025-02-03T01:24:53+0000"},
            {"ad_id", "23851234567890123"},
            {"form_id", "700123456789"},
            {"campaign_name", "Spring"},
            {"field_data", json::array({field("full_name", {"Maria Silva"}),
                                        field("email", {"maria@example.com"}),
                                        field("phone_number", {"+48123456789"}),
                                        field("interesses", {"pro", "basic"})})}};
}

} // namespace

TEST_CASE("facebook lead_record maps Graph leads to lead records", "[unit]") {
    SECTION("the reference lead gives name, email, phone, UTC time and the rest as details") {
        const auto r = facebook::lead_record(reference_lead(), "700123456789");
        CHECK(r["source"] == "facebook");
        CHECK(r["id"] == "1822987174970860009");
        CHECK(r["created_at"] == "2025-02-03T01:24:53Z");
        CHECK(r["name"] == "Maria Silva");
        CHECK(r["email"] == "maria@example.com");
        CHECK(r["phone"] == "+48123456789");
        CHECK(r["message"].is_null());
        CHECK(r["details"]["form_id"] == "700123456789");
        CHECK(r["details"]["ad_id"] == "23851234567890123");
        CHECK(r["details"]["campaign_name"] == "Spring");
        CHECK(r["details"]["fields"] == json{{"interesses", "pro, basic"}});
        CHECK_FALSE(r.contains("error"));
    }
    SECTION("a time with another offset is converted to UTC") {
        auto lead = reference_lead();
        lead["created_time"] = "2025-02-03T03:24:53+0200";
        CHECK(facebook::lead_record(lead, "f")["created_at"] == "2025-02-03T01:24:53Z");
    }
    SECTION("first_name and last_name make the name when there is no full_name") {
        json lead = {{"id", "1"},
                     {"created_time", "2025-02-03T01:24:53+0000"},
                     {"field_data", json::array({field("FIRST_NAME", {" Paweł "}),
                                                 field("last_name", {"Kowalski"}),
                                                 field("work_email", {"pk@example.pl"}),
                                                 field("work_phone_number", {"+48 600 100 200"}),
                                                 field("comments", {"Call me after 5"})})}};
        const auto r = facebook::lead_record(lead, "f");
        CHECK(r["name"] == "Paweł Kowalski");
        CHECK(r["email"] == "pk@example.pl");
        CHECK(r["phone"] == "+48 600 100 200");
        CHECK(r["message"] == "Call me after 5");
        CHECK(r["details"]["fields"].empty());
        CHECK(r["details"]["form_id"] == "f");
    }
    SECTION("with full_name and name parts, the full name wins and the parts stay as details") {
        json lead = {{"id", "1"},
                     {"created_time", "2025-02-03T01:24:53+0000"},
                     {"field_data", json::array({field("first_name", {"Anna"}),
                                                 field("full_name", {"Anna Maria Nowak"}),
                                                 field("email", {"a@example.com"})})}};
        const auto r = facebook::lead_record(lead, "f");
        CHECK(r["name"] == "Anna Maria Nowak");
        CHECK(r["details"]["fields"]["first_name"] == "Anna");
    }
    SECTION("a lead without contact questions still maps, with nulls") {
        json lead = {{"id", "2"}, {"created_time", "2025-02-03T01:24:53+0000"}};
        const auto r = facebook::lead_record(lead, "f");
        CHECK(r["name"].is_null());
        CHECK(r["email"].is_null());
        CHECK(r["phone"].is_null());
        CHECK_FALSE(r.contains("error"));
    }
    SECTION("an empty answer counts as missing, so the next key is used") {
        json lead = {{"id", "3"},
                     {"created_time", "2025-02-03T01:24:53+0000"},
                     {"field_data",
                      json::array({field("email", {""}), field("work_email", {"w@example.com"})})}};
        CHECK(facebook::lead_record(lead, "f")["email"] == "w@example.com");
    }
    SECTION("malformed field_data entries are skipped, not fatal") {
        json lead = reference_lead();
        lead["field_data"].push_back(42);
        lead["field_data"].push_back({{"name", 7}});
        lead["field_data"].push_back({{"name", "odd"}, {"values", {1, true}}});
        const auto r = facebook::lead_record(lead, "f");
        CHECK(r["email"] == "maria@example.com");
        CHECK(r["details"]["fields"]["odd"] == "1, true");
    }
}

TEST_CASE("facebook lead_record rejects leads it cannot read", "[unit]") {
    SECTION("a lead without an id carries an error and a raw excerpt") {
        json lead = reference_lead();
        lead.erase("id");
        const auto r = facebook::lead_record(lead, "f");
        CHECK(r["source"] == "facebook");
        CHECK(r["id"].is_null());
        CHECK(r["error"] == "the lead has no id");
        CHECK(r["raw"].get<std::string>().find("Maria Silva") != std::string::npos);
    }
    SECTION("an unreadable created_time is an error naming the lead") {
        json lead = reference_lead();
        lead["created_time"] = "yesterday";
        const auto r = facebook::lead_record(lead, "f");
        CHECK(r["id"] == "1822987174970860009");
        CHECK(r["error"] == "the lead has no readable created_time");
    }
    SECTION("a lead that is not an object is an error") {
        const auto r = facebook::lead_record(json::array({1, 2}), "f");
        CHECK(r["error"] == "the lead is not a JSON object");
    }
    SECTION("the raw excerpt is bounded") {
        json lead = reference_lead();
        lead.erase("id");
        lead["field_data"].push_back(field("essay", {std::string(5000, 'x')}));
        CHECK(facebook::lead_record(lead, "f")["raw"].get<std::string>().size() <= 300);
    }
}
