#include "drivers/pipedrive/client.hpp"

#include "lib/core/error.hpp"
#include "tests/fakes/pipedrive/pipedrive_fake.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;
namespace pd = crmsync::drivers::pipedrive;

namespace {

pd::ClientOptions options_for(const fakes::PipedriveFake& fake) {
    pd::ClientOptions o;
    o.base_url = fake.base_url();
    o.token = "pd-token";
    o.retry.max_attempts = 3;
    o.retry.base_delay = std::chrono::milliseconds(5);
    return o;
}

ErrorKind kind_of(const std::function<void()>& body) {
    try {
        body();
    } catch (const Error& e) {
        return e.kind();
    }
    FAIL("no Error thrown");
    return ErrorKind::internal;
}

} // namespace

TEST_CASE("Pipedrive client", "[unit][http]") {
    fakes::PipedriveFake fake;
    fake.start();
    pd::Client client(options_for(fake));

    SECTION("finds a person by exact e-mail, else by phone; creates persons and leads") {
        const auto jan = fake.add_person("Jan", {"jan@example.com"}, {"+48500"});
        fake.add_person("Janina", {"janina.jan@example.com"}, {});
        CHECK(client.find_person("JAN@example.com", "", "") == jan);
        CHECK(client.find_person("nobody@example.com", "+48500", "") == jan);
        CHECK(!client.find_person("jan@", "", ""));
        const auto anna = client.create_person("Anna", "anna@example.com", "");
        CHECK(client.find_person("anna@example.com", "", "") == anna);
        const auto lead = client.create_lead("Gmail m1: Anna", anna);
        CHECK(client.find_lead(anna, "Gmail m1:") == lead);
        CHECK(!client.find_lead(anna, "Gmail m2:"));
        CHECK(!client.find_lead(jan, "Gmail m1:"));
    }
    SECTION("a refusal is a data error with Pipedrive's answer") {
        try {
            client.create_lead("Callback24 1: +48", 999);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::data);
            CHECK(std::string(e.what()).find("HTTP 400: Person not found") != std::string::npos);
        }
    }
    SECTION("a wrong token is an auth error") {
        auto o = options_for(fake);
        o.token = "wrong";
        pd::Client bad(o);
        CHECK(kind_of([&] { bad.find_person("a@b.pl", "", ""); }) == ErrorKind::auth);
    }
    SECTION("reads are repeated after a 5xx or a cut-off body; writes are not") {
        fake.inject({"GET", "/api/v2/persons/search", fakes::FaultKind::status, 500, {}, 0, 1});
        fake.inject({"GET", "/api/v2/persons/search", fakes::FaultKind::truncate, 200, {}, 0, 1});
        CHECK(!client.find_person("a@b.pl", "", ""));
        CHECK(fake.count("GET", "/api/v2/persons/search") == 3);
        CHECK(client.stats().retries == 2);

        fake.inject({"POST", "/api/v2/persons", fakes::FaultKind::status, 502, {}, 0, 1});
        CHECK(kind_of([&] { client.create_person("A", "a@b.pl", ""); }) == ErrorKind::connection);
        CHECK(fake.count("POST", "/api/v2/persons") == 1);
        CHECK(fake.persons().empty());
    }
    SECTION("a 429 is waited out and repeated, writes included") {
        fake.inject({"POST", "/api/v2/persons", fakes::FaultKind::status, 429, "1", 0, 1});
        const auto started = std::chrono::steady_clock::now();
        client.create_person("A", "a@b.pl", "");
        CHECK(std::chrono::steady_clock::now() - started >= std::chrono::seconds(1));
        CHECK(fake.persons().size() == 1);
        CHECK(client.stats().throttled == 1);
    }
}

TEST_CASE("Pipedrive client spends the burst budget, then waits for its reset", "[unit][http]") {
    fakes::PipedriveFakeOptions options;
    options.burst_limit = 5;
    options.window_ms = 1000;
    fakes::PipedriveFake fake(options);
    fake.start();
    pd::Client client(options_for(fake));
    for (int i = 0; i < 12; ++i) {
        client.find_person("p" + std::to_string(i) + "@example.com", "", "");
    }
    const auto stats = fake.budget_stats();
    CHECK(stats.throttled == 0);
    CHECK(stats.requests == 12);
    CHECK(client.budget().waits() == 2);
}
