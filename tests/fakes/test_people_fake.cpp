// Checks the People API fake against reference apis.md §2.1-2.3 with a real HTTP client on
// loopback: paging, sync-token deltas with deletions, expiry, etags, users, quota and faults.

#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/people/people_control.hpp"
#include "tests/fakes/people/people_fake.hpp"
#include "tests/support/fake_process.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <set>
#include <string>

namespace {

using crmsync::fakes::Fault;
using crmsync::fakes::FaultKind;
using crmsync::fakes::PeopleFake;
using crmsync::fakes::PeopleFakeOptions;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string k_fields = "names,emailAddresses,phoneNumbers,metadata";

// A client as the sync uses it: Bearer token of one user.
struct Api {
    Api(const std::string& base_url, const std::string& token) : client(base_url) {
        client.set_connection_timeout(2s);
        client.set_read_timeout(5s);
        client.set_default_headers({{"Authorization", "Bearer " + token}});
    }
    httplib::Result list(const std::string& query) {
        return client.Get("/v1/people/me/connections?" + query);
    }
    httplib::Client client;
};

json body_of(const httplib::Result& res, int status = 200) {
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == status);
    return json::parse(res->body);
}

json person(const std::string& given, const std::string& family, const std::string& email) {
    return {{"names", {{{"givenName", given}, {"familyName", family}}}},
            {"emailAddresses", {{{"value", email}}}},
            {"phoneNumbers", {{{"value", "+48 123 456 789"}, {"type", "mobile"}}}}};
}

// Every page of one listing: the connections and the final answer's nextSyncToken.
struct Listing {
    std::vector<json> connections;
    std::string sync_token;
    int pages = 0;
};

Listing list_all(Api& api, const std::string& query, std::string page_token = "") {
    Listing out;
    for (;;) {
        REQUIRE(out.pages < 1000); // a page token that never ends the listing
        auto q = query;
        if (!page_token.empty()) {
            q += "&pageToken=" + page_token;
        }
        const auto body = body_of(api.list(q));
        ++out.pages;
        for (const auto& c : body.value("connections", json::array())) {
            out.connections.push_back(c);
        }
        if (!body.contains("nextPageToken")) {
            CHECK_FALSE(body.contains("nextPageToken"));
            out.sync_token = body.value("nextSyncToken", std::string());
            return out;
        }
        CHECK_FALSE(body.contains("nextSyncToken")); // only on the last page
        page_token = body["nextPageToken"].get<std::string>();
    }
}

std::string reason_of(const json& body) {
    for (const auto& d : body["error"].value("details", json::array())) {
        if (d.contains("reason")) {
            return d["reason"].get<std::string>();
        }
    }
    return {};
}

} // namespace

