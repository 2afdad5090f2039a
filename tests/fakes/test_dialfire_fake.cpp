// Checks the Dialfire fake against the API description in reference dbsync2.md §2, with a
// real HTTP client on loopback.

#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/json_reply.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using crmsync::fakes::DialfireFake;
using crmsync::fakes::FakeCampaignOptions;
using crmsync::fakes::Fault;
using crmsync::fakes::FaultKind;
using crmsync::fakes::HostileCase;
using nlohmann::json;

constexpr const char* k_campaign_path = "/api/campaigns/DEMO0000CAMPAIGN";
// 2024-06-01T00:00:00Z: a fixed history makes md5s and times reproducible.
constexpr std::int64_t k_history_end_ms = 1'717'200'000'000;

FakeCampaignOptions small_campaign(std::size_t contacts = 20) {
    FakeCampaignOptions options;
    options.contacts = contacts;
    options.inbound_calls = 25;
    options.history_end =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(k_history_end_ms));
    options.worker_threads = 4;
    return options;
}

// A client that speaks like crmsync: Bearer token, keep-alive, no compression, short timeouts.
struct Api {
    explicit Api(const DialfireFake& fake, const std::string& token = "demo-token")
        : client(fake.base_url()) {
        client.set_default_headers(
            {{"Authorization", "Bearer " + token}, {"Accept-Encoding", "identity"}});
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true); // As libcurl does; else each POST body waits ~40 ms.
        client.set_connection_timeout(std::chrono::seconds(5));
        client.set_read_timeout(std::chrono::seconds(10));
    }

    httplib::Result get(const std::string& path_and_query) {
        return client.Get((k_campaign_path + path_and_query).c_str());
    }

    httplib::Result post_ids(const json& ids, bool include_md5 = true) {
        const std::string path =
            std::string(k_campaign_path) + "/contacts/" + (include_md5 ? "?include_md5=true" : "");
        return client.Post(path.c_str(), ids.dump(), "application/json");
    }

    json get_json(const std::string& path_and_query) {
        auto res = get(path_and_query);
        REQUIRE(res);
        INFO(path_and_query << " -> " << res->status << " " << res->body.substr(0, 200));
        REQUIRE(res->status == 200);
        return json::parse(res->body);
    }

    httplib::Client client;
};

// Follows E2/E4/E5 cursors until the last page; returns all results in order.
std::vector<json> all_pages(Api& api, const std::string& path, const std::string& query,
                            std::size_t* pages = nullptr) {
    std::vector<json> results;
    std::string cursor;
    std::size_t count = 0;
    for (;;) {
        std::string url = path;
        url += '?';
        url += query;
        if (!cursor.empty()) {
            url += "&cursor=";
            url += cursor;
        }
        const auto page = api.get_json(url);
        ++count;
        REQUIRE(page["count"].get<std::size_t>() == page["results"].size());
        for (const auto& r : page["results"]) {
            results.push_back(r);
        }
        cursor = page.value("cursor", std::string());
        if (cursor.empty()) {
            break;
        }
        REQUIRE(count < 10'000);
    }
    if (pages != nullptr) {
        *pages = count;
    }
    return results;
}

std::int64_t parse_http_date(const std::string& text) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    REQUIRE(end != nullptr);
    REQUIRE(*end == '\0');
    return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct EventRef {
    std::string fired;
    std::string md5;
    std::string contact_id;
    std::size_t task_log = 0;
    std::size_t tx = 0;
};

EventRef parse_event(const std::string& result) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= result.size(); ++i) {
        if (i == result.size() || result[i] == '|') {
            parts.push_back(result.substr(start, i - start));
            start = i + 1;
        }
    }
    REQUIRE(parts.size() == 4);
    const auto comma = parts[3].find(',');
    REQUIRE(comma != std::string::npos);
    // "<ISO ms>Z" plus 4 digits, as in the reference's example.
    REQUIRE(parts[0].size() == 28);
    REQUIRE(parts[0][23] == 'Z');
    return {parts[0].substr(0, 24), parts[1], parts[2], std::stoul(parts[3].substr(0, comma)),
            std::stoul(parts[3].substr(comma + 1))};
}

json fetch_contact(Api& api, const std::string& id) {
    auto res = api.post_ids(json::array({id}));
    REQUIRE(res);
    REQUIRE(res->status == 200);
    const auto contacts = json::parse(res->body);
    REQUIRE(contacts.size() == 1);
    return contacts[0];
}

} // namespace

