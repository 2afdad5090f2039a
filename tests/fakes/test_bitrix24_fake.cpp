// Checks the Bitrix24 fake against the REST facts in reference apis.md §1, with a real HTTP
// client on loopback.

#include "tests/fakes/bitrix24/bitrix24_fake.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace {

using crmsync::fakes::Bitrix24Fake;
using crmsync::fakes::Bitrix24Fault;
using crmsync::fakes::Bitrix24FaultKind;
using crmsync::fakes::Bitrix24Options;
using crmsync::fakes::Bitrix24Semantics;
using crmsync::fakes::Bitrix24StageSpec;
using nlohmann::json;

// 2024-06-01T00:00:00Z: a fixed history end makes every answer reproducible.
constexpr std::int64_t k_history_end_s = 1'717'200'000;
constexpr std::size_t k_page = 50;

Bitrix24Options small_portal(std::size_t deals = 30, std::size_t per_deal = 5) {
    Bitrix24Options options;
    options.deals = deals;
    options.history_per_deal = per_deal;
    options.history_end =
        std::chrono::system_clock::time_point(std::chrono::seconds(k_history_end_s));
    options.worker_threads = 4;
    return options;
}

std::string encode(const std::string& text) {
    static constexpr std::string_view k_hex = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.') {
            out += c;
        } else {
            out += '%';
            out += k_hex[u >> 4];
            out += k_hex[u & 15U];
        }
    }
    return out;
}

// key=value pairs, PHP bracket syntax in the keys, everything URL-encoded.
std::string query(const std::vector<std::pair<std::string, std::string>>& pairs) {
    std::string out;
    for (const auto& [key, value] : pairs) {
        if (!out.empty()) {
            out += '&';
        }
        out += encode(key) + "=" + encode(value);
    }
    return out;
}

// A client that speaks like crmsync: webhook URL, keep-alive, JSON POST bodies.
struct Api {
    explicit Api(const Bitrix24Fake& fake) : Api(fake, fake.base_url()) {}
    Api(const Bitrix24Fake& fake, const std::string& base) : client(fake.host_url()) {
        prefix = base.substr(fake.host_url().size());
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        client.set_connection_timeout(std::chrono::seconds(5));
        client.set_read_timeout(std::chrono::seconds(10));
    }

    httplib::Result post(const std::string& method, const json& params) {
        return client.Post((prefix + method).c_str(), params.dump(), "application/json");
    }
    httplib::Result post_form(const std::string& method, const std::string& body) {
        return client.Post((prefix + method).c_str(), body, "application/x-www-form-urlencoded");
    }
    httplib::Result get(const std::string& method, const std::string& query_text = "") {
        return client.Get((prefix + method + (query_text.empty() ? "" : "?" + query_text)).c_str());
    }

    json call(const std::string& method, const json& params = json::object()) {
        auto res = post(method, params);
        REQUIRE(res);
        INFO(method << " " << params.dump() << " -> " << res->status << " "
                    << res->body.substr(0, 300));
        REQUIRE(res->status == 200);
        return json::parse(res->body);
    }

    httplib::Client client;
    std::string prefix;
};

json error_of(const httplib::Result& res) {
    REQUIRE(res);
    return json::parse(res->body);
}

std::vector<std::int64_t> ids_of(const json& items) {
    std::vector<std::int64_t> ids;
    for (const auto& item : items) {
        ids.push_back(item["ID"].get<std::int64_t>());
    }
    return ids;
}

std::vector<std::int64_t> all_history_ids(const Bitrix24Fake& fake) {
    std::vector<std::int64_t> ids;
    for (const auto& e : fake.history()) {
        ids.push_back(e.id);
    }
    return ids;
}

// The §1.3 export loop: order ID ASC, filter >ID, start=-1, until a page has < 50 rows.
std::vector<std::int64_t> export_by_id(Api& api, std::int64_t after, std::size_t* pages = nullptr) {
    std::vector<std::int64_t> ids;
    std::size_t count = 0;
    for (;;) {
        const auto page = api.call("crm.stagehistory.list", {{"entityTypeId", 2},
                                                             {"order", {{"ID", "ASC"}}},
                                                             {"filter", {{">ID", after}}},
                                                             {"start", -1}});
        ++count;
        CHECK(page["total"] == 0);
        CHECK_FALSE(page.contains("next"));
        const auto& items = page["result"]["items"];
        for (const auto& item : items) {
            ids.push_back(item["ID"].get<std::int64_t>());
        }
        if (items.size() < k_page) {
            break;
        }
        after = ids.back();
        REQUIRE(count < 100'000);
    }
    if (pages != nullptr) {
        *pages = count;
    }
    return ids;
}

std::string format_utc(std::int64_t epoch_s) {
    const auto t = static_cast<std::time_t>(epoch_s);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    return buf;
}

} // namespace