TEST_CASE("PeopleFake lists connections page by page", "[http]") {
    PeopleFake fake;
    fake.add_user("alice", "token-alice");
    fake.start();
    for (int i = 0; i < 250; ++i) {
        fake.add_contact(
            "alice", person("Jan", std::to_string(i), "jan" + std::to_string(i) + "@example.com"));
    }
    Api api(fake.base_url(), "token-alice");

    SECTION("personFields is required") {
        const auto body = body_of(api.list("pageSize=10"), 400);
        CHECK(body["error"]["status"] == "INVALID_ARGUMENT");
        body_of(api.list("personFields=names,bogusField"), 400);
    }
    SECTION("100 per page by default, nextSyncToken only on the last page") {
        const auto first = body_of(api.list("personFields=" + k_fields + "&requestSyncToken=true"));
        CHECK(first["connections"].size() == 100);
        CHECK(first["totalItems"] == 250);
        CHECK(first.contains("nextPageToken"));
        const auto all = list_all(api, "personFields=" + k_fields + "&requestSyncToken=true");
        CHECK(all.pages == 3);
        CHECK(all.connections.size() == 250);
        CHECK_FALSE(all.sync_token.empty());
        std::set<std::string> names;
        for (const auto& c : all.connections) {
            names.insert(c["resourceName"].get<std::string>());
        }
        CHECK(names.size() == 250);
    }
    SECTION("pageSize up to 1000; more is refused") {
        CHECK(list_all(api, "personFields=names&pageSize=1000").pages == 1);
        CHECK(list_all(api, "personFields=names&pageSize=7").pages == 36);
        body_of(api.list("personFields=names&pageSize=1001"), 400);
    }
    SECTION("no sync token without requestSyncToken") {
        CHECK(list_all(api, "personFields=names&pageSize=500").sync_token.empty());
    }
    SECTION("a Person has the documented shape, and only the asked fields") {
        const auto c =
            body_of(api.list("personFields=" + k_fields + "&pageSize=1"))["connections"][0];
        CHECK(c["resourceName"].get<std::string>().starts_with("people/c"));
        CHECK(c["resourceName"].get<std::string>().size() == 8 + 19);
        CHECK_FALSE(c["etag"].get<std::string>().empty());
        const auto& source = c["metadata"]["sources"][0];
        CHECK(source["type"] == "CONTACT");
        CHECK(source["updateTime"].get<std::string>().ends_with("Z"));
        CHECK(c["names"][0]["displayName"] == "Jan 0");
        CHECK(c["names"][0]["givenName"] == "Jan");
        CHECK(c["names"][0]["familyName"] == "0");
        CHECK(c["emailAddresses"][0]["metadata"]["primary"] == true);
        CHECK(c["phoneNumbers"][0]["metadata"]["primary"] == true);
        CHECK(c["phoneNumbers"][0]["canonicalForm"] == "+48123456789");
        const auto only = body_of(api.list("personFields=names&pageSize=1"))["connections"][0];
        CHECK_FALSE(only.contains("emailAddresses"));
        CHECK_FALSE(only.contains("metadata"));
        CHECK(only.contains("etag"));
    }
    SECTION("a page token from another listing kind is refused") {
        const auto full =
            body_of(api.list("personFields=names&requestSyncToken=true&pageSize=1000"));
        const auto token = full["nextSyncToken"].get<std::string>();
        const auto page = body_of(api.list("personFields=names&pageSize=1"))["nextPageToken"];
        body_of(api.list("personFields=names&syncToken=" + token +
                         "&pageToken=" + page.get<std::string>()),
                400);
        body_of(api.list("personFields=names&pageToken=garbage"), 400);
    }
}