TEST_CASE("DialfireFake authenticates and routes like Dialfire", "[http]") {
    DialfireFake fake(small_campaign());
    fake.start();

    SECTION("answers 403 with a JSON body without a bearer token") {
        httplib::Client client(fake.base_url());
        auto res = client.Get((std::string(k_campaign_path) + "/fields/list").c_str());
        REQUIRE(res);
        CHECK(res->status == 403);
        CHECK(res->get_header_value("Content-Type") == "application/json; charset=utf-8");
        CHECK(json::parse(res->body)["status"] == 403);
    }
    SECTION("answers 403 for a wrong token") {
        Api api(fake, "wrong-token");
        auto res = api.get("/contacts/list");
        REQUIRE(res);
        CHECK(res->status == 403);
    }
    SECTION("answers 404 for an unknown campaign") {
        Api api(fake);
        auto res = api.client.Get("/api/campaigns/UNKNOWN000000000/fields/list");
        REQUIRE(res);
        CHECK(res->status == 404);
        CHECK(json::parse(res->body)["error"] == "not_found");
    }
    SECTION("answers 404 with JSON for an unknown path") {
        Api api(fake);
        auto res = api.client.Get("/api/nothing/here");
        REQUIRE(res);
        CHECK(res->status == 404);
        CHECK(json::parse(res->body)["status"] == 404);
    }
    SECTION("keeps a connection alive across requests") {
        Api api(fake);
        for (int i = 0; i < 20; ++i) {
            REQUIRE(api.get("/fields/list")->status == 200);
        }
        std::set<int> ports;
        for (const auto& r : fake.requests()) {
            ports.insert(r.remote_port);
        }
        CHECK(ports.size() == 1);
    }
    SECTION("counts requests per path") {
        Api api(fake);
        api.get("/fields/list");
        api.get("/fields/list");
        api.get("/contacts/list?limit=1");
        CHECK(fake.request_count(std::string(k_campaign_path) + "/fields/") == 2);
        CHECK(fake.request_count("/api/") == 3);
        REQUIRE(fake.requests().size() == 3);
        CHECK(fake.requests().back().query == "limit=1");
    }
}

TEST_CASE("DialfireFake gzips an answer once, and only for a client that asks", "[http]") {
    DialfireFake fake(small_campaign(50));
    fake.start();
    Api api(fake);
    const std::string path = std::string(k_campaign_path) + "/contacts/list?limit=50";
    const auto plain = api.client.Get(path.c_str());
    REQUIRE(plain);
    REQUIRE(plain->status == 200);
    CHECK_FALSE(plain->has_header("Content-Encoding"));
    CHECK(plain->get_header_value("Content-Type") == "application/json; charset=utf-8");
    REQUIRE(plain->body.size() > 1024);

    // httplib's client inflates what it is sent: a body gzipped twice would not parse here.
    httplib::Client gzip_client(fake.base_url());
    const auto zipped = gzip_client.Get(
        path.c_str(), {{"Authorization", "Bearer demo-token"}, {"Accept-Encoding", "gzip"}});
    REQUIRE(zipped);
    REQUIRE(zipped->status == 200);
    CHECK(zipped->get_header_value("Content-Encoding") == "gzip");
    CHECK(zipped->body == plain->body);

    const auto refused = gzip_client.Get(
        path.c_str(), {{"Authorization", "Bearer demo-token"}, {"Accept-Encoding", "gzip;q=0"}});
    REQUIRE(refused);
    CHECK_FALSE(refused->has_header("Content-Encoding"));
    CHECK(refused->body == plain->body);
}

TEST_CASE("DialfireFake serves contacts gzipped from kept pieces, the same text as plain",
          "[http]") {
    DialfireFake fake(small_campaign(50));
    fake.start();
    Api plain(fake);
    httplib::Client gzip_client(fake.base_url());
    gzip_client.set_default_headers(
        {{"Authorization", "Bearer demo-token"}, {"Accept-Encoding", "gzip"}});
    const std::string path = std::string(k_campaign_path) + "/contacts/?include_md5=true";
    const auto list = plain.get_json("/contacts/list?limit=19");
    json ids = json::array();
    for (const auto& item : list["results"]) {
        ids.push_back(item["id"]);
    }
    REQUIRE(ids.size() == 19);
    ids.push_back("NOSUCHCONTACT"); // E3's most ids per request; left out, as by the plain path
    const auto fetch_both = [&] {
        const auto zipped = gzip_client.Post(path.c_str(), ids.dump(), "application/json");
        const auto unzipped = plain.post_ids(ids);
        REQUIRE(zipped);
        REQUIRE(unzipped);
        REQUIRE(zipped->status == 200);
        CHECK(zipped->get_header_value("Content-Encoding") == "gzip");
        CHECK_FALSE(unzipped->has_header("Content-Encoding"));
        // httplib's client inflated it: one gzip member holding exactly the plain text.
        CHECK(zipped->body == unzipped->body);
        return unzipped->body;
    };
    const auto before = fetch_both();
    CHECK(json::parse(before).size() == 19);

    SECTION("touched contacts are served in their new state") {
        const auto touched = fake.touch_contacts(5);
        REQUIRE(touched.size() == 5);
        const auto after = fetch_both();
        CHECK(after != before);
        for (const auto& contact : json::parse(after)) {
            const auto id = contact["$id"].get<std::string>();
            CHECK(contact["$md5"] == fake.contact_md5(id));
        }
    }
    SECTION("an injected contact text is served verbatim") {
        const auto id = ids[3].get<std::string>();
        std::string text = R"({"$id":")" + id + R"(","note":")" + std::string(1500, 'x') + R"("})";
        fake.set_contact_text(id, text);
        const auto after = fetch_both();
        CHECK(after.find(text) != std::string::npos);
    }
    SECTION("a truncating fault cuts the text, not the gzip stream") {
        fake.inject({"POST", std::string(k_campaign_path) + "/contacts/", FaultKind::truncate, 0,
                     std::nullopt, 0, 1});
        const auto zipped = gzip_client.Post(path.c_str(), ids.dump(), "application/json");
        REQUIRE(zipped);
        CHECK(zipped->body == before.substr(0, before.size() / 2));
    }
    SECTION("an answer of one small contact goes plain") {
        const json one = json::array({ids[0]});
        const auto small = gzip_client.Post(path.c_str(), one.dump(), "application/json");
        REQUIRE(small);
        if (small->body.size() <= crmsync::fakes::k_largest_plain_body) {
            CHECK_FALSE(small->has_header("Content-Encoding"));
        }
        CHECK(small->body == plain.post_ids(one)->body);
    }
}

