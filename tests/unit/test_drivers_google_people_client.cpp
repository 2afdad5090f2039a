#include "drivers/google/people_client.hpp"

#include "lib/core/error.hpp"
#include "tests/fakes/people/people_fake.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;
using nlohmann::json;

namespace {

struct Fixture {
    fakes::PeopleFake fake;
    drivers::google::PeopleClientOptions options;

    Fixture() {
        fake.start();
        fake.add_user("ana", "ana-token");
        options.base_url = fake.base_url();
        options.authorization = [] { return std::string("Bearer ana-token"); };
        options.retry.base_delay = std::chrono::milliseconds(5);
        options.call_budget = 0;
    }
    json contact(const std::string& email) {
        return fake.add_contact(
            "ana", {{"names", {{{"givenName", "Jan"}}}}, {"emailAddresses", {{{"value", email}}}}});
    }
};

} // namespace

TEST_CASE("google::PeopleClient against the People API fake", "[unit][http]") {
    Fixture f;

    SECTION("lists every contact page by page, then only the changes since the sync token") {
        for (int i = 0; i < 5; ++i) {
            f.contact("c" + std::to_string(i) + "@example.com");
        }
        drivers::google::PeopleClient client(f.options);
        std::vector<json> seen;
        std::string page_token;
        std::string sync_token;
        for (;;) {
            const auto page = client.list_connections("", page_token, 2);
            seen.insert(seen.end(), page.people.begin(), page.people.end());
            if (page.next_page_token.empty()) {
                sync_token = page.next_sync_token;
                break;
            }
            page_token = page.next_page_token;
        }
        CHECK(seen.size() == 5);
        REQUIRE_FALSE(sync_token.empty());
        const auto gone = seen.front()["resourceName"].get<std::string>();
        f.fake.delete_contact("ana", gone);
        const auto delta = client.list_connections(sync_token, "", 100);
        REQUIRE(delta.people.size() == 1);
        CHECK(delta.people[0]["resourceName"] == gone);
        CHECK(delta.people[0]["metadata"]["deleted"] == true);
    }

    SECTION("reports an expired sync token, as 400 and as 410") {
        f.contact("a@example.com");
        drivers::google::PeopleClient client(f.options);
        const auto first = client.list_connections("", "", 100);
        for (const int status : {400, 410}) {
            f.fake.set_expired_sync_token_status(status);
            f.fake.expire_sync_tokens("ana");
            CHECK(client.list_connections(first.next_sync_token, "", 100).expired);
        }
    }

    SECTION("an update with a stale etag returns nothing; with the fresh one it applies") {
        const auto person = f.contact("a@example.com");
        drivers::google::PeopleClient client(f.options);
        const std::string rn = person["resourceName"];
        f.fake.edit_contact("ana", rn, {{"names", {{{"givenName", "Elsewhere"}}}}});
        json update = person;
        update["names"] = {{{"givenName", "Janek"}}};
        CHECK_FALSE(client.update_contact(update));
        auto fresh = client.get_contact(rn);
        REQUIRE(fresh);
        (*fresh)["names"] = {{{"givenName", "Janek"}}};
        const auto updated = client.update_contact(*fresh);
        REQUIRE(updated);
        CHECK((*updated)["names"][0]["givenName"] == "Janek");
        f.fake.delete_contact("ana", rn);
        CHECK_FALSE(client.get_contact(rn));
    }

    SECTION("creates a contact") {
        drivers::google::PeopleClient client(f.options);
        const auto created = client.create_contact(
            {{"names", {{{"givenName", "Ola"}}}}, {"emailAddresses", {{{"value", "o@x.pl"}}}}});
        CHECK(created["resourceName"].get<std::string>().starts_with("people/c"));
        CHECK(f.fake.contacts("ana").size() == 1);
    }

    SECTION("waits out a 429 and counts every request against the budget") {
        f.fake.inject(fakes::Fault{"GET", "/v1/people/me/connections", fakes::FaultKind::status,
                                   429, std::string("0"), 0, 2});
        f.options.call_budget = 3;
        drivers::google::PeopleClient client(f.options);
        CHECK(client.list_connections("", "", 10).people.empty());
        CHECK(client.throttled() == 2);
        CHECK(client.calls_left() == 0);
        CHECK_THROWS_AS(client.list_connections("", "", 10), Error);
        CHECK(f.fake.stats("ana").requests == 1); // the faults act before authentication
    }

    SECTION("a refused token is an auth error") {
        f.options.authorization = [] { return std::string("Bearer wrong"); };
        drivers::google::PeopleClient client(f.options);
        try {
            client.list_connections("", "", 10);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::auth);
        }
    }

    SECTION("a create whose answer is lost is not repeated") {
        f.fake.inject(fakes::Fault{"POST", "/v1/people:createContact", fakes::FaultKind::status,
                                   503, std::nullopt, 0, 1});
        drivers::google::PeopleClient client(f.options);
        CHECK_THROWS_AS(client.create_contact({{"names", {{{"givenName", "Ola"}}}}}), Error);
        CHECK(f.fake.requests().size() == 1);
    }
}
