// Checks the Zoho Creator v2.1 fake against reference apis.md §3.2 and zoho-creator.md with a
// real HTTP client on loopback: add with per-record codes and the 200 limit, criteria,
// record_cursor paging, get/update/delete by ID, auth, the per-minute limit and faults.

#include "tests/fakes/oauth/zoho_accounts_fake.hpp"
#include "tests/fakes/zoho_creator/creator_control.hpp"
#include "tests/fakes/zoho_creator/creator_criteria.hpp"
#include "tests/fakes/zoho_creator/creator_fake.hpp"
#include "tests/support/fake_process.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <regex>
#include <set>
#include <string>

namespace {

using crmsync::fakes::CreatorFake;
using crmsync::fakes::CreatorFakeOptions;
using crmsync::fakes::CreatorFault;
using crmsync::fakes::FaultKind;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string k_token = "1000.creator.token";

struct Api {
    Api(const CreatorFake& fake, const std::string& token)
        : client(fake.base_url()), form(fake.form_path()), report(fake.report_path()) {
        client.set_connection_timeout(2s);
        client.set_read_timeout(5s);
        client.set_default_headers({{"Authorization", "Zoho-oauthtoken " + token}});
    }
    httplib::Result add(const json& body) {
        return client.Post(form, body.dump(), "application/json");
    }
    // GET the report with `criteria` (URL-encoded here) and an optional cursor header.
    httplib::Result get(const std::string& criteria, const std::string& cursor = "",
                        const std::string& extra = "") {
        httplib::Params params;
        if (!criteria.empty()) {
            params.emplace("criteria", criteria);
        }
        httplib::Headers headers;
        if (!cursor.empty()) {
            headers.emplace("record_cursor", cursor);
        }
        return client.Get(report + "?" + httplib::detail::params_to_query_str(params) + extra,
                          headers);
    }
    httplib::Client client;
    std::string form;
    std::string report;
};

json body_of(const httplib::Result& res, int status = 200) {
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == status);
    return json::parse(res->body);
}

json contact(const std::string& first, const std::string& email, const std::string& owner,
             const std::string& link = "") {
    return {{"Name", {{"first_name", first}, {"last_name", "Smith"}}},
            {"Email", email},
            {"Phone_Number", "+16103948336"},
            {"Owner_Login", owner},
            {"Google_Resource_Name", link}};
}

// Every record the criteria selects, following record_cursor; and how many pages it took.
std::pair<std::vector<json>, int> get_all(Api& api, const std::string& criteria,
                                          const std::string& extra = "") {
    std::vector<json> out;
    std::string cursor;
    int pages = 0;
    for (;;) {
        REQUIRE(pages < 1000);
        const auto res = api.get(criteria, cursor, extra);
        REQUIRE(res);
        ++pages;
        if (res->status == 404) {
            CHECK(json::parse(res->body)["code"] == 3100);
            return {out, pages};
        }
        const auto body = body_of(res);
        for (const auto& r : body["data"]) {
            out.push_back(r);
        }
        cursor = res->get_header_value("record_cursor");
        if (cursor.empty()) {
            return {out, pages};
        }
    }
}

} // namespace