TEST_CASE("gzip pieces join into one gzip member of their texts in order") {
    using crmsync::fakes::gunzip;
    using crmsync::fakes::gzip_join;
    using crmsync::fakes::gzip_piece;
    using crmsync::fakes::GzipPiece;
    std::vector<std::string> texts = {"", "[", std::string(100000, 'a'), ",", "\u00e9\"x\"",
                                      "", "]"};
    std::string binary;
    for (int i = 0; i < 70000; ++i) {
        binary += static_cast<char>((i * 7919) % 251); // not compressible, longer than a window
    }
    texts.push_back(binary);
    std::vector<GzipPiece> pieces;
    std::string whole;
    for (const auto& text : texts) {
        pieces.push_back(gzip_piece(text));
        whole += text;
    }
    std::vector<const GzipPiece*> order;
    for (const auto& piece : pieces) {
        order.push_back(&piece);
    }
    const auto gzipped = gzip_join(order);
    CHECK(gunzip(gzipped) == whole);
    CHECK(gunzip(gzip_join({})).empty());
    CHECK(gunzip(crmsync::fakes::gzip_fast(whole)) == whole);
    // A member cut short, or with a wrong CRC, is refused.
    CHECK_THROWS(gunzip(gzipped.substr(0, gzipped.size() - 1)));
    auto bad_crc = gzipped;
    bad_crc[bad_crc.size() - 8] ^= 1;
    CHECK_THROWS(gunzip(bad_crc));
}

TEST_CASE("accepts_gzip reads Accept-Encoding as RFC 9110 does") {
    using crmsync::fakes::accepts_gzip;
    CHECK(accepts_gzip("gzip"));
    CHECK(accepts_gzip("deflate, GZIP"));
    CHECK(accepts_gzip("br;q=1.0, gzip;q=0.5"));
    CHECK(accepts_gzip("x-gzip"));
    CHECK_FALSE(accepts_gzip(""));
    CHECK_FALSE(accepts_gzip("identity"));
    CHECK_FALSE(accepts_gzip("gzip;q=0"));
    CHECK_FALSE(accepts_gzip("gzip; q=0.000"));
    CHECK_FALSE(accepts_gzip("gzipx, deflate"));
}

TEST_CASE("DialfireFake E1 lists fields", "[http]") {
    DialfireFake fake(small_campaign());
    fake.start();
    Api api(fake);

    const auto fields = api.get_json("/fields/list");
    REQUIRE(fields.is_array());
    std::size_t active = 0;
    bool has_deleted = false;
    bool has_non_field = false;
    std::set<std::string> types;
    for (const auto& f : fields) {
        for (const char* key : {"type", "fieldType", "name", "state", "deleted"}) {
            CHECK(f.contains(key));
        }
        if (f["type"] == "field" && !f["deleted"].get<bool>()) {
            ++active;
            types.insert(f["fieldType"].get<std::string>());
        }
        has_deleted = has_deleted || f["deleted"].get<bool>();
        has_non_field = has_non_field || f["type"] != "field";
    }
    CHECK(active == 8);
    CHECK(has_deleted);
    CHECK(has_non_field);
    CHECK(types == std::set<std::string>{"number", "text"});

    SECTION("lists a field added at run time") {
        fake.add_custom_field("added_later", "number");
        const auto after = api.get_json("/fields/list");
        CHECK(after.back()["name"] == "added_later");
        CHECK(after.back()["fieldType"] == "number");
    }
}