TEST_CASE("Bitrix24Fake authenticates webhooks like Bitrix24", "[http]") {
    auto options = small_portal();
    options.user_id = 7;
    options.webhook_code = "k3n9x0q7w2e5r8t1";
    Bitrix24Fake fake(options);
    fake.start();

    SECTION("base_url is the webhook base with a trailing slash") {
        CHECK(fake.base_url() ==
              "http://127.0.0.1:" + std::to_string(fake.port()) + "/rest/7/k3n9x0q7w2e5r8t1/");
    }
    SECTION("a wrong webhook code is 401 NO_AUTH_FOUND with the reference's body") {
        Api api(fake, fake.host_url() + "/rest/7/wrongcode0000000/");
        auto res = api.post("crm.status.list", json::object());
        REQUIRE(res);
        CHECK(res->status == 401);
        CHECK(res->get_header_value("Content-Type").starts_with("application/json"));
        CHECK(json::parse(res->body) ==
              json{{"error", "NO_AUTH_FOUND"}, {"error_description", "Wrong authorization data"}});
    }
    SECTION("a wrong user id is 401 too") {
        Api api(fake, fake.host_url() + "/rest/8/k3n9x0q7w2e5r8t1/");
        CHECK(api.get("crm.status.list")->status == 401);
    }
    SECTION("accepts the .json suffix and any letter case in the method name") {
        Api api(fake);
        CHECK(api.get("crm.status.list.json")->status == 200);
        CHECK(api.get("CRM.Status.List")->status == 200);
    }
    SECTION("an unknown method is 404 ERROR_METHOD_NOT_FOUND") {
        Api api(fake);
        auto res = api.get("crm.nothing.here");
        REQUIRE(res);
        CHECK(res->status == 404);
        CHECK(json::parse(res->body)["error"] == "ERROR_METHOD_NOT_FOUND");
    }
    SECTION("OAuth calls need the configured token") {
        Api api(fake, fake.host_url() + "/rest/");
        CHECK(api.get("crm.status.list", "auth=anything")->status == 401);
    }
    SECTION("counts requests per method") {
        Api api(fake);
        api.get("crm.status.list");
        api.get("crm.status.list.json");
        api.post("crm.deal.get", {{"id", 1}});
        CHECK(fake.request_count("crm.status.list") == 2);
        CHECK(fake.request_count("crm.deal.get") == 1);
        CHECK(fake.request_count() == 3);
        REQUIRE(fake.requests().size() == 3);
        CHECK(fake.requests().back().body == R"({"id":1})");
        fake.reset_stats();
        CHECK(fake.request_count() == 0);
    }
}

TEST_CASE("Bitrix24Fake accepts OAuth calls when a token is set", "[http]") {
    auto options = small_portal();
    options.oauth_token = "access-token-1";
    Bitrix24Fake fake(options);
    fake.start();
    Api api(fake, fake.host_url() + "/rest/");
    CHECK(api.get("crm.status.list", "auth=access-token-1")->status == 200);
    CHECK(api.post("crm.status.list", {{"auth", "access-token-1"}})->status == 200);
    CHECK(api.get("crm.status.list", "auth=other")->status == 401);
}

TEST_CASE("Bitrix24Fake wraps answers in the §1.2 envelope", "[http]") {
    Bitrix24Fake fake(small_portal());
    fake.start();
    Api api(fake);

    auto res = api.post("crm.status.list", {{"filter", {{"ENTITY_ID", "DEAL_STAGE"}}}});
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "application/json; charset=utf-8");
    const auto body = json::parse(res->body);
    CHECK(body["result"].is_array());
    CHECK(body["total"] == 8);
    CHECK_FALSE(body.contains("next"));
    const auto& time = body["time"];
    for (const char* key : {"start", "finish", "duration", "processing", "date_start",
                            "date_finish", "operating_reset_at", "operating"}) {
        INFO(key);
        CHECK(time.contains(key));
    }
    CHECK(time["start"].is_number_float());
    CHECK(time["finish"].get<double>() >= time["start"].get<double>());
    CHECK(time["duration"].get<double>() ==
          Approx(time["finish"].get<double>() - time["start"].get<double>()).margin(1e-5));
    const std::regex date(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00)");
    CHECK(std::regex_match(time["date_start"].get<std::string>(), date));
    CHECK(std::regex_match(time["date_finish"].get<std::string>(), date));
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    CHECK(std::abs(time["start"].get<double>() - static_cast<double>(now)) < 5);

    SECTION("follows the fake's clock") {
        fake.set_clock_offset(std::chrono::hours(-2));
        const auto shifted = api.call("crm.status.list")["time"]["start"].get<double>();
        CHECK(std::abs(shifted - static_cast<double>(now - 7200)) < 5);
    }
}