TEST_CASE("CreatorFake adds records with per-record codes and HTTP 200", "[http]") {
    CreatorFake fake;
    fake.add_token(k_token);
    fake.start();
    Api api(fake, k_token);

    SECTION("good records get code 3000 and an ID, bad ones 3001, in order") {
        fake.reject_email("blocked@example.com");
        const auto body = body_of(api.add(
            {{"data",
              {contact("Jason", "jason@zylker.com", "jsmith"), contact("Bad", "not-an-email", "x"),
               contact("Blocked", "blocked@example.com", "x"),
               contact("Ann", "ann@zylker.com", "jsmith")}},
             {"result", {{"fields", {"Email", "Phone_Number"}}, {"message", true}}}}));
        const auto& result = body["result"];
        REQUIRE(result.size() == 4);
        CHECK(result[0]["code"] == 3000);
        CHECK(result[0]["message"] == "Data Added Successfully!");
        CHECK(result[0]["data"]["Email"] == "jason@zylker.com");
        CHECK(result[0]["data"]["Phone_Number"] == "+16103948336");
        CHECK(
            std::regex_match(result[0]["data"]["ID"].get<std::string>(), std::regex("[0-9]{19}")));
        CHECK(result[1]["code"] == 3001);
        CHECK(result[1]["error"].contains("Email"));
        CHECK(result[2]["code"] == 3001);
        CHECK(result[3]["code"] == 3000);
        CHECK(fake.records().size() == 2);
    }
    SECTION("at most 200 records per request: 201 answer code 3950 and add nothing") {
        json data = json::array();
        for (int i = 0; i < 201; ++i) {
            data.push_back(contact("N", "n" + std::to_string(i) + "@x.com", "o"));
        }
        CHECK(body_of(api.add({{"data", data}}))["code"] == 3950);
        CHECK(fake.records().empty());
        data.erase(data.begin());
        CHECK(body_of(api.add({{"data", data}}))["result"].size() == 200);
        CHECK(fake.records().size() == 200);
    }
    SECTION("a missing body or data answers 400 code 3020") {
        CHECK(body_of(api.client.Post(api.form, "", "application/json"), 400)["code"] == 3020);
        CHECK(body_of(api.add({{"result", json::object()}}), 400)["code"] == 3020);
    }
    SECTION("one record may be sent as an object") {
        CHECK(body_of(api.add({{"data", contact("J", "j@x.com", "o")}}))["result"][0]["code"] ==
              3000);
    }
    SECTION("a read record has the report's shape") {
        body_of(api.add({{"data", {contact("Jason", "jason@zylker.com", "jsmith")}}}));
        const auto r = fake.records().at(0);
        CHECK(r["Name"] == json{{"prefix", ""},
                                {"first_name", "Jason"},
                                {"last_name", "Smith"},
                                {"suffix", ""},
                                {"zc_display_value", "Jason Smith"}});
        const std::regex time("[0-9]{2}-[A-Z][a-z]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}");
        CHECK(std::regex_match(r["Added_Time"].get<std::string>(), time));
        CHECK(r["Modified_Time"] == r["Added_Time"]);
    }
}

TEST_CASE("CreatorFake checks paths and tokens", "[http]") {
    CreatorFake fake;
    fake.add_token(k_token);
    fake.start();
    Api api(fake, k_token);

    SECTION("no or a wrong token: 401 code 1030") {
        Api stranger(fake, "1000.wrong");
        CHECK(body_of(stranger.get(""), 401)["code"] == 1030);
        httplib::Client bare(fake.base_url());
        CHECK(body_of(bare.Get(fake.report_path()), 401)["code"] == 1030);
        httplib::Client bearer(fake.base_url());
        bearer.set_default_headers({{"Authorization", "Bearer " + k_token}});
        CHECK(body_of(bearer.Get(fake.report_path()), 401)["code"] == 1030);
    }
    SECTION("another owner, app, form or report: 404 with Creator's codes") {
        CHECK(body_of(api.client.Get("/creator/v2.1/data/other/crm/report/All_Contacts"),
                      404)["code"] == 1040);
        CHECK(body_of(api.client.Get("/creator/v2.1/data/jsmith/other/report/All_Contacts"),
                      404)["code"] == 2892);
        CHECK(body_of(api.client.Post("/creator/v2.1/data/jsmith/crm/form/Other", "{}",
                                      "application/json"),
                      404)["code"] == 2893);
        CHECK(body_of(api.client.Get("/creator/v2.1/data/jsmith/crm/report/Other"), 404)["code"] ==
              2894);
    }
    SECTION("tokens issued by the Zoho accounts fake are accepted") {
        crmsync::fakes::ZohoAccountsFakeOptions options;
        options.api_domain = fake.base_url();
        crmsync::fakes::ZohoAccountsFake accounts(options);
        accounts.add_account({"1000.CLIENT", "secret", "1000.refresh", "", false});
        accounts.start();
        fake.set_token_validator(
            [&accounts](const std::string& token) { return accounts.validate(token).has_value(); });
        httplib::Client token_client(accounts.base_url());
        const auto grant = body_of(token_client.Post(
            "/oauth/v2/token?refresh_token=1000.refresh&client_id=1000.CLIENT&client_secret="
            "secret&grant_type=refresh_token",
            "", "application/x-www-form-urlencoded"));
        Api issued(fake, grant["access_token"].get<std::string>());
        CHECK(body_of(issued.get(""), 404)["code"] == 3100);
        accounts.set_revoked("1000.refresh");
        CHECK(body_of(issued.get(""), 401)["code"] == 1030);
    }
}