TEST_CASE("DialfireFake E2 pages contact ids and md5s", "[http]") {
    DialfireFake fake(small_campaign(20));
    fake.start();
    Api api(fake);

    SECTION("pages with a cursor until it is empty") {
        std::size_t pages = 0;
        const auto all = all_pages(api, "/contacts/list", "limit=7", &pages);
        CHECK(pages == 3);
        std::vector<std::string> ids;
        for (const auto& r : all) {
            ids.push_back(r["id"]);
            CHECK(r["md5"].get<std::string>().size() == 32);
            CHECK(r["md5"] == *fake.contact_md5(r["id"]));
        }
        CHECK(ids == fake.contact_ids());
    }
    SECTION("sends an empty cursor on the last page") {
        const auto page = api.get_json("/contacts/list?limit=1000");
        CHECK(page["count"] == 20);
        CHECK(page["cursor"] == "");
    }
    SECTION("clamps limit to 1000 and rejects nonsense") {
        CHECK(api.get_json("/contacts/list?limit=5000")["count"] == 20);
        CHECK(api.get("/contacts/list?limit=abc")->status == 400);
        CHECK(api.get("/contacts/list?limit=0")->status == 400);
        CHECK(api.get("/contacts/list?cursor=zzz")->status == 400);
    }
    SECTION("filters by change date with day granularity") {
        CHECK(api.get_json("/contacts/list?changedSince=2024-06-02")["count"] == 0);
        CHECK(api.get_json("/contacts/list?changedSince=2024-04-01")["count"] == 20);
        const auto touched = fake.touch_contacts(3);
        const auto today = crmsync::fakes::format_iso_ms(system_now_ms()).substr(0, 10);
        const auto page = api.get_json("/contacts/list?changedSince=" + today);
        std::set<std::string> ids;
        for (const auto& r : page["results"]) {
            ids.insert(r["id"]);
        }
        CHECK(ids == std::set<std::string>(touched.begin(), touched.end()));
        CHECK(api.get("/contacts/list?changedSince=2024-13-01")->status == 400);
    }
}