TEST_CASE("Bitrix24Fake crm.stagehistory.list pages with start, next and total", "[http]") {
    Bitrix24Fake fake(small_portal(30, 5));
    fake.start();
    Api api(fake);
    const auto all_ids = all_history_ids(fake);
    REQUIRE(all_ids.size() == 150);

    SECTION("wraps 50 items in result.items with total and next") {
        const auto page = api.call("crm.stagehistory.list", {{"entityTypeId", 2}});
        REQUIRE(page["result"].is_object());
        const auto& items = page["result"]["items"];
        CHECK(items.size() == 50);
        CHECK(page["total"] == 150);
        CHECK(page["next"] == 50);
        const auto& first = items[0];
        CHECK(first["ID"].is_number_integer());
        CHECK(first["TYPE_ID"] == 1);
        CHECK(first["OWNER_ID"].is_number_integer());
        CHECK(first["CATEGORY_ID"].is_number_integer());
        CHECK(first["STAGE_SEMANTIC_ID"] == "P");
        CHECK(std::regex_match(first["CREATED_TIME"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00)")));
        const auto expected = fake.history().front();
        CHECK(first["ID"] == expected.id);
        CHECK(first["STAGE_ID"] == expected.stage_id);
    }
    SECTION("following next reads every row once and omits next on the last page") {
        std::vector<std::int64_t> ids;
        json start = 0;
        std::size_t pages = 0;
        for (;;) {
            const auto page =
                api.call("crm.stagehistory.list", {{"entityTypeId", 2}, {"start", start}});
            ++pages;
            CHECK(page["total"] == 150);
            const auto got = ids_of(page["result"]["items"]);
            ids.insert(ids.end(), got.begin(), got.end());
            if (!page.contains("next")) {
                break;
            }
            start = page["next"];
        }
        CHECK(pages == 3);
        CHECK(ids == all_ids);
    }
    SECTION("a start past the end is an empty page with the same total and no next") {
        const auto page = api.call("crm.stagehistory.list", {{"entityTypeId", 2}, {"start", 500}});
        CHECK(page["result"]["items"].empty());
        CHECK(page["total"] == 150);
        CHECK_FALSE(page.contains("next"));
    }
    SECTION("a start that is not a multiple of 50 is a raw offset") {
        const auto page = api.call("crm.stagehistory.list", {{"entityTypeId", 2}, {"start", 7}});
        CHECK(page["result"]["items"][0]["ID"] == all_ids[7]);
        CHECK(page["next"] == 57);
    }
    SECTION("start=-1 with >ID and order ID ASC exports everything, total 0, no next") {
        std::size_t pages = 0;
        CHECK(export_by_id(api, 0, &pages) == all_ids);
        CHECK(pages == 4); // 50, 50, 50, then an empty page.
        const auto tail = export_by_id(api, all_ids[120]);
        CHECK(tail == std::vector<std::int64_t>(all_ids.begin() + 121, all_ids.end()));
    }
    SECTION("order ID DESC") {
        const auto page =
            api.call("crm.stagehistory.list", {{"entityTypeId", 2}, {"order", {{"ID", "DESC"}}}});
        CHECK(page["result"]["items"][0]["ID"] == all_ids.back());
    }
    SECTION("filters by OWNER_ID, stage sets and CREATED_TIME") {
        const auto history = fake.history();
        const auto owner =
            api.call("crm.stagehistory.list", {{"entityTypeId", 2}, {"filter", {{"OWNER_ID", 3}}}});
        CHECK(owner["total"] == 5);
        for (const auto& item : owner["result"]["items"]) {
            CHECK(item["OWNER_ID"] == 3);
        }
        const auto stages =
            api.call("crm.stagehistory.list",
                     {{"entityTypeId", 2}, {"filter", {{"@STAGE_ID", {"WON", "C3:WON"}}}}});
        const auto won = std::count_if(history.begin(), history.end(), [](const auto& e) {
            return e.stage_id == "WON" || e.stage_id == "C3:WON";
        });
        CHECK(stages["total"] == won);
        const auto cut = history[100].created;
        const auto expected = std::count_if(history.begin(), history.end(),
                                            [&](const auto& e) { return e.created >= cut; });
        const auto utc =
            api.call("crm.stagehistory.list",
                     {{"entityTypeId", 2}, {"filter", {{">=CREATED_TIME", format_utc(cut)}}}});
        CHECK(utc["total"] == expected);
        // The same instant in the portal's zone, as the API itself writes it.
        const auto local =
            api.call("crm.stagehistory.list",
                     {{"entityTypeId", 2},
                      {"filter", {{">=CREATED_TIME", utc["result"]["items"][0]["CREATED_TIME"]}}}});
        CHECK(local["total"] == expected);
    }
    SECTION("select limits the fields") {
        const auto page = api.call("crm.stagehistory.list",
                                   {{"entityTypeId", 2}, {"select", {"ID", "STAGE_ID"}}});
        const auto& item = page["result"]["items"][0];
        CHECK(item.size() == 2);
        CHECK(item.contains("ID"));
        CHECK(item.contains("STAGE_ID"));
    }
    SECTION("GET query strings, JSON bodies and form bodies mean the same") {
        const auto via_json = api.call("crm.stagehistory.list",
                                       {{"entityTypeId", 2},
                                        {"order", {{"ID", "ASC"}}},
                                        {"filter", {{">ID", all_ids[10]}, {"<=OWNER_ID", 20}}},
                                        {"select", {"ID", "OWNER_ID", "STAGE_ID"}},
                                        {"start", 0}});
        const auto text = query({{"entityTypeId", "2"},
                                 {"order[ID]", "ASC"},
                                 {"filter[>ID]", std::to_string(all_ids[10])},
                                 {"filter[<=OWNER_ID]", "20"},
                                 {"select[]", "ID"},
                                 {"select[]", "OWNER_ID"},
                                 {"select[]", "STAGE_ID"},
                                 {"start", "0"}});
        auto via_get = api.get("crm.stagehistory.list", text);
        REQUIRE(via_get);
        REQUIRE(via_get->status == 200);
        auto via_form = api.post_form("crm.stagehistory.list", text);
        REQUIRE(via_form);
        REQUIRE(via_form->status == 200);
        CHECK(json::parse(via_get->body)["result"] == via_json["result"]);
        CHECK(json::parse(via_form->body)["result"] == via_json["result"]);
        CHECK(via_json["result"]["items"].size() > 10);
    }
    SECTION("rejects unknown filter fields, bad values and entity types") {
        auto res =
            api.post("crm.stagehistory.list", {{"entityTypeId", 2}, {"filter", {{"TITLE", "x"}}}});
        CHECK(res->status == 400);
        CHECK(error_of(res) == json{{"error", "INVALID_ARG_VALUE"},
                                    {"error_description",
                                     "Invalid filter: field 'TITLE' is not allowed in filter"}});
        res =
            api.post("crm.stagehistory.list", {{"entityTypeId", 2}, {"filter", {{">ID", "abc"}}}});
        CHECK(res->status == 400);
        CHECK(error_of(res)["error_description"] == "Invalid filter: field 'ID' has invalid value");
        res = api.post("crm.stagehistory.list",
                       {{"entityTypeId", 2}, {"filter", {{">CREATED_TIME", "yesterday"}}}});
        CHECK(res->status == 400);
        res = api.post("crm.stagehistory.list", {{"entityTypeId", 2}, {"order", {{"FOO", "ASC"}}}});
        CHECK(res->status == 400);
        CHECK(error_of(res)["error_description"].get<std::string>().starts_with("Invalid order: "));
        res = api.post("crm.stagehistory.list", {{"entityTypeId", 3}});
        CHECK(res->status == 400);
        CHECK(error_of(res)["error"] == "ENTITY_TYPE_NOT_SUPPORTED");
        CHECK(api.post("crm.stagehistory.list", json::object())->status == 400);
    }
    SECTION("other documented entity types answer an empty list") {
        const auto leads = api.call("crm.stagehistory.list", {{"entityTypeId", 1}});
        CHECK(leads["result"]["items"].empty());
        CHECK(leads["total"] == 0);
    }
}

TEST_CASE("Bitrix24Fake can send stage-history numbers as strings", "[http]") {
    auto options = small_portal(5, 2);
    options.history_numbers_as_strings = true;
    Bitrix24Fake fake(options);
    fake.start();
    Api api(fake);
    const auto item =
        api.call("crm.stagehistory.list", {{"entityTypeId", 2}})["result"]["items"][0];
    CHECK(item["ID"] == std::to_string(fake.history().front().id));
    CHECK(item["TYPE_ID"] == "1");
    CHECK(item["OWNER_ID"].is_string());
    CHECK(item["CATEGORY_ID"].is_string());
}

TEST_CASE("Bitrix24Fake lists stages like crm.status.list", "[http]") {
    Bitrix24Fake fake(small_portal());
    fake.start();
    Api api(fake);
    const auto list = [&](const std::string& entity) {
        return api.call("crm.status.list", {{"order", {{"SORT", "ASC"}}},
                                            {"filter", {{"ENTITY_ID", entity}}}})["result"];
    };

    SECTION("DEAL_STAGE: string numbers, CATEGORY_ID null, SEMANTICS and EXTRA") {
        const auto rows = list("DEAL_STAGE");
        REQUIRE(rows.size() == 8);
        CHECK(rows[0]["STATUS_ID"] == "NEW");
        CHECK(rows[0]["ID"] == "101");
        CHECK(rows[0]["SORT"] == "10");
        CHECK(rows[0]["SYSTEM"] == "Y");
        CHECK(rows[0]["CATEGORY_ID"].is_null());
        CHECK(rows[0]["SEMANTICS"].is_null());
        CHECK(rows[0]["EXTRA"] == json{{"SEMANTICS", "process"}, {"COLOR", "#39A8EF"}});
        CHECK(rows[5]["STATUS_ID"] == "WON");
        CHECK(rows[5]["SEMANTICS"] == "S");
        CHECK(rows[6]["SEMANTICS"] == "F");
        CHECK(rows[7]["STATUS_ID"] == "APOLOGY");
        CHECK(rows[7]["NAME_INIT"] == "");
        CHECK(rows[7]["EXTRA"]["SEMANTICS"] == "apology");
    }
    SECTION("DEAL_STAGE_3: prefixed STATUS_IDs and CATEGORY_ID \"3\"") {
        const auto rows = list("DEAL_STAGE_3");
        REQUIRE(rows.size() == 7);
        for (const auto& row : rows) {
            CHECK(row["STATUS_ID"].get<std::string>().starts_with("C3:"));
            CHECK(row["CATEGORY_ID"] == "3");
            CHECK(row["ENTITY_ID"] == "DEAL_STAGE_3");
        }
    }
    SECTION("an unfiltered list also has lead statuses") {
        const auto all = api.call("crm.status.list");
        std::set<std::string> entities;
        for (const auto& row : all["result"]) {
            entities.insert(row["ENTITY_ID"].get<std::string>());
        }
        CHECK(entities == std::set<std::string>{"STATUS", "DEAL_STAGE", "DEAL_STAGE_3"});
        CHECK(all["total"] == 5 + 8 + 7);
    }
    SECTION("reflects renamed, resorted, deleted and added stages") {
        REQUIRE(fake.rename_stage("C3:PREPARATION", "Erstes Date"));
        REQUIRE(fake.resort_stage("C3:NEW", 65));
        REQUIRE(fake.delete_stage("C3:UC_GHOST1"));
        Bitrix24StageSpec spec;
        spec.name = "Third date";
        spec.sort = 35;
        spec.system = false;
        const auto added = fake.add_stage(3, spec);
        CHECK(added.status_id.starts_with("C3:UC_"));
        CHECK_FALSE(fake.rename_stage("C3:NOPE", "x"));
        const auto rows = list("DEAL_STAGE_3");
        REQUIRE(rows.size() == 7);
        std::vector<std::string> order;
        for (const auto& row : rows) {
            order.push_back(row["STATUS_ID"]);
        }
        CHECK(order == std::vector<std::string>{"C3:PREPARATION", "C3:UC_DATE2X", added.status_id,
                                                "C3:EXECUTING", "C3:WON", "C3:LOSE", "C3:NEW"});
        CHECK(rows[0]["NAME"] == "Erstes Date");
        CHECK(rows[0]["NAME_INIT"] == "First date");
        CHECK(rows[2]["ID"] == std::to_string(added.id));
        CHECK(rows[2]["NAME_INIT"] == "");
        CHECK(rows[2]["SYSTEM"] == "N");
        CHECK(fake.stage("C3:UC_GHOST1") == std::nullopt);
        // History keeps the deleted stage's STATUS_ID.
        const auto history = fake.history();
        const auto ghosted = std::count_if(history.begin(), history.end(), [](const auto& e) {
            return e.stage_id == "C3:UC_GHOST1";
        });
        CHECK(ghosted > 0);
        CHECK(api.call("crm.stagehistory.list",
                       {{"entityTypeId", 2},
                        {"filter", {{"STAGE_ID", "C3:UC_GHOST1"}}}})["total"] == ghosted);
    }
    SECTION("crm.dealcategory.stage.list lists one pipeline by id") {
        const auto rows = api.call("crm.dealcategory.stage.list", {{"id", 3}})["result"];
        REQUIRE(rows.size() == 7);
        CHECK(rows[0]["STATUS_ID"] == "C3:NEW");
        CHECK(api.call("crm.dealcategory.stage.list")["result"].size() == 8);
        CHECK(api.call("crm.dealcategory.stage.list", {{"id", 99}})["result"] == json::array());
    }
    SECTION("crm.category.list lists the pipelines") {
        const auto page = api.call("crm.category.list", {{"entityTypeId", 2}});
        const auto& categories = page["result"]["categories"];
        REQUIRE(categories.size() == 2);
        CHECK(categories[0] == json{{"id", 0},
                                    {"name", "General"},
                                    {"sort", 100},
                                    {"entityTypeId", 2},
                                    {"isDefault", "Y"}});
        CHECK(categories[1]["id"] == 3);
        CHECK(categories[1]["name"] == "Enamour Pipeline");
        CHECK(page["total"] == 2);
        CHECK(api.post("crm.category.list", json::object())->status == 400);
    }
}

TEST_CASE("Bitrix24Fake serves deals for their TITLE", "[http]") {
    Bitrix24Fake fake(small_portal(120, 3));
    fake.start();
    Api api(fake);

    SECTION("crm.deal.get sends strings and the TITLE") {
        const auto deal = api.call("crm.deal.get", {{"id", 7}})["result"];
        const auto expected = *fake.deal(7);
        CHECK(deal["ID"] == "7");
        CHECK(deal["TITLE"] == expected.title);
        CHECK(deal["STAGE_ID"] == expected.stage_id);
        CHECK(deal["CATEGORY_ID"] == std::to_string(expected.category_id));
        CHECK(deal["ASSIGNED_BY_ID"].is_string());
        auto res = api.post("crm.deal.get", {{"id", 100'000}});
        CHECK(res->status == 400);
        CHECK(error_of(res) == json{{"error", ""}, {"error_description", "Not found"}});
        CHECK(api.post("crm.deal.get", json::object())->status == 400);
    }
    SECTION("crm.deal.list pages, filters and selects") {
        const auto first = api.call("crm.deal.list", {{"select", {"ID", "TITLE"}}});
        CHECK(first["result"].size() == 50);
        CHECK(first["total"] == 120);
        CHECK(first["next"] == 50);
        CHECK(first["result"][0] == json{{"ID", "1"}, {"TITLE", fake.deal(1)->title}});
        const auto last = api.call("crm.deal.list", {{"start", 100}});
        CHECK(last["result"].size() == 20);
        CHECK_FALSE(last.contains("next"));
        const auto three = api.call(
            "crm.deal.list", {{"filter", {{"CATEGORY_ID", 3}}}, {"select", {"ID", "CATEGORY_ID"}}});
        std::size_t expected = 0;
        for (std::int64_t id = 1; id <= 120; ++id) {
            expected += fake.deal(id)->category_id == 3 ? 1 : 0;
        }
        CHECK(three["total"] == expected);
        const auto by_id =
            api.call("crm.deal.list", {{"filter", {{"@ID", {3, 9}}}}, {"order", {{"ID", "DESC"}}}});
        REQUIRE(by_id["result"].size() == 2);
        CHECK(by_id["result"][0]["ID"] == "9");
    }
}

TEST_CASE("Bitrix24Fake runs batch like §1.6", "[http]") {
    Bitrix24Fake fake(small_portal(30, 5));
    fake.start();
    Api api(fake);

    SECTION("results, totals and next per key; empty maps as []") {
        const auto body =
            api.call("batch", {{"halt", 0},
                               {"cmd",
                                {{"history", "crm.stagehistory.list?entityTypeId=2&order[ID]=ASC"},
                                 {"stages", "crm.status.list?filter[ENTITY_ID]=DEAL_STAGE_3"},
                                 {"deal", "crm.deal.get?id=4"}}}});
        const auto& r = body["result"];
        CHECK(r["result"]["history"]["items"].size() == 50);
        CHECK(r["result"]["stages"].size() == 7);
        CHECK(r["result"]["deal"]["ID"] == "4");
        CHECK(r["result_error"] == json::array());
        CHECK(r["result_total"] == json{{"history", 150}, {"stages", 7}});
        CHECK(r["result_next"] == json{{"history", 50}});
        CHECK(r["result_time"].contains("deal"));
        CHECK(body.contains("time"));
        CHECK(fake.request_count("batch") == 1);
        CHECK(fake.request_count("crm.stagehistory.list") == 0);
        CHECK(fake.call_count("crm.stagehistory.list") == 1);
        CHECK(fake.call_count("batch") == 1);
    }
    SECTION("failed sub-calls land in result_error; halt=1 stops there") {
        json cmd = {
            {"a", "crm.deal.get?id=1"}, {"b", "crm.deal.get?id=99999"}, {"c", "crm.deal.get?id=2"}};
        const auto go_on = api.call("batch", {{"halt", 0}, {"cmd", cmd}})["result"];
        CHECK(go_on["result"].size() == 2);
        CHECK(go_on["result_error"] ==
              json{{"b", {{"error", ""}, {"error_description", "Not found"}}}});
        const auto halted = api.call("batch", {{"halt", 1}, {"cmd", cmd}})["result"];
        CHECK(halted["result"].size() == 1);
        CHECK(halted["result"].contains("a"));
        CHECK(halted["result_error"].contains("b"));
    }
    SECTION("everything failed: result is []") {
        const auto r = api.call(
            "batch", {{"cmd", {{"x", "crm.nope"}, {"y", "batch?cmd[z]=crm.deal.get"}}}})["result"];
        CHECK(r["result"] == json::array());
        CHECK(r["result_error"]["x"]["error"] == "ERROR_METHOD_NOT_FOUND");
        CHECK(r["result_error"]["y"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED");
    }
    SECTION("a list of commands gives lists, as PHP's json_encode does") {
        const auto r =
            api.call("batch", {{"cmd", {"crm.deal.get?id=1", "crm.deal.get?id=2"}}})["result"];
        REQUIRE(r["result"].is_array());
        CHECK(r["result"][1]["ID"] == "2");
    }
    SECTION("$result references an earlier sub-call") {
        const auto r = api.call(
            "batch", {{"cmd",
                       // nlohmann::json sorts keys, and sub-calls run in the order sent: "a" first.
                       {{"a", "crm.stagehistory.list?entityTypeId=2&filter[OWNER_ID]=6"},
                        {"b", "crm.deal.get?id=$result[a][items][0][OWNER_ID]"}}}})["result"];
        CHECK(r["result"]["b"]["ID"] == "6");
    }
    SECTION("chained list pages: each asks for the rows after the previous page's last ID") {
        json cmd = json::object();
        for (int k = 0; k < 4; ++k) {
            const std::string after =
                k == 0 ? "0" : "$result[h" + std::to_string(k - 1) + "][items][49][ID]";
            cmd["h" + std::to_string(k)] =
                "crm.stagehistory.list?entityTypeId=2&order[ID]=ASC&start=-1&filter[%3EID]=" +
                after;
        }
        const auto r = api.call("batch", {{"halt", 1}, {"cmd", cmd}})["result"];
        std::vector<std::int64_t> ids;
        for (const char* key : {"h0", "h1", "h2", "h3"}) {
            for (const auto& item : r["result"][key]["items"]) {
                ids.push_back(item["ID"].get<std::int64_t>());
            }
        }
        // 150 rows: three full pages, then an empty one.
        REQUIRE(ids.size() == 150);
        CHECK(r["result"]["h3"]["items"].empty());
        for (std::size_t i = 0; i < ids.size(); ++i) {
            CHECK(ids[i] == fake.history()[i].id);
        }
    }
    SECTION("fail_history_after fails the page after an ID, inside a batch or alone") {
        const auto after = fake.history()[49].id;
        Bitrix24Fault fault;
        fault.status = 400;
        fault.error = "INVALID_ARG_VALUE";
        fault.count = 2;
        fake.fail_history_after(after, fault);
        CHECK(fake.pending_faults() == 2);
        const std::string page = "crm.stagehistory.list?entityTypeId=2&start=-1&filter[%3EID]=";
        const auto r = api.call("batch", {{"halt", 1},
                                          {"cmd",
                                           {{"a", page + "0"},
                                            {"b", page + "$result[a][items][49][ID]"},
                                            {"c", page + "$result[b][items][49][ID]"}}}})["result"];
        CHECK(r["result"].contains("a"));
        CHECK(r["result_error"]["b"]["error"] == "INVALID_ARG_VALUE");
        CHECK_FALSE(r["result"].contains("c"));
        auto alone = api.post("crm.stagehistory.list",
                              {{"entityTypeId", 2}, {"filter", {{">ID", after}}}, {"start", -1}});
        CHECK(alone->status == 400);
        CHECK(fake.pending_faults() == 0);
        CHECK(api.post("crm.stagehistory.list",
                       {{"entityTypeId", 2}, {"filter", {{">ID", after}}}, {"start", -1}})
                  ->status == 200);
    }
    SECTION("accepts form-encoded batches") {
        auto res = api.post_form("batch",
                                 query({{"halt", "0"},
                                        {"cmd[one]", "crm.deal.get?id=5"},
                                        {"cmd[two]", "crm.status.list?filter[ENTITY_ID]=STATUS"}}));
        REQUIRE(res);
        REQUIRE(res->status == 200);
        const auto r = json::parse(res->body)["result"];
        CHECK(r["result"]["one"]["ID"] == "5");
        CHECK(r["result_total"]["two"] == 5);
    }
    SECTION("more than 50 commands is 400 ERROR_BATCH_LENGTH_EXCEEDED") {
        json cmd = json::object();
        for (int i = 0; i < 51; ++i) {
            cmd["c" + std::to_string(i)] = "crm.deal.get?id=1";
        }
        auto res = api.post("batch", {{"cmd", cmd}});
        CHECK(res->status == 400);
        CHECK(error_of(res)["error"] == "ERROR_BATCH_LENGTH_EXCEEDED");
        cmd.erase("c50");
        CHECK(api.post("batch", {{"cmd", cmd}})->status == 200);
    }
}

TEST_CASE("Bitrix24Fake enforces the leaky bucket of §1.7", "[http]") {
    auto options = small_portal(5, 2);
    options.rate_limit = true;
    Bitrix24Fake fake(options);
    fake.start();
    Api api(fake);

    std::size_t ok = 0;
    std::size_t refused = 0;
    for (int i = 0; i < 60; ++i) {
        auto res = api.get("crm.status.list");
        REQUIRE(res);
        if (res->status == 200) {
            ++ok;
        } else {
            ++refused;
            CHECK(res->status == 503);
            CHECK(json::parse(res->body) == json{{"error", "QUERY_LIMIT_EXCEEDED"},
                                                 {"error_description", "Too many requests"}});
        }
    }
    // A burst of 50; the drain of 2/s may let one or two more through on a slow machine.
    CHECK(ok >= 50);
    CHECK(ok <= 52);
    CHECK(refused == 60 - ok);

    SECTION("drains at 2 requests per second") {
        fake.set_clock_offset(std::chrono::seconds(2));
        std::size_t after = 0;
        for (int i = 0; i < 10; ++i) {
            after += api.get("crm.status.list")->status == 200 ? 1 : 0;
        }
        CHECK(after >= 4);
        CHECK(after <= 6);
    }
    SECTION("a batch counts as one request") {
        fake.set_clock_offset(std::chrono::seconds(60));
        json cmd = json::object();
        for (int i = 0; i < 50; ++i) {
            cmd["c" + std::to_string(i)] = "crm.deal.get?id=1";
        }
        for (int i = 0; i < 40; ++i) {
            REQUIRE(api.post("batch", {{"cmd", cmd}})->status == 200);
        }
    }
    SECTION("can be switched off") {
        fake.set_rate_limit(false);
        for (int i = 0; i < 60; ++i) {
            REQUIRE(api.get("crm.status.list")->status == 200);
        }
    }
}

TEST_CASE("Bitrix24Fake injects faults", "[http]") {
    Bitrix24Fake fake(small_portal());
    fake.start();
    Api api(fake);
    const auto normal = api.get("crm.status.list")->body;
    const auto body_without_time = [](const std::string& text) {
        auto j = json::parse(text);
        j.erase("time");
        return j;
    };

    SECTION("503 QUERY_LIMIT_EXCEEDED for the given count") {
        fake.inject(
            {"crm.stagehistory.list", Bitrix24FaultKind::status, 503, "", "", std::nullopt, 0, 2});
        for (int i = 0; i < 2; ++i) {
            auto res = api.post("crm.stagehistory.list", {{"entityTypeId", 2}});
            REQUIRE(res);
            CHECK(res->status == 503);
            CHECK(json::parse(res->body) == json{{"error", "QUERY_LIMIT_EXCEEDED"},
                                                 {"error_description", "Too many requests"}});
            CHECK_FALSE(res->has_header("Retry-After"));
        }
        CHECK(api.post("crm.stagehistory.list", {{"entityTypeId", 2}})->status == 200);
        CHECK(fake.pending_faults() == 0);
    }
    SECTION("429 OPERATION_TIME_LIMIT, only for the named method, with an optional Retry-After") {
        fake.inject({"crm.stagehistory.list", Bitrix24FaultKind::status, 429, "", "", "7", 0, 1});
        CHECK(api.get("crm.status.list")->status == 200);
        auto res = api.post("crm.stagehistory.list", {{"entityTypeId", 2}});
        REQUIRE(res);
        CHECK(res->status == 429);
        CHECK(res->get_header_value("Retry-After") == "7");
        CHECK(json::parse(res->body) ==
              json{{"error", "OPERATION_TIME_LIMIT"},
                   {"error_description", "Method is blocked due to operation time limit"}});
    }
    SECTION("a method fault hits that method inside a batch") {
        fake.inject({"crm.deal.get", Bitrix24FaultKind::status, 429, "", "", std::nullopt, 0, 1});
        const auto r = api.call(
            "batch", {{"cmd", {{"a", "crm.deal.get?id=1"}, {"b", "crm.deal.get?id=2"}}}})["result"];
        CHECK(r["result_error"]["a"]["error"] == "OPERATION_TIME_LIMIT");
        CHECK(r["result"]["b"]["ID"] == "2");
        CHECK(fake.pending_faults() == 0);
    }
    SECTION("reset: the client sees no response") {
        fake.inject({"", Bitrix24FaultKind::reset, 0, "", "", std::nullopt, 0, 1});
        auto res = api.get("crm.status.list");
        CHECK_FALSE(res);
        CHECK(api.get("crm.status.list")->status == 200);
        const auto recorded = fake.requests();
        CHECK(recorded[recorded.size() - 2].status == 0);
    }
    SECTION("truncate: half the body") {
        fake.inject({"", Bitrix24FaultKind::truncate, 0, "", "", std::nullopt, 0, 1});
        auto res = api.get("crm.status.list");
        REQUIRE(res);
        CHECK(res->status == 200);
        // Half of this answer; its `time` block may differ in length from the earlier one's.
        CHECK(res->body.size() + 8 >= normal.size() / 2);
        CHECK(res->body.size() <= normal.size() / 2 + 8);
        CHECK(res->body.substr(0, 200) == normal.substr(0, 200));
        CHECK_THROWS(json::parse(res->body));
    }
    SECTION("malformed: 200 with HTML") {
        fake.inject({"", Bitrix24FaultKind::malformed, 0, "", "", std::nullopt, 0, 1});
        auto res = api.get("crm.status.list");
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK_THROWS(json::parse(res->body));
    }
    SECTION("slow: answers normally after the delay") {
        fake.inject({"", Bitrix24FaultKind::slow, 0, "", "", std::nullopt, 300, 1});
        const auto start = std::chrono::steady_clock::now();
        auto res = api.get("crm.status.list");
        const auto elapsed = std::chrono::steady_clock::now() - start;
        REQUIRE(res);
        CHECK(body_without_time(res->body) == body_without_time(normal));
        CHECK(elapsed >= std::chrono::milliseconds(300));
    }
    SECTION("faults act before authentication; custom codes get the reference's text") {
        fake.inject({"", Bitrix24FaultKind::status, 401, "expired_token", "", std::nullopt, 0, 1});
        Api wrong(fake, fake.host_url() + "/rest/1/wrong/");
        auto res = wrong.get("crm.status.list");
        CHECK(res->status == 401);
        CHECK(json::parse(res->body)["error_description"] ==
              "The access token provided has expired");
        CHECK(wrong.get("crm.status.list")->status == 401);
        CHECK(json::parse(wrong.get("crm.status.list")->body)["error"] == "NO_AUTH_FOUND");
    }
    SECTION("parses faults from JSON") {
        const auto f = crmsync::fakes::bitrix24_fault_from_json(
            json{{"rest_method", "CRM.StageHistory.List.json"},
                 {"kind", "slow"},
                 {"delay_ms", 5},
                 {"retry_after", 3},
                 {"count", 4}});
        CHECK(f.rest_method == "crm.stagehistory.list");
        CHECK(f.kind == Bitrix24FaultKind::slow);
        CHECK(f.delay_ms == 5);
        CHECK(f.retry_after == "3");
        CHECK(f.count == 4);
        CHECK_THROWS_AS(crmsync::fakes::bitrix24_fault_from_json(json{{"kind", "explode"}}),
                        std::invalid_argument);
    }
}

TEST_CASE("Bitrix24Fake adds history and moves deals", "[http]") {
    Bitrix24Fake fake(small_portal(30, 5));
    fake.start();
    Api api(fake);
    const auto last = fake.last_history_id();

    SECTION("add_history appends rows with higher ids, visible through >ID") {
        const auto added = fake.add_history(12);
        REQUIRE(added.size() == 12);
        CHECK(added.front().id > last);
        for (std::size_t i = 1; i < added.size(); ++i) {
            CHECK(added[i].id == added[i - 1].id + 1);
        }
        std::vector<std::int64_t> expected;
        expected.reserve(added.size());
        for (const auto& e : added) {
            expected.push_back(e.id);
        }
        CHECK(export_by_id(api, last) == expected);
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        CHECK(std::abs(added.back().created - now) < 5);
        CHECK(fake.history_size() == 162);
        const auto deal = *fake.deal(added.back().owner_id);
        CHECK(deal.stage_id == added.back().stage_id);
    }
    SECTION("move_deal records pipeline changes as TYPE_ID 5 and final stages as 3") {
        std::int64_t in_general = 0;
        for (std::int64_t id = 1; id <= 30 && in_general == 0; ++id) {
            in_general = fake.deal(id)->category_id == 0 ? id : 0;
        }
        REQUIRE(in_general != 0);
        const auto moved = fake.move_deal(in_general, "C3:NEW");
        CHECK(moved.type_id == 5);
        CHECK(moved.category_id == 3);
        CHECK(fake.move_deal(in_general, "C3:WON").type_id == 3);
        CHECK(fake.move_deal(in_general, "C3:EXECUTING").type_id == 2);
        CHECK_THROWS_AS(fake.move_deal(in_general, "NOPE"), std::invalid_argument);
        const auto deal = api.call("crm.deal.get", {{"id", in_general}})["result"];
        CHECK(deal["STAGE_ID"] == "C3:EXECUTING");
        CHECK(deal["CATEGORY_ID"] == "3");
    }
}

TEST_CASE("Bitrix24Fake generates a benchmark portal quickly and deterministically", "[http]") {
    auto options = small_portal(20'000, 10);
    const auto start = std::chrono::steady_clock::now();
    Bitrix24Fake fake(options);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed < std::chrono::seconds(3));
    REQUIRE(fake.history_size() == 200'000);

    const auto history = fake.history();
    std::set<int> types;
    for (std::size_t i = 1; i < history.size(); ++i) {
        REQUIRE(history[i].id > history[i - 1].id);
        REQUIRE(history[i].created >= history[i - 1].created);
        types.insert(history[i].type_id);
    }
    CHECK(types == std::set<int>{1, 2, 3, 5});
    CHECK(history.back().created <= k_history_end_s);

    Bitrix24Fake same(options);
    CHECK(same.history().back().id == history.back().id);
    CHECK(same.history()[12'345].stage_id == history[12'345].stage_id);
    options.seed = 7;
    Bitrix24Fake other(options);
    const auto other_history = other.history();
    std::size_t differing = 0;
    for (std::size_t i = 0; i < 1000; ++i) {
        differing += other_history[i].owner_id != history[i].owner_id ? 1 : 0;
    }
    CHECK(differing > 500);

    fake.start();
    Api api(fake);
    const auto page_start = std::chrono::steady_clock::now();
    std::size_t pages = 0;
    const auto tail = export_by_id(api, history[history.size() - 5'000].id, &pages);
    CHECK(tail.size() == 4'999);
    CHECK(std::chrono::steady_clock::now() - page_start < std::chrono::seconds(5));
}

TEST_CASE("Bitrix24Fake stays consistent under concurrent clients and mutators", "[http]") {
    Bitrix24Fake fake(small_portal(200, 5));
    fake.start();
    std::atomic<bool> failed{false};
    std::vector<std::thread> clients;
    clients.reserve(4);
    for (int c = 0; c < 4; ++c) {
        clients.emplace_back([&fake, &failed] {
            Api api(fake);
            for (int round = 0; round < 20; ++round) {
                auto history = api.post(
                    "crm.stagehistory.list",
                    {{"entityTypeId", 2}, {"filter", {{">ID", round * 40}}}, {"start", -1}});
                auto stages =
                    api.post("crm.status.list", {{"filter", {{"ENTITY_ID", "DEAL_STAGE_3"}}}});
                if (!history || history->status != 200 || !stages || stages->status != 200 ||
                    json::parse(history->body)["result"]["items"].size() != 50) {
                    failed = true;
                }
            }
        });
    }
    for (int i = 0; i < 20; ++i) {
        fake.add_history(5);
        fake.rename_stage("C3:WON", "Engaged " + std::to_string(i));
        fake.inject({"crm.none", Bitrix24FaultKind::status, 500, "", "", std::nullopt, 0, 1});
    }
    for (auto& t : clients) {
        t.join();
    }
    CHECK_FALSE(failed);
    CHECK(fake.history_size() == 1'100);
}

TEST_CASE("bitrix24_fake runs as a process with control endpoints", "[http]") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("b24fake-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto port_file = (dir / "port").string();
    std::vector<std::string> args{BITRIX24_FAKE_BINARY,
                                  "--port",
                                  "0",
                                  "--port-file",
                                  port_file,
                                  "--deals",
                                  "40",
                                  "--history-per-deal",
                                  "3",
                                  "--webhook-code",
                                  "abcdefgh12345678",
                                  "--rate-limit",
                                  "off",
                                  "--seed",
                                  "9"};
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);

    int port = 0;
    for (int i = 0; i < 500 && port == 0; ++i) {
        std::ifstream in(port_file);
        if (!(in >> port)) {
            port = 0;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    REQUIRE(port > 0);
    httplib::Client client("127.0.0.1", port);
    const std::string base = "/rest/1/abcdefgh12345678/";
    auto res = client.Get((base + "crm.stagehistory.list?entityTypeId=2&start=100").c_str());
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(json::parse(res->body)["total"] == 120);

    res = client.Post("/_fake/add_history?n=3", "", "application/json");
    REQUIRE(res);
    CHECK(json::parse(res->body)["added"].size() == 3);
    res = client.Post("/_fake/faults", R"({"rest_method":"crm.status.list","status":429})",
                      "application/json");
    REQUIRE(res);
    CHECK(client.Get((base + "crm.status.list").c_str())->status == 429);
    res = client.Post("/_fake/stages/rename", R"({"status_id":"C3:WON","name":"Wed"})",
                      "application/json");
    REQUIRE(res);
    CHECK(json::parse(res->body)["found"] == true);
    res = client.Get("/_fake/stats");
    REQUIRE(res);
    const auto stats = json::parse(res->body);
    CHECK(stats["history_rows"] == 123);
    CHECK(stats["requests"]["crm.status.list"] == 1);

    REQUIRE(::kill(pid, SIGTERM) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    std::filesystem::remove_all(dir);
}