TEST_CASE("CreatorFake reads a report with criteria and record_cursor", "[http]") {
    CreatorFakeOptions options;
    options.per_minute_limit = 0;
    CreatorFake fake(options);
    fake.add_token(k_token);
    fake.start();
    Api api(fake, k_token);
    for (int i = 0; i < 450; ++i) {
        fake.add_record(contact("N" + std::to_string(i), "n" + std::to_string(i) + "@x.com",
                                i % 3 == 0 ? "alice" : "bob",
                                i % 2 == 0 ? "people/c" + std::to_string(i) : ""));
    }

    SECTION("200 per answer by default, then record_cursor until the last batch") {
        const auto [all, pages] = get_all(api, "");
        CHECK(pages == 3);
        REQUIRE(all.size() == 450);
        std::set<std::string> ids;
        for (const auto& r : all) {
            ids.insert(r["ID"].get<std::string>());
        }
        CHECK(ids.size() == 450);
        CHECK(all.front()["Email"] == "n0@x.com"); // ID order = creation order
    }
    SECTION("max_records up to 1000") {
        CHECK(get_all(api, "", "&max_records=1000").second == 1);
        CHECK(get_all(api, "", "&max_records=100").second == 5);
        CHECK(body_of(api.get("", "", "&max_records=1001"), 400)["code"] == 1000);
    }
    SECTION("criteria on owner, e-mail and link, with &&") {
        CHECK(get_all(api, "Owner_Login == \"alice\"").first.size() == 150);
        const auto one = get_all(api, "Email == \"n7@x.com\"").first;
        REQUIRE(one.size() == 1);
        CHECK(one[0]["Name"]["first_name"] == "N7");
        CHECK(get_all(api, "Google_Resource_Name == \"people/c6\"").first.size() == 1);
        CHECK(
            get_all(api, "Owner_Login == \"alice\" && Google_Resource_Name == \"\"").first.size() ==
            75);
        CHECK(get_all(api, "(Owner_Login == \"alice\" || Owner_Login == \"bob\") && "
                           "Email.endswith(\"0@x.com\")")
                  .first.size() == 45);
        CHECK(get_all(api, "Name.first_name == 'N12'").first.size() == 1);
    }
    SECTION("no match answers 404 code 3100, or HTTP 200 when switched so") {
        const auto body = body_of(api.get("Email == \"nobody@x.com\""), 404);
        CHECK(body["code"] == 3100);
        fake.set_no_records_status(200);
        CHECK(body_of(api.get("Email == \"nobody@x.com\""))["code"] == 3100);
        CHECK_THROWS_AS(fake.set_no_records_status(204), std::invalid_argument);
    }
    SECTION("a cursor is bound to its criteria; a bad criteria is refused") {
        const auto res = api.get("Owner_Login == \"bob\"");
        REQUIRE(res);
        const auto cursor = res->get_header_value("record_cursor");
        REQUIRE_FALSE(cursor.empty());
        CHECK(body_of(api.get("Owner_Login == \"alice\"", cursor), 400)["code"] == 1000);
        CHECK(body_of(api.get("Owner_Login == "), 400)["code"] == 1000);
        CHECK(body_of(api.get("Modified_Time >= \"2024-01-01\""), 400)["code"] == 1000);
    }
    SECTION("records added while paging are not skipped") {
        const auto res = api.get("Owner_Login == \"alice\"");
        const auto cursor = res->get_header_value("record_cursor");
        fake.add_record(contact("Late", "late@x.com", "alice"));
        const auto rest = body_of(api.get("Owner_Login == \"alice\"", cursor));
        CHECK(rest["data"].back()["Email"] == "late@x.com");
    }
}

