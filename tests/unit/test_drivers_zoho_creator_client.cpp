#include "drivers/zoho/creator_client.hpp"

#include "lib/core/error.hpp"
#include "tests/fakes/zoho_creator/creator_fake.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;
using nlohmann::json;

namespace {

struct Fixture {
    fakes::CreatorFake fake{[] {
        fakes::CreatorFakeOptions o;
        o.per_minute_limit = 0;
        return o;
    }()};
    drivers::zoho::CreatorClientOptions options;

    Fixture() {
        fake.start();
        fake.add_token("zoho-token");
        options.api_url = fake.base_url();
        options.owner = "jsmith";
        options.app = "crm";
        options.form = "Contacts";
        options.report = "All_Contacts";
        options.authorization = [] { return std::string("Zoho-oauthtoken zoho-token"); };
        options.retry.base_delay = std::chrono::milliseconds(5);
        options.requests_per_minute = 0;
    }
};

json record(const std::string& email, const std::string& owner = "ana") {
    return {{"Name", {{"first_name", "Jan"}, {"last_name", "K"}}},
            {"Email", email},
            {"Owner_Login", owner}};
}

} // namespace

TEST_CASE("zoho::CreatorClient against the Creator fake", "[unit][http]") {
    Fixture f;

    SECTION("adds records; a refused record is a failure of its own in an HTTP 200 answer") {
        f.fake.reject_email("bad@example.com");
        drivers::zoho::CreatorClient client(f.options);
        const auto out = client.add_records(
            {record("a@example.com"), record("bad@example.com"), record("b@example.com")});
        REQUIRE(out.size() == 3);
        CHECK(out[0].ok);
        CHECK(out[0].id.size() == 19);
        CHECK_FALSE(out[1].ok);
        CHECK(out[1].error.find("3001") != std::string::npos);
        CHECK(out[2].ok);
        CHECK(f.fake.records().size() == 2);
    }

    SECTION("reads every page of a report through record_cursor, by criteria") {
        std::vector<json> many;
        for (int i = 0; i < 450; ++i) {
            many.push_back(
                record("p" + std::to_string(i) + "@example.com", i % 3 == 0 ? "ana" : "bob"));
        }
        f.options.max_records = 200;
        drivers::zoho::CreatorClient client(f.options);
        const auto added = client.add_records(many); // split into requests of 200
        CHECK(added.size() == 450);
        CHECK(client.records("Owner_Login == \"ana\"").size() == 150);
        CHECK(client.records("Owner_Login == \"bob\"").size() == 300);
        CHECK(client.records("Owner_Login == \"nobody\"").empty()); // 404 code 3100
    }

    SECTION("updates and deletes by ID; an unknown ID is not found") {
        drivers::zoho::CreatorClient client(f.options);
        const auto id = client.add_records({record("a@example.com")}).front().id;
        CHECK(client.update_record(id, {{"Email", "new@example.com"}}).ok);
        CHECK(f.fake.records().front()["Email"] == "new@example.com");
        CHECK(client.delete_record(id).ok);
        CHECK(client.update_record(id, {{"Email", "x@example.com"}}).not_found);
        CHECK(client.delete_record(id).not_found);
    }

    SECTION("waits out the per-minute limit (429, code 2955) and repeats the request") {
        fakes::CreatorFault fault;
        fault.method = "GET";
        fault.status = 429;
        fault.count = 2;
        f.fake.inject(fault);
        drivers::zoho::CreatorClient client(f.options);
        CHECK(client.records("Owner_Login == \"ana\"").empty());
        CHECK(client.throttled() == 2);
    }

    SECTION("a daily limit (HTTP 200, code 4000) and a refused token stop with an error") {
        fakes::CreatorFault fault;
        fault.status = 200;
        fault.code = 4000;
        f.fake.inject(fault);
        drivers::zoho::CreatorClient client(f.options);
        CHECK_THROWS_AS(client.records("Owner_Login == \"ana\""), Error);
        f.options.authorization = [] { return std::string("Zoho-oauthtoken wrong"); };
        drivers::zoho::CreatorClient refused(f.options);
        try {
            refused.records("Owner_Login == \"ana\"");
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::auth);
        }
    }

    SECTION("an add whose answer is lost is not repeated") {
        fakes::CreatorFault fault;
        fault.method = "POST";
        fault.status = 503;
        f.fake.inject(fault);
        drivers::zoho::CreatorClient client(f.options);
        CHECK_THROWS_AS(client.add_records({record("a@example.com")}), Error);
        CHECK(client.calls() == 1);
    }
}