TEST_CASE("PeopleFake sync tokens give deltas with deletions", "[http]") {
    PeopleFake fake;
    fake.add_user("alice", "token-alice");
    fake.start();
    std::vector<std::string> names;
    for (int i = 0; i < 5; ++i) {
        names.push_back(
            fake.add_contact("alice", person("A", std::to_string(i),
                                             "a" + std::to_string(i) + "@x.com"))["resourceName"]);
    }
    Api api(fake.base_url(), "token-alice");
    const auto full = list_all(api, "personFields=" + k_fields + "&requestSyncToken=true");
    REQUIRE(full.connections.size() == 5);
    REQUIRE_FALSE(full.sync_token.empty());

    SECTION("an unchanged account gives an empty delta and a new token") {
        const auto delta =
            list_all(api, "personFields=" + k_fields + "&syncToken=" + full.sync_token);
        CHECK(delta.connections.empty());
        CHECK_FALSE(delta.sync_token.empty());
    }
    SECTION("edits, additions and deletions come back, deletions as tombstones") {
        fake.edit_contact("alice", names[1], {{"emailAddresses", {{{"value", "new@x.com"}}}}});
        fake.delete_contact("alice", names[2]);
        const auto added = fake.add_contact("alice", person("B", "new", "b@x.com"));
        const auto delta = list_all(api, "personFields=" + k_fields +
                                             "&syncToken=" + full.sync_token + "&pageSize=2");
        REQUIRE(delta.connections.size() == 3);
        CHECK(delta.pages == 2);
        CHECK(delta.connections[0]["resourceName"] == names[1]);
        CHECK(delta.connections[0]["emailAddresses"][0]["value"] == "new@x.com");
        const auto& gone = delta.connections[1];
        CHECK(gone == json{{"resourceName", names[2]},
                           {"etag", gone["etag"]},
                           {"metadata", {{"deleted", true}}}});
        CHECK(delta.connections[2]["resourceName"] == added["resourceName"]);
        // A full listing no longer has the deleted one.
        CHECK(list_all(api, "personFields=names").connections.size() == 5);
        // The next delta starts after these changes.
        CHECK(
            list_all(api, "personFields=names&syncToken=" + delta.sync_token).connections.empty());
    }
    SECTION("a change made while a listing pages is never lost") {
        const auto first = body_of(api.list("personFields=names&requestSyncToken=true&pageSize=2"));
        fake.edit_contact("alice", names[0], {{"names", {{{"givenName", "Changed"}}}}});
        const auto rest = list_all(api, "personFields=names&requestSyncToken=true&pageSize=2",
                                   first["nextPageToken"].get<std::string>());
        const auto delta = list_all(api, "personFields=names&syncToken=" + rest.sync_token);
        REQUIRE(delta.connections.size() == 1);
        CHECK(delta.connections[0]["names"][0]["givenName"] == "Changed");
    }
    SECTION("expired tokens answer 400 FAILED_PRECONDITION EXPIRED_SYNC_TOKEN") {
        fake.expire_sync_tokens("alice");
        const auto body = body_of(api.list("personFields=names&syncToken=" + full.sync_token), 400);
        CHECK(body["error"]["status"] == "FAILED_PRECONDITION");
        CHECK(reason_of(body) == "EXPIRED_SYNC_TOKEN");
        // A new full sync gives a token that works.
        const auto again = list_all(api, "personFields=names&requestSyncToken=true");
        CHECK(again.connections.size() == 5);
        CHECK(
            list_all(api, "personFields=names&syncToken=" + again.sync_token).connections.empty());
    }
    SECTION("or 410 when switched so") {
        fake.set_expired_sync_token_status(410);
        fake.expire_sync_tokens("alice");
        const auto body = body_of(api.list("personFields=names&syncToken=" + full.sync_token), 410);
        CHECK(reason_of(body) == "EXPIRED_SYNC_TOKEN");
    }
    SECTION("tokens expire seven days after they were issued") {
        fake.set_clock_offset(24h * 7 - 1min);
        CHECK(list_all(api, "personFields=names&syncToken=" + full.sync_token).connections.empty());
        fake.set_clock_offset(24h * 7 + 1min);
        CHECK(reason_of(body_of(api.list("personFields=names&syncToken=" + full.sync_token),
                                400)) == "EXPIRED_SYNC_TOKEN");
    }
    SECTION("a token of another user or garbage is an invalid argument") {
        fake.add_user("bob", "token-bob");
        Api bob(fake.base_url(), "token-bob");
        const auto body = body_of(bob.list("personFields=names&syncToken=" + full.sync_token), 400);
        CHECK(body["error"]["status"] == "INVALID_ARGUMENT");
        body_of(api.list("personFields=names&syncToken=nonsense"), 400);
    }
}