TEST_CASE("CreatorFake keeps Modified_Time in the app's zone at whole seconds", "[http]") {
    CreatorFakeOptions options;
    options.per_minute_limit = 0;
    CreatorFake fake(options);
    fake.add_token(k_token);
    fake.start();
    Api api(fake, k_token);
    const auto old = fake.add_record(contact("Old", "old@x.com", "alice"));
    fake.set_clock_offset(1h);
    const auto fresh = fake.add_record(contact("New", "new@x.com", "alice"));
    const auto checkpoint = fresh["Modified_Time"].get<std::string>();

    SECTION("Modified_Time >= a checkpoint selects the same second and later") {
        const auto since = get_all(api, "Modified_Time >= \"" + checkpoint + "\"").first;
        REQUIRE(since.size() == 1);
        CHECK(since[0]["Email"] == "new@x.com");
        CHECK(get_all(api, "Modified_Time > \"" + checkpoint + "\"").first.empty());
        CHECK(get_all(api, "Modified_Time < \"" + checkpoint + "\" && Owner_Login == \"alice\"")
                  .first.size() == 1);
    }
    SECTION("an edit moves Modified_Time but not Added_Time") {
        fake.set_clock_offset(2h);
        const auto edited = fake.edit_record(old["ID"], {{"Phone_Number", "+48 1"}});
        CHECK(edited["Added_Time"] == old["Added_Time"]);
        CHECK(edited["Modified_Time"] != old["Modified_Time"]);
        const auto since = get_all(api, "Modified_Time >= \"" + checkpoint + "\"").first;
        CHECK(since.size() == 2);
    }
    SECTION("times follow the app's time zone") {
        const auto utc = crmsync::fakes::parse_creator_time(checkpoint, 0);
        REQUIRE(utc);
        fake.set_time_zone("+02:00");
        const auto shown = fake.records().back()["Modified_Time"].get<std::string>();
        CHECK(shown == crmsync::fakes::format_creator_time(*utc + 2 * 3'600'000, 0));
        // The criteria literal is read in the same zone.
        CHECK(get_all(api, "Modified_Time >= \"" + shown + "\"").first.size() == 1);
        CHECK_THROWS_AS(fake.set_time_zone("Europe/Warsaw"), std::invalid_argument);
    }
    SECTION("the format: dd-MMM-yyyy HH:mm:ss") {
        CHECK(crmsync::fakes::format_creator_time(1586772930123, 0) == "13-Apr-2020 10:15:30");
        CHECK(crmsync::fakes::format_creator_time(1586772930123, -5 * 60) ==
              "13-Apr-2020 05:15:30");
        CHECK(crmsync::fakes::parse_creator_time("13-Apr-2020 10:15:30", 0) == 1586772930000);
        CHECK(crmsync::fakes::parse_creator_time("13-Apr-2020", 60) == 1586736000000 - 3'600'000);
        CHECK_FALSE(crmsync::fakes::parse_creator_time("13-Foo-2020 10:15:30", 0));
        CHECK_FALSE(crmsync::fakes::parse_creator_time("2020-04-13 10:15:30", 0));
    }
}

TEST_CASE("CreatorFake gets, updates and deletes by ID", "[http]") {
    CreatorFake fake;
    fake.add_token(k_token);
    fake.start();
    Api api(fake, k_token);
    const auto record = fake.add_record(contact("Jason", "jason@zylker.com", "jsmith"));
    const auto id = record["ID"].get<std::string>();
    const auto path = api.report + "/" + id;

    SECTION("get answers data as an object") {
        const auto body = body_of(api.client.Get(path));
        CHECK(body["code"] == 3000);
        CHECK(body["data"]["ID"] == id);
        CHECK(body["data"]["Email"] == "jason@zylker.com");
    }
    SECTION("update changes only the listed fields (Name by subfield) and moves Modified_Time") {
        fake.set_clock_offset(5s);
        const auto body = body_of(api.client.Patch(
            path,
            json{{"data", {{"Email", "j@zylker.com"}, {"Name", {{"last_name", "Bowley"}}}}}}.dump(),
            "application/json"));
        CHECK(body["code"] == 3000);
        CHECK(body["message"] == "Data Updated Successfully!");
        CHECK(body["data"]["ID"] == id);
        CHECK(body["data"]["Email"] == "j@zylker.com");
        const auto now = fake.records().at(0);
        CHECK(now["Name"]["first_name"] == "Jason");
        CHECK(now["Name"]["last_name"] == "Bowley");
        CHECK(now["Phone_Number"] == "+16103948336");
        CHECK(now["Modified_Time"] != record["Modified_Time"]);
    }
    SECTION("a rejected e-mail answers HTTP 200 code 3070 and changes nothing") {
        fake.reject_email("bad@x.com");
        const auto body = body_of(api.client.Patch(
            path, json{{"data", {{"Email", "bad@x.com"}}}}.dump(), "application/json"));
        CHECK(body["code"] == 3070);
        CHECK(fake.records().at(0)["Email"] == "jason@zylker.com");
    }
    SECTION("no data answers 400 code 3020") {
        CHECK(body_of(api.client.Patch(path, "{}", "application/json"), 400)["code"] == 3020);
    }
    SECTION("delete, then the ID is unknown: HTTP 200 code 3190") {
        const auto body = body_of(api.client.Delete(path));
        CHECK(body["code"] == 3000);
        CHECK(body["data"]["ID"] == id);
        CHECK(fake.records().empty());
        CHECK(body_of(api.client.Get(path))["code"] == 3190);
        CHECK(body_of(api.client.Delete(path))["code"] == 3190);
        CHECK(body_of(api.client.Patch(path, json{{"data", {{"Email", "a@b.c"}}}}.dump(),
                                       "application/json"))["code"] == 3190);
    }
}