TEST_CASE("DialfireFake E3 returns full contacts", "[http]") {
    DialfireFake fake(small_campaign(30));
    fake.start();
    Api api(fake);
    const auto ids = fake.contact_ids();

    SECTION("returns up to 20 contacts and leaves unknown ids out") {
        json request = json::array();
        for (std::size_t i = 0; i < 19; ++i) {
            request.push_back(ids[i]);
        }
        request.push_back("UNKNOWN000000000");
        auto res = api.post_ids(request);
        REQUIRE(res);
        REQUIRE(res->status == 200);
        const auto contacts = json::parse(res->body);
        REQUIRE(contacts.size() == 19);
        for (std::size_t i = 0; i < 19; ++i) {
            CHECK(contacts[i]["$id"] == ids[i]);
            CHECK(contacts[i]["$md5"] == *fake.contact_md5(ids[i]));
        }
    }
    SECTION("rejects more than 20 ids and non-array bodies") {
        json request = json::array();
        for (std::size_t i = 0; i < 21; ++i) {
            request.push_back(ids[i]);
        }
        CHECK(api.post_ids(request)->status == 400);
        CHECK(api.post_ids(json{{"id", ids[0]}})->status == 400);
    }
    SECTION("omits $md5 without include_md5") {
        auto res = api.post_ids(json::array({ids[0]}), false);
        REQUIRE(res);
        const auto contacts = json::parse(res->body);
        CHECK_FALSE(contacts[0].contains("$md5"));
    }
    SECTION("has the shape of reference §2.5") {
        std::size_t transactions = 0;
        std::size_t with_user_null = 0;
        std::size_t assigned = 0;
        std::size_t transfers = 0;
        std::size_t third_party = 0;
        std::size_t recordings = 0;
        std::size_t running = 0;
        std::set<std::string> connection_ids;
        std::set<std::string> types;
        std::set<std::string> tasks;
        const auto check_connection = [&](const json& c, auto& self) -> void {
            for (const char* key : {"id",
                                    "call_uuid",
                                    "global_call_uuid",
                                    "task_id",
                                    "phone",
                                    "user",
                                    "actor",
                                    "hangup_party",
                                    "isThirdPartyConnection",
                                    "dialerdomain",
                                    "fired",
                                    "started",
                                    "initiated",
                                    "remote_number",
                                    "line_number",
                                    "technology",
                                    "result",
                                    "code",
                                    "call_initiated",
                                    "recordings"}) {
                INFO(key);
                CHECK(c.contains(key));
            }
            CHECK(connection_ids.insert(c["id"].get<std::string>()).second);
            CHECK(c["fired"].get<std::string>().back() == 'Z');
            running += c.contains("disconnected") ? 0 : 1;
            transfers += c["technology"] == "transfer" ? 1 : 0;
            recordings += c["recordings"].size();
            for (const auto& r : c["recordings"]) {
                for (const char* key : {"started", "stopped", "filename", "location"}) {
                    CHECK(r.contains(key));
                }
            }
            if (c.contains("third_party_connections")) {
                for (const auto& child : c["third_party_connections"]) {
                    ++third_party;
                    CHECK(child["isThirdPartyConnection"] == true);
                    self(child, self);
                }
            }
        };
        for (std::size_t first = 0; first < ids.size(); first += 20) {
            json request = json::array();
            for (std::size_t i = first; i < std::min(ids.size(), first + 20); ++i) {
                request.push_back(ids[i]);
            }
            const auto contacts = json::parse(api.post_ids(request)->body);
            for (const auto& c : contacts) {
                for (const char* key : {"$id",
                                        "$md5",
                                        "$ref",
                                        "$version",
                                        "$campaign_id",
                                        "$task_id",
                                        "$task",
                                        "$status",
                                        "$status_detail",
                                        "$created_date",
                                        "$entry_date",
                                        "$owner",
                                        "$follow_up_date",
                                        "$phone",
                                        "$timezone",
                                        "$caller_id",
                                        "$source",
                                        "$comment",
                                        "$error",
                                        "$recording",
                                        "$recording_url",
                                        "$task_log"}) {
                    INFO(key);
                    CHECK(c.contains(key));
                }
                CHECK(c["$campaign_id"] == "DEMO0000CAMPAIGN");
                for (const auto& entry : c["$task_log"]) {
                    for (const auto& t : entry["transactions"]) {
                        ++transactions;
                        for (const char* key :
                             {"fired", "type", "task_id", "task", "status", "status_detail",
                              "pause_time_sec", "edit_time_sec", "wrapup_time_sec", "user",
                              "user_loginName", "user_branch", "user_tenantAlias", "actor",
                              "result", "trigger", "isHI", "revoked", "connections"}) {
                            INFO(key);
                            CHECK(t.contains(key));
                        }
                        CHECK(t["pause_time_sec"].is_number());
                        const auto fired = t["fired"].get<std::string>();
                        CHECK(fired.size() == 24);
                        CHECK(crmsync::fakes::parse_api_time(fired).has_value());
                        with_user_null += t["user"].is_null() ? 1 : 0;
                        assigned += t["status_detail"] == "$assigned" ? 1 : 0;
                        types.insert(t["type"].get<std::string>());
                        tasks.insert(t["task"].get<std::string>());
                        for (const auto& conn : t["connections"]) {
                            check_connection(conn, check_connection);
                        }
                    }
                }
            }
        }
        CHECK(transactions == 90);
        CHECK(with_user_null > 0);
        CHECK(assigned > 0);
        CHECK(recordings > 0);
        CHECK(transfers + third_party > 0);
        CHECK(types.count("update") == 1);
        CHECK(tasks.count("fc_call") == 1);
        // Contact index 7 (period 50, offset 7) has a call still running, if it has calls.
        CHECK(running <= 1);
    }
    SECTION("is deterministic for a fixed seed and history") {
        DialfireFake twin(small_campaign(30));
        for (const auto& id : ids) {
            CHECK(*twin.contact_text(id) == *fake.contact_text(id));
        }
    }
}