TEST_CASE("PeopleFake creates, updates, reads and deletes contacts", "[http]") {
    PeopleFake fake;
    fake.add_user("alice", "token-alice");
    fake.start();
    Api api(fake.base_url(), "token-alice");
    auto created = body_of(api.client.Post("/v1/people:createContact?personFields=" + k_fields,
                                           person("Jan", "Kowalski", "jan@example.com").dump(),
                                           "application/json"));
    const auto name = created["resourceName"].get<std::string>();
    CHECK(created["names"][0]["displayName"] == "Jan Kowalski");
    REQUIRE(fake.contacts("alice").size() == 1);

    const auto update = [&](const json& body, const std::string& fields = "emailAddresses") {
        return api.client.Patch("/v1/" + name + ":updateContact?updatePersonFields=" + fields +
                                    "&personFields=" + k_fields,
                                body.dump(), "application/json");
    };
    json change = {{"etag", created["etag"]},
                   {"metadata", {{"sources", created["metadata"]["sources"]}}},
                   {"emailAddresses", {{{"value", "jan.kowalski@example.com"}}}}};

    SECTION("an update with the current etag replaces the listed fields and bumps the etag") {
        const auto updated = body_of(update(change));
        CHECK(updated["emailAddresses"][0]["value"] == "jan.kowalski@example.com");
        CHECK(updated["names"] == created["names"]); // not listed: kept
        CHECK(updated["etag"] != created["etag"]);
        CHECK(updated["metadata"]["sources"][0]["updateTime"] >=
              created["metadata"]["sources"][0]["updateTime"]);
        SECTION("the old etag is then stale: 400 FAILED_PRECONDITION") {
            const auto body = body_of(update(change), 400);
            CHECK(body["error"]["status"] == "FAILED_PRECONDITION");
        }
    }
    SECTION("a server-side edit makes the client's etag stale") {
        fake.edit_contact("alice", name, {{"phoneNumbers", {{{"value", "+1 555"}}}}});
        CHECK(body_of(update(change), 400)["error"]["status"] == "FAILED_PRECONDITION");
        const auto fresh = body_of(api.client.Get("/v1/" + name + "?personFields=" + k_fields));
        change["etag"] = fresh["etag"];
        CHECK(body_of(update(change))["phoneNumbers"][0]["value"] == "+1 555");
    }
    SECTION("updatePersonFields, etag and metadata.sources are required") {
        CHECK(body_of(api.client.Patch("/v1/" + name + ":updateContact", change.dump(),
                                       "application/json"),
                      400)["error"]["status"] == "INVALID_ARGUMENT");
        auto no_etag = change;
        no_etag.erase("etag");
        body_of(update(no_etag), 400);
        auto no_sources = change;
        no_sources.erase("metadata");
        body_of(update(no_sources), 400);
    }
    SECTION("more than one name is refused") {
        auto two = person("A", "B", "c@d.e");
        two["names"].push_back({{"givenName", "X"}});
        body_of(api.client.Post("/v1/people:createContact", two.dump(), "application/json"), 400);
    }
    SECTION("get by resource name; personFields required") {
        CHECK(body_of(api.client.Get("/v1/" + name +
                                     "?personFields=names"))["names"][0]["givenName"] == "Jan");
        body_of(api.client.Get("/v1/" + name), 400);
        body_of(api.client.Get("/v1/people/c1?personFields=names"), 404);
    }
    SECTION("delete: then 404, and the contact is gone") {
        const auto res = api.client.Delete("/v1/" + name + ":deleteContact");
        CHECK(body_of(res) == json::object());
        CHECK(fake.contacts("alice").empty());
        body_of(api.client.Get("/v1/" + name + "?personFields=names"), 404);
        body_of(api.client.Delete("/v1/" + name + ":deleteContact"), 404);
        body_of(update(change), 404);
    }
}