TEST_CASE("CreatorFake allows 50 requests per minute per token", "[http]") {
    CreatorFake fake;
    fake.add_token(k_token);
    fake.add_token("1000.other");
    fake.start();
    Api api(fake, k_token);
    for (int i = 0; i < 50; ++i) {
        body_of(api.get(""), 404);
    }
    const auto res = api.get("");
    const auto body = body_of(res, 429);
    CHECK(body["code"] == 2955);
    CHECK(fake.throttled_count() == 1);
    CHECK(fake.request_count() == 51);
    Api other(fake, "1000.other");
    body_of(other.get(""), 404);

    SECTION("the window slides with the fake clock") {
        fake.set_clock_offset(61s);
        body_of(api.get(""), 404);
    }
    SECTION("the limit is configurable") {
        fake.set_per_minute_limit(0);
        body_of(api.get(""), 404);
        fake.set_per_minute_limit(60);
        body_of(api.get(""), 404);
    }
}

TEST_CASE("CreatorFake injects faults", "[http]") {
    CreatorFake fake;
    fake.add_token(k_token);
    fake.start();
    Api api(fake, k_token);

    CreatorFault limited;
    limited.retry_after = "3";
    fake.inject(limited);
    auto res = api.get("");
    REQUIRE(res);
    CHECK(res->status == 429);
    CHECK(res->get_header_value("Retry-After") == "3");
    CHECK(json::parse(res->body)["code"] == 2955);

    CreatorFault daily;
    daily.status = 200;
    daily.path_prefix = api.form;
    fake.inject(daily);
    CHECK(body_of(api.add({{"data", {contact("A", "a@b.c", "o")}}}))["code"] == 4000);
    CHECK(fake.records().empty());

    CreatorFault broken;
    broken.status = 500;
    fake.inject(broken);
    body_of(api.get(""), 500);

    CreatorFault reset;
    reset.kind = FaultKind::reset;
    fake.inject(reset);
    CHECK_FALSE(api.get(""));
    CHECK(body_of(api.get(""), 404)["code"] == 3100);
    CHECK(fake.requests().size() == 5);
}

TEST_CASE("Creator criteria", "[unit]") {
    using crmsync::fakes::Criteria;
    using crmsync::fakes::CriteriaError;
    const auto no_time = [](const json&, const std::string&) -> std::optional<std::int64_t> {
        return std::nullopt;
    };
    const json r = {{"Email", "a@x.com"}, {"Owner_Login", "o\"q"}, {"Count", 5}};
    CHECK(Criteria("", 0).matches(r, no_time));
    CHECK(Criteria("Owner_Login == \"o\\\"q\"", 0).matches(r, no_time));
    CHECK(Criteria("Email != \"b@x.com\"", 0).matches(r, no_time));
    CHECK(Criteria("Email.contains(\"@x\")", 0).matches(r, no_time));
    CHECK_FALSE(Criteria("Email.startswith(\"b\")", 0).matches(r, no_time));
    CHECK(Criteria("Count == 5", 0).matches(r, no_time));
    CHECK(Criteria("Missing == \"\"", 0).matches(r, no_time));
    CHECK(
        Criteria("Email == \"z\" || (Count == 5 && Email == \"a@x.com\")", 0).matches(r, no_time));
    CHECK_THROWS_AS(Criteria("Email ==", 0), CriteriaError);
    CHECK_THROWS_AS(Criteria("Email == \"x", 0), CriteriaError);
    CHECK_THROWS_AS(Criteria("(Email == \"x\"", 0), CriteriaError);
    CHECK_THROWS_AS(Criteria("Email.matches(\"x\")", 0), CriteriaError);
    CHECK_THROWS_AS(Criteria("Email == \"x\" &&", 0), CriteriaError);
}

