#include "drivers/dialfire/api_client.hpp"

#include "lib/http/json_body.hpp"
#include "lib/util/time.hpp"
#include "tests/support/dialfire_client_setup.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>

#include <memory>
#include <thread>

using namespace crmsync;

TEST_CASE("dialfire::format_dialfire_time", "[unit]") {
    const auto t = *util::parse_iso8601("2024-01-01T10:00:00.123Z");
    SECTION("writes T, milliseconds and no zone") {
        CHECK(drivers::dialfire::format_dialfire_time(t) == "2024-01-01T10:00:00.123");
    }
}

namespace {

// A client of a 10-contact campaign; a request is tried 4 times.
struct DialfireClient : crmsync::testing::DialfireClientSetup {
    std::unique_ptr<drivers::dialfire::ApiClient> api;

    DialfireClient() : DialfireClientSetup(10, 4, 2) {
        api = std::make_unique<drivers::dialfire::ApiClient>(config, retry());
    }
};

} // namespace

TEST_CASE("dialfire ApiClient::fetch_contacts with hostile bodies", "[unit][http]") {
    DialfireClient c;
    const auto ids = c.fake.contact_ids();
    const std::vector<std::string> asked{ids[0], ids[1]};

    SECTION("stores a lone surrogate as U+FFFD instead of refusing the body") {
        c.fake.set_contact_text(ids[0], R"({"$id":")" + ids[0] + R"(","name":"a\ud800b"})");
        const auto fetched = c.api->fetch_contacts(asked);
        REQUIRE(fetched.contacts.size() == 2);
        CHECK(fetched.rejects.empty());
        CHECK(fetched.contacts[0]["name"] == "a\xEF\xBF\xBD"
                                             "b");
    }
    SECTION("keeps surrogate pairs and escaped backslashes as they are") {
        std::string text = R"(["\ud83d\ude00","\\ud800","\udc00x","\ud800\ud800"])";
        CHECK(http::replace_lone_surrogates(text) == 3);
        CHECK(text == R"(["\ud83d\ude00","\\ud800","\ufffdx","\ufffd\ufffd"])");
    }
    SECTION("rejects only the id whose answer is the same unparsable body twice") {
        c.fake.set_contact_text(ids[1], R"({"$id": nope)");
        const auto fetched = c.api->fetch_contacts(asked);
        REQUIRE(fetched.contacts.size() == 1);
        CHECK(fetched.contacts[0]["$id"] == ids[0]);
        REQUIRE(fetched.rejects.size() == 1);
        CHECK(fetched.rejects[0].id == ids[1]);
        CHECK(fetched.rejects[0].reason.find("same body") != std::string::npos);
        CHECK(fetched.missing == 0);
    }
    SECTION("rejects a contact nested deeper than 128 levels and keeps the others") {
        const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
        c.fake.set_contact_text(ids[0], R"({"$id":")" + ids[0] + R"(","deep":)" + deep + "}");
        const auto fetched = c.api->fetch_contacts(asked);
        REQUIRE(fetched.contacts.size() == 1);
        CHECK(fetched.contacts[0]["$id"] == ids[1]);
        REQUIRE(fetched.rejects.size() == 1);
        CHECK(fetched.rejects[0].id == ids[0]);
        CHECK(fetched.rejects[0].reason.find("deeper than 128") != std::string::npos);
        CHECK(fetched.missing == 0);
    }
    SECTION("counts the ids asked for that were not returned") {
        const auto fetched = c.api->fetch_contacts({ids[0], "NOSUCHCONTACTID0"});
        CHECK(fetched.contacts.size() == 1);
        CHECK(fetched.missing == 1);
    }
}

TEST_CASE("dialfire ApiClient::list_contacts", "[unit][http]") {
    SECTION("keeps the cursor of a page without results") {
        httplib::Server server;
        server.Get(R"(/api/campaigns/C/contacts/list)",
                   [](const httplib::Request&, httplib::Response& res) {
                       res.set_content(R"({"results":[],"cursor":"NEXT"})", "application/json");
                   });
        const int port = server.bind_to_any_port("127.0.0.1");
        std::thread thread([&] { server.listen_after_bind(); });
        http::RetryPolicy policy;
        http::RetryStats stats;
        drivers::dialfire::ApiConfig config;
        config.base_url = "http://127.0.0.1:" + std::to_string(port);
        config.campaign = "C";
        config.token = "t";
        drivers::dialfire::ApiClient api(
            config, http::RetryContext{policy, stats, Clock::real(), std::nullopt, ""});
        const auto page = api.list_contacts("", "");
        server.stop();
        thread.join();
        CHECK(page.contacts.empty());
        CHECK(page.cursor == "NEXT");
    }
}