TEST_CASE("PeopleFake keeps users apart and knows their tokens", "[http]") {
    PeopleFake fake;
    fake.add_user("alice", "token-alice");
    fake.add_user("bob", "token-bob", "1//refresh-bob");
    fake.start();
    fake.add_contact("alice", person("A", "A", "a@x.com"));
    fake.add_contact("bob", person("B", "B", "b@x.com"));
    fake.add_contact("bob", person("C", "C", "c@x.com"));

    SECTION("each token sees its own user's contacts") {
        Api alice(fake.base_url(), "token-alice");
        Api bob(fake.base_url(), "token-bob");
        CHECK(list_all(alice, "personFields=names").connections.size() == 1);
        CHECK(list_all(bob, "personFields=names").connections.size() == 2);
        const auto bobs = fake.contacts("bob")[0]["resourceName"].get<std::string>();
        body_of(alice.client.Get("/v1/" + bobs + "?personFields=names"), 404);
    }
    SECTION("no or an unknown token: 401 UNAUTHENTICATED") {
        Api stranger(fake.base_url(), "token-nobody");
        const auto body = body_of(stranger.list("personFields=names"), 401);
        CHECK(body["error"]["status"] == "UNAUTHENTICATED");
        httplib::Client bare(fake.base_url());
        const auto res = bare.Get("/v1/people/me/connections?personFields=names");
        REQUIRE(res);
        CHECK(res->status == 401);
        CHECK(res->has_header("WWW-Authenticate"));
        // ?access_token= works like the header.
        CHECK(bare.Get("/v1/people/me/connections?personFields=names&access_token=token-alice")
                  ->status == 200);
    }
    SECTION("access tokens issued by the Google token fake are accepted") {
        crmsync::fakes::GoogleTokenFake google;
        google.add_account({"client-1", "secret-1", "1//refresh-bob", "", false});
        google.start();
        fake.set_token_resolver([&google](const std::string& token) -> std::optional<std::string> {
            const auto issued = google.validate(token);
            return issued ? std::optional(issued->refresh_token) : std::nullopt;
        });
        httplib::Client token_client(google.base_url());
        const auto grant = body_of(
            token_client.Post("/token",
                              "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&"
                              "refresh_token=1//refresh-bob",
                              "application/x-www-form-urlencoded"));
        Api bob(fake.base_url(), grant["access_token"].get<std::string>());
        CHECK(list_all(bob, "personFields=names").connections.size() == 2);
        google.set_revoked("1//refresh-bob");
        body_of(bob.list("personFields=names"), 401);
    }
    SECTION("a token belongs to one user") {
        CHECK_THROWS_AS(fake.add_user("bob", "token-alice"), std::invalid_argument);
    }
}

TEST_CASE("PeopleFake counts requests and answers 429 over the per-minute limit", "[http]") {
    PeopleFakeOptions options;
    options.per_minute_limit = 3;
    PeopleFake fake(options);
    fake.add_user("alice", "token-alice");
    fake.add_user("bob", "token-bob");
    fake.start();
    Api alice(fake.base_url(), "token-alice");
    Api bob(fake.base_url(), "token-bob");
    for (int i = 0; i < 3; ++i) {
        body_of(alice.list("personFields=names"));
    }
    const auto body = body_of(alice.list("personFields=names"), 429);
    CHECK(body["error"]["status"] == "RESOURCE_EXHAUSTED");
    CHECK(body["error"]["code"] == 429);
    body_of(bob.list("personFields=names")); // per user
    CHECK(fake.stats("alice").requests == 4);
    CHECK(fake.stats("alice").throttled == 1);
    CHECK(fake.stats("bob").requests == 1);

    SECTION("the window slides with the fake clock") {
        fake.set_clock_offset(61s);
        body_of(alice.list("personFields=names"));
    }
    SECTION("the limit can be switched off") {
        fake.set_per_minute_limit(0);
        body_of(alice.list("personFields=names"));
    }
}

TEST_CASE("PeopleFake injects faults before authentication", "[http]") {
    PeopleFake fake;
    fake.add_user("alice", "token-alice");
    fake.start();
    Api api(fake.base_url(), "token-alice");

    Fault limited;
    limited.status = 429;
    limited.retry_after = "2";
    fake.inject(limited);
    auto res = api.list("personFields=names");
    REQUIRE(res);
    CHECK(res->status == 429);
    CHECK(res->get_header_value("Retry-After") == "2");
    CHECK(json::parse(res->body)["error"]["status"] == "RESOURCE_EXHAUSTED");

    Fault broken;
    broken.status = 500;
    broken.path_prefix = "/v1/people:createContact";
    fake.inject(broken);
    CHECK(body_of(api.list("personFields=names"))["totalItems"] == 0); // another path
    CHECK(body_of(api.client.Post("/v1/people:createContact", "{}", "application/json"),
                  500)["error"]["status"] == "INTERNAL");

    Fault reset;
    reset.kind = FaultKind::reset;
    fake.inject(reset);
    CHECK_FALSE(api.list("personFields=names"));

    Fault malformed;
    malformed.kind = FaultKind::malformed;
    fake.inject(malformed);
    res = api.list("personFields=names");
    REQUIRE(res);
    CHECK_FALSE(json::accept(res->body));
    CHECK(body_of(api.list("personFields=names"))["totalItems"] == 0);
}