TEST_CASE("CreatorControl drives the fake over HTTP", "[http]") {
    CreatorFake fake;
    fake.start();
    crmsync::fakes::CreatorControl control(fake.base_url());
    control.add_token(k_token);
    const auto added = control.add_record(contact("A", "a@x.com", "alice"));
    const auto id = added["ID"].get<std::string>();
    control.set_clock_offset(3s);
    const auto edited = control.edit_record(id, {{"Email", "b@x.com"}});
    CHECK(edited["Email"] == "b@x.com");
    CHECK(edited["Modified_Time"] != added["Modified_Time"]);
    CHECK(control.records().size() == 1);
    const auto settings = control.settings(
        {{"per_minute_limit", 1}, {"time_zone", "-03:30"}, {"reject_emails", {"x@x.com"}}});
    CHECK(settings["utc_offset_minutes"] == -210);
    Api api(fake, k_token);
    CHECK(body_of(api.add({{"data", {contact("X", "x@x.com", "o")}}}))["result"][0]["code"] ==
          3001);
    body_of(api.get(""), 429);
    CHECK(control.stats()["throttled"] == 1);
    control.delete_record(id);
    CHECK(control.records().empty());
    control.inject_faults({{"status", 503}});
    control.clear_faults();
    CHECK_THROWS_AS(control.delete_record(id), std::runtime_error);
    CHECK_THROWS_AS(control.settings({{"time_zone", "Mars/Base"}}), std::runtime_error);
}

#ifdef CRMSYNC_ZOHO_CREATOR_FAKE_BINARY
TEST_CASE("zoho_creator_fake runs as a process with seeded records", "[http]") {
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    process.start(CRMSYNC_ZOHO_CREATOR_FAKE_BINARY,
                  {"--port-file", port_file, "--token", k_token, "--records", "250"});
    const int port = process.wait_for_port(port_file, 10s);
    httplib::Client client("http://127.0.0.1:" + std::to_string(port));
    client.set_default_headers({{"Authorization", "Zoho-oauthtoken " + k_token}});
    const auto res = client.Get("/creator/v2.1/data/jsmith/crm/report/All_Contacts");
    CHECK(body_of(res)["data"].size() == 200);
    CHECK_FALSE(res->get_header_value("record_cursor").empty());
    CHECK(process.terminate(10s) == 0);
}

TEST_CASE("zoho_creator_fake accepts tokens of the Zoho accounts fake", "[http]") {
    crmsync::fakes::ZohoAccountsFakeOptions options;
    options.control_endpoints = true; // its GET /_fake/token is how the process asks
    crmsync::fakes::ZohoAccountsFake accounts(options);
    accounts.add_account({"1000.CLIENT", "secret", "1000.refresh", "", false});
    accounts.start();
    httplib::Client token_client(accounts.base_url());
    const auto grant = body_of(token_client.Post(
        "/oauth/v2/token?refresh_token=1000.refresh&client_id=1000.CLIENT&client_secret=secret&"
        "grant_type=refresh_token",
        "", "application/x-www-form-urlencoded"));
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    process.start(CRMSYNC_ZOHO_CREATOR_FAKE_BINARY,
                  {"--port-file", port_file, "--zoho-accounts-fake", accounts.base_url()});
    const int port = process.wait_for_port(port_file, 10s);
    httplib::Client client("http://127.0.0.1:" + std::to_string(port));
    const auto path = "/creator/v2.1/data/jsmith/crm/report/All_Contacts";
    client.set_default_headers(
        {{"Authorization", "Zoho-oauthtoken " + grant["access_token"].get<std::string>()}});
    CHECK(body_of(client.Get(path), 404)["code"] == 3100);
    client.set_default_headers({{"Authorization", "Zoho-oauthtoken 1000.made.up"}});
    CHECK(body_of(client.Get(path), 401)["code"] == 1030);
    CHECK(process.terminate(10s) == 0);
}
#endif