TEST_CASE("DialfireFake touch changes contacts", "[http]") {
    DialfireFake fake(small_campaign(10));
    fake.start();
    Api api(fake);
    const auto before = api.get_json("/contacts/list");
    const auto events_before = fake.event_count();

    const auto touched = fake.touch_contacts(2);
    REQUIRE(touched.size() == 2);
    CHECK(fake.event_count() == events_before + 2);
    const auto after = api.get_json("/contacts/list");
    for (std::size_t i = 0; i < before["results"].size(); ++i) {
        const auto& id = before["results"][i]["id"];
        const bool was_touched = std::find(touched.begin(), touched.end(), id) != touched.end();
        INFO(id);
        CHECK((before["results"][i]["md5"] != after["results"][i]["md5"]) == was_touched);
    }
    const auto contact = fetch_contact(api, touched[0]);
    CHECK(contact["$md5"] == *fake.contact_md5(touched[0]));
    const auto& last_entry = contact["$task_log"].back();
    const auto fired = crmsync::fakes::parse_api_time(
        last_entry["transactions"].back()["fired"].get<std::string>());
    REQUIRE(fired);
    CHECK(std::abs(*fired - system_now_ms()) < 60'000);
}

TEST_CASE("DialfireFake E4 indexes transactions", "[http]") {
    DialfireFake fake(small_campaign(40));
    fake.start();
    Api api(fake);
    const std::string path = "/contacts/transactions/";

    const auto all = all_pages(api, path, "from=2024-01-01&limit=13");
    REQUIRE(all.size() == fake.event_count());
    REQUIRE(all.size() == 120);
    std::vector<EventRef> events;
    events.reserve(all.size());
    for (const auto& r : all) {
        events.push_back(parse_event(r.get<std::string>()));
    }
    CHECK(std::is_sorted(events.begin(), events.end(),
                         [](const auto& a, const auto& b) { return a.fired < b.fired; }));

    // Resolve each event's pointer in its contact's $task_log.
    std::map<std::string, json> contacts;
    for (const auto& e : events) {
        if (!contacts.contains(e.contact_id)) {
            contacts[e.contact_id] = fetch_contact(api, e.contact_id);
        }
    }
    const auto tx_of = [&](const EventRef& e) -> const json& {
        return contacts[e.contact_id]["$task_log"][e.task_log]["transactions"][e.tx];
    };

    SECTION("points at the transaction with that fired and the contact's md5") {
        for (const auto& e : events) {
            CHECK(tx_of(e)["fired"] == e.fired);
            CHECK(contacts[e.contact_id]["$md5"] == e.md5);
        }
    }
    SECTION("filters type, hi and task prefixes") {
        const auto filtered =
            all_pages(api, path, "type=update&hi=true&tasks=fc_,qc_&from=2024-01-01");
        REQUIRE_FALSE(filtered.empty());
        std::size_t expected = 0;
        for (const auto& e : events) {
            const auto& t = tx_of(e);
            const auto task = t["task"].get<std::string>();
            if (t["type"] == "update" && !t["user"].is_null() &&
                t["status_detail"] != "$assigned" &&
                (task.starts_with("fc_") || task.starts_with("qc_"))) {
                ++expected;
            }
        }
        CHECK(filtered.size() == expected);
        CHECK(filtered.size() < all.size());
        for (const auto& r : filtered) {
            const auto& t = tx_of(parse_event(r.get<std::string>()));
            CHECK(t["type"] == "update");
            CHECK_FALSE(t["user"].is_null());
            CHECK(t["status_detail"] != "$assigned");
            CHECK(t["task"] != "other_task");
        }
    }
    SECTION("treats from as inclusive and to as exclusive, without Z") {
        const auto& pivot = events[events.size() / 2].fired; // "...:46.468Z"
        const auto go_time = pivot.substr(0, 23);            // Go layout, no Z
        const auto from_pivot = all_pages(api, path, "from=" + go_time);
        const auto to_pivot = all_pages(api, path, "from=2024-01-01&to=" + go_time);
        CHECK(parse_event(from_pivot.front().get<std::string>()).fired == pivot);
        CHECK(from_pivot.size() + to_pivot.size() == all.size());
        CHECK(api.get(path + "?from=yesterday")->status == 400);
    }
    SECTION("omits the cursor on the last page") {
        const auto page = api.get_json(path + "?from=2024-01-01&limit=1000");
        CHECK_FALSE(page.contains("cursor"));
    }
}

TEST_CASE("DialfireFake E5 pages inbound calls", "[http]") {
    DialfireFake fake(small_campaign());
    fake.start();
    Api api(fake);

    std::size_t pages = 0;
    const auto calls = all_pages(api, "/inbound/calls/", "from=2024-01-01&limit=10", &pages);
    CHECK(pages == 3);
    REQUIRE(calls.size() == 25);
    for (const auto& c : calls) {
        for (const char* key :
             {"id", "line_id", "campaign_id", "task_id", "task_name", "contact_id",
              "calling_number", "called_number", "call_time", "connect_time", "hangup_time", "user",
              "state", "connectable_time", "disposition", "dispatch_error"}) {
            INFO(key);
            CHECK(c.contains(key));
        }
    }
    const auto pivot = calls[10]["call_time"].get<std::string>().substr(0, 23);
    const auto before = all_pages(api, "/inbound/calls/", "from=2024-01-01&to=" + pivot);
    CHECK(before.size() == 10);
    const auto after = all_pages(api, "/inbound/calls/", "from=" + pivot);
    CHECK(after.size() == 15);
}

TEST_CASE("DialfireFake sends a Date header from its own clock", "[http]") {
    DialfireFake fake(small_campaign());
    fake.start();
    Api api(fake);

    auto res = api.get("/fields/list");
    REQUIRE(res);
    CHECK(std::abs(parse_http_date(res->get_header_value("Date")) - system_now_ms()) < 5'000);

    fake.set_clock_offset(std::chrono::hours(-2));
    res = api.get("/fields/list");
    REQUIRE(res);
    const auto skew = parse_http_date(res->get_header_value("Date")) - system_now_ms();
    CHECK(std::abs(skew + std::int64_t{2} * 3'600'000) < 5'000);

    res = api.get("/contacts/list?limit=abc");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(res->has_header("Date"));
}

TEST_CASE("DialfireFake injects faults", "[http]") {
    DialfireFake fake(small_campaign());
    fake.start();
    Api api(fake);
    const std::string fields = std::string(k_campaign_path) + "/fields/list";
    const auto normal = api.get("/fields/list")->body;

    SECTION("status with Retry-After, for the given count") {
        fake.inject({"GET", fields, FaultKind::status, 503, "2", 0, 2});
        for (int i = 0; i < 2; ++i) {
            auto res = api.get("/fields/list");
            REQUIRE(res);
            CHECK(res->status == 503);
            CHECK(res->get_header_value("Retry-After") == "2");
            CHECK(json::parse(res->body)["status"] == 503);
        }
        CHECK(api.get("/fields/list")->status == 200);
        CHECK(fake.pending_faults() == 0);
    }
    SECTION("matches method and path prefix") {
        fake.inject({"POST", "", FaultKind::status, 500, std::nullopt, 0, 1});
        CHECK(api.get("/fields/list")->status == 200);
        CHECK(api.post_ids(json::array())->status == 500);
    }
    SECTION("reset: the client sees no response") {
        fake.inject({"", fields, FaultKind::reset, 0, std::nullopt, 0, 1});
        auto res = api.get("/fields/list");
        CHECK_FALSE(res);
        CHECK(res.error() != httplib::Error::Success);
        CHECK(api.get("/fields/list")->status == 200);
        REQUIRE_FALSE(fake.requests().empty());
        CHECK(fake.requests()[fake.requests().size() - 2].status == 0);
    }
    SECTION("truncate: half the body with a matching Content-Length") {
        fake.inject({"", fields, FaultKind::truncate, 0, std::nullopt, 0, 1});
        auto res = api.get("/fields/list");
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->body.size() == normal.size() / 2);
        CHECK(res->body == normal.substr(0, normal.size() / 2));
        CHECK_THROWS(json::parse(res->body));
    }
    SECTION("malformed: 200 with a body that is not JSON") {
        fake.inject({"", fields, FaultKind::malformed, 0, std::nullopt, 0, 1});
        auto res = api.get("/fields/list");
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK_THROWS(json::parse(res->body));
    }
    SECTION("slow: answers normally after the delay") {
        fake.inject({"", fields, FaultKind::slow, 0, std::nullopt, 300, 1});
        const auto start = std::chrono::steady_clock::now();
        auto res = api.get("/fields/list");
        const auto elapsed = std::chrono::steady_clock::now() - start;
        REQUIRE(res);
        CHECK(res->body == normal);
        CHECK(elapsed >= std::chrono::milliseconds(300));
    }
    SECTION("faults act before authentication") {
        fake.inject({"", "", FaultKind::status, 502, std::nullopt, 0, 1});
        Api wrong(fake, "wrong");
        CHECK(wrong.get("/fields/list")->status == 502);
        CHECK(wrong.get("/fields/list")->status == 403);
    }
    SECTION("parses faults from JSON") {
        const auto f = crmsync::fakes::fault_from_json(
            json{{"kind", "slow"}, {"delay_ms", 5}, {"retry_after", 3}, {"count", 4}});
        CHECK(f.kind == FaultKind::slow);
        CHECK(f.delay_ms == 5);
        CHECK(f.retry_after == "3");
        CHECK(f.count == 4);
        CHECK_THROWS_AS(crmsync::fakes::fault_from_json(json{{"kind", "explode"}}),
                        std::invalid_argument);
    }
}

TEST_CASE("DialfireFake accepts injected raw contacts", "[http]") {
    DialfireFake fake(small_campaign(5));
    fake.start();
    Api api(fake);

    const json raw = {{"firstname", "no id here"},
                      {"$task_log",
                       {{{"transactions",
                          {{{"fired", "2024-05-05T05:05:05.000Z"},
                            {"type", "update"},
                            {"task", "fc_call"},
                            {"user", "U1"},
                            {"status_detail", "reached"}}}}}}}};
    const auto id = fake.add_raw_contact(raw);
    const auto listed = api.get_json("/contacts/list");
    CHECK(listed["count"] == 6);
    CHECK(listed["results"].back()["id"] == id);
    const auto fetched = fetch_contact(api, id);
    CHECK(fetched == raw);
    CHECK_FALSE(fetched.contains("$id"));

    const auto events =
        api.get_json("/contacts/transactions/?from=2024-05-05T05:05:05&to=2024-05-05T05:05:05.001");
    REQUIRE(events["count"] == 1);
    CHECK(parse_event(events["results"][0].get<std::string>()).contact_id == id);

    fake.set_contact_text(id, "{\"$id\":\"X\",\"bad\":\"\xFF\"}");
    auto res = api.post_ids(json::array({id}));
    REQUIRE(res);
    CHECK(res->body == "[{\"$id\":\"X\",\"bad\":\"\xFF\"}]");
}

TEST_CASE("DialfireFake hostile campaign", "[http]") {
    auto options = small_campaign(12);
    options.hostile = true;
    DialfireFake fake(options);
    fake.start();
    Api api(fake);

    const auto items = fake.hostile_items();
    REQUIRE(items.size() >= 18);
    const auto find = [&](HostileCase what) {
        const auto it = std::find_if(items.begin(), items.end(),
                                     [&](const auto& item) { return item.what == what; });
        REQUIRE(it != items.end());
        return *it;
    };

    SECTION("E1 carries the nasty field names") {
        std::set<std::string> names;
        for (const auto& f : api.get_json("/fields/list")) {
            names.insert(f["name"].get<std::string>());
        }
        for (const auto& f : crmsync::fakes::hostile_fields()) {
            CHECK(names.count(f.name) == 1);
        }
        CHECK(names.count("Zähler_Nr") == 1);
        CHECK(names.count("$id") == 1);
        CHECK(names.count("_raw") == 1);
        CHECK(find(HostileCase::field_name_100_chars).field_name.size() == 100);
    }
    SECTION("a 1 MiB value") {
        const auto item = find(HostileCase::value_1mb);
        const auto contact = fetch_contact(api, item.contact_id);
        CHECK(contact[item.field_name].get<std::string>().size() ==
              crmsync::fakes::k_hostile_huge_value_size);
    }
    SECTION("raw invalid UTF-8 bytes inside a JSON string") {
        const auto item = find(HostileCase::value_invalid_utf8);
        auto res = api.post_ids(json::array({item.contact_id}));
        REQUIRE(res);
        CHECK(res->body.find("M\xC3\x28ller \xFF GmbH") != std::string::npos);
        CHECK_THROWS(json::parse(res->body));
    }
    SECTION("an escaped NUL inside a string") {
        const auto item = find(HostileCase::value_nul);
        const auto contact = fetch_contact(api, item.contact_id);
        CHECK(contact[item.field_name].get<std::string>() == std::string("before\0after", 12));
    }
    SECTION("a contact without $id in E3 but listed in E2") {
        const auto item = find(HostileCase::contact_without_id);
        const auto contact = fetch_contact(api, item.contact_id);
        CHECK_FALSE(contact.contains("$id"));
        CHECK(contact.contains("$md5"));
    }
    SECTION("a non-numeric pause_time_sec and a transaction without fired") {
        const auto pause = fetch_contact(api, find(HostileCase::pause_time_not_number).contact_id);
        CHECK(pause["$task_log"][0]["transactions"][0]["pause_time_sec"] == "abc");
        const auto no_fired =
            fetch_contact(api, find(HostileCase::transaction_without_fired).contact_id);
        CHECK_FALSE(no_fired["$task_log"].back()["transactions"].back().contains("fired"));
        // The transaction without fired has no E4 event.
        CHECK(fake.event_count() == 12 * 3 - 1);
    }
}

TEST_CASE("DialfireFake serves a large campaign quickly", "[http]") {
    auto options = small_campaign(5'000);
    options.worker_threads = 8;
    DialfireFake fake(options);
    fake.start();
    Api api(fake);

    const auto start = std::chrono::steady_clock::now();
    const auto listed = all_pages(api, "/contacts/list", "limit=1000");
    REQUIRE(listed.size() == 5'000);
    std::size_t fetched = 0;
    for (std::size_t first = 0; first < 1'000; first += 20) {
        json request = json::array();
        for (std::size_t i = first; i < first + 20; ++i) {
            request.push_back(listed[i]["id"]);
        }
        fetched += json::parse(api.post_ids(request)->body).size();
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(fetched == 1'000);
    CHECK(elapsed < std::chrono::seconds(10));
}

TEST_CASE("DialfireFake stays consistent under concurrent clients and mutators", "[http]") {
    DialfireFake fake(small_campaign(200));
    fake.start();
    std::atomic<bool> failed{false};
    std::vector<std::thread> clients;
    clients.reserve(4);
    for (int c = 0; c < 4; ++c) {
        clients.emplace_back([&fake, &failed, c] {
            Api api(fake);
            for (int round = 0; round < 15; ++round) {
                const auto list = api.get(c % 2 == 0 ? "/contacts/list?limit=50"
                                                     : "/contacts/transactions/?from=2024-01-01");
                const auto ids = fake.contact_ids();
                json request = json::array();
                for (std::size_t i = 0; i < 20; ++i) {
                    request.push_back(ids[(static_cast<std::size_t>(round) * 20 + i) % ids.size()]);
                }
                const auto fetched = api.post_ids(request);
                if (!list || list->status != 200 || !fetched || fetched->status != 200 ||
                    json::parse(fetched->body).size() != 20) {
                    failed = true;
                }
            }
        });
    }
    for (int i = 0; i < 20; ++i) {
        fake.touch_contacts(7);
        fake.add_custom_field("concurrent_" + std::to_string(i));
        fake.inject({"GET", "/api/none", FaultKind::status, 500, std::nullopt, 0, 1});
    }
    for (auto& t : clients) {
        t.join();
    }
    CHECK_FALSE(failed);
    CHECK(fake.event_count() == 200 * 3 + 20 * 7);
}