TEST_CASE("PeopleControl drives the fake over HTTP", "[http]") {
    PeopleFake fake;
    fake.start();
    crmsync::fakes::PeopleControl control(fake.base_url());
    control.add_user("alice", "token-alice");
    const auto added = control.add_contact("alice", person("A", "B", "a@b.c"));
    const auto name = added["resourceName"].get<std::string>();
    const auto edited = control.edit_contact("alice", name, {{"names", {{{"givenName", "Z"}}}}});
    CHECK(edited["etag"] != added["etag"]);
    CHECK(control.contacts("alice")["contacts"][0]["names"][0]["givenName"] == "Z");
    control.delete_contact("alice", name);
    CHECK(control.contacts("alice")["contacts"].empty());
    CHECK(control.contacts("alice")["deleted"] == json::array({name}));
    CHECK(control.settings({{"per_minute_limit", 1}})["per_minute_limit"] == 1);
    Api api(fake.base_url(), "token-alice");
    body_of(api.list("personFields=names"));
    body_of(api.list("personFields=names"), 429);
    CHECK(control.stats()["users"]["alice"]["throttled"] == 1);
    control.expire_sync_tokens("alice");
    control.inject_faults({{"status", 503}});
    control.clear_faults();
    CHECK_THROWS_AS(control.edit_contact("nobody", name, json::object()), std::runtime_error);
    CHECK_THROWS_AS(control.settings({{"expired_sync_token_status", 418}}), std::runtime_error);
}

#ifdef CRMSYNC_PEOPLE_FAKE_BINARY
TEST_CASE("people_fake runs as a process with generated contacts", "[http]") {
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    process.start(CRMSYNC_PEOPLE_FAKE_BINARY,
                  {"--port-file", port_file, "--user", "alice:token-alice", "--contacts", "150"});
    const int port = process.wait_for_port(port_file, 10s);
    Api api("http://127.0.0.1:" + std::to_string(port), "token-alice");
    CHECK(list_all(api, "personFields=names").connections.size() == 150);
    CHECK(process.terminate(10s) == 0);
}

TEST_CASE("people_fake accepts tokens of the Google token fake", "[http]") {
    crmsync::fakes::GoogleTokenFakeOptions options;
    options.control_endpoints = true; // its GET /_fake/token is how the process asks
    crmsync::fakes::GoogleTokenFake google(options);
    google.add_account({"client-1", "secret-1", "1//refresh-bob", "", false});
    google.start();
    httplib::Client token_client(google.base_url());
    const auto grant = body_of(
        token_client.Post("/token",
                          "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&"
                          "refresh_token=1//refresh-bob",
                          "application/x-www-form-urlencoded"));
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    process.start(CRMSYNC_PEOPLE_FAKE_BINARY,
                  {"--port-file", port_file, "--user", "bob::1//refresh-bob", "--contacts", "3",
                   "--google-token-fake", google.base_url()});
    const int port = process.wait_for_port(port_file, 10s);
    const auto base = "http://127.0.0.1:" + std::to_string(port);
    Api bob(base, grant["access_token"].get<std::string>());
    CHECK(list_all(bob, "personFields=names").connections.size() == 3);
    Api stranger(base, "ya29.made-up");
    body_of(stranger.list("personFields=names"), 401);
    CHECK(process.terminate(10s) == 0);
}
#endif
