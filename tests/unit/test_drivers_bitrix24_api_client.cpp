// drivers/bitrix24/api_client.hpp against the Bitrix24 emulator on loopback.

#include "drivers/bitrix24/api_client.hpp"
#include "lib/core/error.hpp"
#include "tests/fakes/bitrix24/bitrix24_fake.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>

#include <chrono>
#include <set>
#include <thread>

using namespace crmsync;
using namespace crmsync::drivers::bitrix24;

namespace {

fakes::Bitrix24Options portal(std::size_t deals, std::size_t per_deal) {
    fakes::Bitrix24Options o;
    o.deals = deals;
    o.history_per_deal = per_deal;
    o.history_end = std::chrono::system_clock::time_point(std::chrono::seconds(1'717'200'000));
    o.worker_threads = 2;
    return o;
}

struct ClientFixture {
    fakes::Bitrix24Fake fake;
    http::RetryPolicy policy;
    http::RetryStats stats;
    std::unique_ptr<ApiClient> api;

    explicit ClientFixture(fakes::Bitrix24Options options, double rate = 0)
        : fake(std::move(options)) {
        fake.start();
        policy.base_delay = std::chrono::milliseconds(5);
        policy.max_attempts = 4;
        ApiConfig config;
        config.webhook = parse_webhook_url(fake.base_url(), "$TEST");
        config.source = "$TEST";
        config.rate = rate;
        api = std::make_unique<ApiClient>(
            config, http::RetryContext{policy, stats, Clock::real(), std::nullopt, ""});
    }
};

} // namespace

TEST_CASE("bitrix24 ApiClient pages through the stage history with the bulk pattern",
          "[unit][http]") {
    auto options = portal(30, 4);
    SECTION("numbers as JSON integers") {}
    SECTION("numbers as strings") { options.history_numbers_as_strings = true; }
    ClientFixture f(options);
    HistoryQuery query;
    query.count = true;
    auto page = f.api->stage_history(query);
    REQUIRE(page.total == 120);
    std::set<std::int64_t> ids;
    std::int64_t pages = 1;
    for (;;) {
        for (const auto& item : page.items) {
            const auto id = integer_field(item, "ID");
            REQUIRE(id);
            CHECK(*id > query.after_id);
            ids.insert(*id);
            query.after_id = std::max(query.after_id, *id);
        }
        if (page.items.size() < k_page_size) {
            break;
        }
        query.count = false;
        page = f.api->stage_history(query);
        CHECK_FALSE(page.total);
        ++pages;
    }
    CHECK(ids.size() == 120);
    CHECK(pages == 3);
    CHECK(static_cast<std::int64_t>(*ids.rbegin()) == f.fake.last_history_id());
    // After the counting first page, every request asks for no count (start=-1).
    const auto requests = f.fake.requests();
    REQUIRE(requests.size() == 3);
    CHECK(requests[0].body.find("\"start\":0") != std::string::npos);
    CHECK(requests[1].body.find("\"start\":-1") != std::string::npos);
    CHECK(requests[1].body.find("\"order\":{\"ID\":\"ASC\"}") != std::string::npos);
}

TEST_CASE("bitrix24 ApiClient chains history pages in one batch request", "[unit][http]") {
    auto options = portal(37, 4); // 148 rows: pages of 50, 50, 48
    SECTION("numbers as JSON integers") {}
    SECTION("numbers as strings") { options.history_numbers_as_strings = true; }
    ClientFixture f(options);
    const auto history = f.fake.history();

    SECTION("pages in ID order up to the short one; the commands after it are ignored") {
        const auto batch = f.api->stage_history_batch({}, 5);
        CHECK(f.fake.request_count() == 1);
        CHECK(f.fake.call_count("crm.stagehistory.list") == 5);
        REQUIRE(batch.pages.size() == 3);
        CHECK(batch.last);
        CHECK(batch.failure.is_null());
        CHECK_FALSE(batch.broken_chain);
        std::size_t at = 0;
        for (const auto& page : batch.pages) {
            for (const auto& item : page.items) {
                REQUIRE(at < history.size());
                CHECK(integer_field(item, "ID") == history[at++].id);
            }
        }
        CHECK(at == 148);
    }

    SECTION("full pages only: not the last; the next batch goes on after them") {
        HistoryQuery query;
        const auto first = f.api->stage_history_batch(query, 2);
        REQUIRE(first.pages.size() == 2);
        CHECK_FALSE(first.last);
        query.after_id = history[99].id;
        const auto rest = f.api->stage_history_batch(query, 2);
        REQUIRE(rest.pages.size() == 1);
        CHECK(rest.last);
        CHECK(integer_field(rest.pages[0].items.front(), "ID") == history[100].id);
    }

    SECTION("a failing command ends the batch there, reported with the pages before it") {
        fakes::Bitrix24Fault fault;
        fault.status = 400;
        fault.error = "INVALID_ARG_VALUE";
        f.fake.fail_history_after(history[49].id, fault);
        const auto batch = f.api->stage_history_batch({}, 3);
        REQUIRE(batch.pages.size() == 1);
        CHECK_FALSE(batch.last);
        CHECK(error_code_of(batch.failure) == "INVALID_ARG_VALUE");
        CHECK(f.fake.call_count("crm.stagehistory.list") == 2); // halt=1: the third never ran
    }

    SECTION("an empty history is one empty page") {
        HistoryQuery query;
        query.after_id = f.fake.last_history_id();
        const auto batch = f.api->stage_history_batch(query, 50);
        REQUIRE(batch.pages.size() == 1);
        CHECK(batch.pages[0].items.empty());
        CHECK(batch.last);
    }
}

TEST_CASE("bitrix24 ApiClient reads deal stages and deal titles", "[unit][http]") {
    ClientFixture f(portal(120, 1));

    SECTION("deal stages of every pipeline, or of one; lead statuses are left out") {
        const auto all = f.api->deal_stages(std::nullopt);
        CHECK(all.size() == f.fake.stages().size());
        const auto c3 = f.api->deal_stages(3);
        CHECK(c3.size() == 7);
        for (const auto& s : c3) {
            CHECK(s["ENTITY_ID"] == "DEAL_STAGE_3");
        }
        CHECK(f.api->deal_stages(42).empty());
    }

    SECTION("titles of 60 deals in one batch request; unknown deals have none") {
        std::vector<std::int64_t> ids;
        for (std::int64_t id = 1; id <= 59; ++id) {
            ids.push_back(id);
        }
        ids.push_back(100'000);
        const auto titles = f.api->deal_titles(ids);
        CHECK(titles.size() == 60);
        CHECK(titles.at(1) == f.fake.deal(1)->title);
        CHECK(titles.at(59) == f.fake.deal(59)->title);
        CHECK_FALSE(titles.at(100'000));
        CHECK(f.fake.request_count("batch") == 1);
        CHECK(f.fake.call_count("crm.deal.list") == 2);
    }

    SECTION("a batch sub-call refused for the time limit is retried") {
        f.fake.inject({"crm.deal.list", fakes::Bitrix24FaultKind::status, 429, "", "", {}, 0, 2});
        const auto titles = f.api->deal_titles({1, 2, 3});
        CHECK(titles.at(2) == f.fake.deal(2)->title);
        CHECK(f.stats.retries == 2);
        CHECK(f.fake.request_count("batch") == 3);
    }

    SECTION("a batch sub-call that keeps failing ends in Error(connection)") {
        f.fake.inject({"crm.deal.list", fakes::Bitrix24FaultKind::status, 429, "", "", {}, 0, 10});
        try {
            f.api->deal_titles({1});
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::connection);
            CHECK(std::string(e.what()) ==
                  "Bitrix24 batch crm.deal.list failed after 4 attempts; last: "
                  "OPERATION_TIME_LIMIT (Method is blocked due to operation time limit)");
        }
    }

    SECTION("a deal list refused for lack of rights is Error(auth)") {
        f.fake.inject({"crm.deal.list", fakes::Bitrix24FaultKind::status, 403, "", "", {}, 0, 1});
        try {
            f.api->deal_titles({1});
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::auth);
        }
    }
}

TEST_CASE("bitrix24 ApiClient retries the portal's limits and refuses a bad webhook",
          "[unit][http]") {
    ClientFixture f(portal(5, 2));

    SECTION("503 QUERY_LIMIT_EXCEEDED and 429 OPERATION_TIME_LIMIT are retried") {
        f.fake.inject({"crm.status.list", fakes::Bitrix24FaultKind::status, 503, "", "", {}, 0, 1});
        f.fake.inject({"crm.status.list", fakes::Bitrix24FaultKind::status, 429, "", "", {}, 0, 1});
        CHECK(f.api->deal_stages(0).size() == 8);
        CHECK(f.stats.retries == 2);
    }

    SECTION("401 is Error(auth) with a hint about the webhook") {
        ApiConfig config;
        std::string wrong = f.fake.base_url();
        wrong.replace(wrong.find("fake0b24webhook0"), 16, "0000000000000000");
        config.webhook = parse_webhook_url(wrong, "$TEST");
        config.source = "$TEST";
        config.rate = 0;
        ApiClient api(config,
                      http::RetryContext{f.policy, f.stats, Clock::real(), std::nullopt, ""});
        try {
            api.deal_stages(std::nullopt);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::auth);
            CHECK(std::string(e.what()).find("HTTP 401") != std::string::npos);
            CHECK(e.hint().rfind("the webhook in $TEST is wrong, expired or deleted", 0) == 0);
        }
        CHECK(f.fake.request_count() == 1);
    }

    SECTION("an unknown method is a configuration error") {
        try {
            f.api->call("crm.nothing.here", nlohmann::json::object());
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::config);
        }
    }

    SECTION("--rate spaces the requests") {
        ClientFixture slow(portal(5, 2), 10);
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < 4; ++i) {
            slow.api->call("crm.status.list", nlohmann::json::object());
        }
        // The first request goes at once, the next three 100 ms apart.
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(290));
    }
}

TEST_CASE("bitrix24 ApiClient with hostile answers", "[unit][http]") {
    httplib::Server server;
    std::string answer;
    server.Post(R"(/rest/1/code/.*)", [&answer](const httplib::Request&, httplib::Response& res) {
        res.set_content(answer, "application/json");
    });
    const int port = server.bind_to_any_port("127.0.0.1");
    std::thread thread([&] { server.listen_after_bind(); });
    http::RetryPolicy policy;
    policy.base_delay = std::chrono::milliseconds(1);
    policy.max_attempts = 2;
    http::RetryStats stats;
    ApiConfig config;
    config.webhook =
        parse_webhook_url("http://127.0.0.1:" + std::to_string(port) + "/rest/1/code/", "$TEST");
    config.source = "$TEST";
    config.rate = 0;
    ApiClient api(config, http::RetryContext{policy, stats, Clock::real(), std::nullopt, ""});

    SECTION("stores a lone surrogate as U+FFFD instead of refusing the answer") {
        answer = R"({"result":[{"NAME":"a\ud800b"}],"total":1})";
        const auto envelope = api.call("crm.status.list", nlohmann::json::object());
        REQUIRE(envelope.result.is_array());
        CHECK(envelope.result[0]["NAME"] == "a\xEF\xBF\xBD"
                                            "b");
        CHECK(stats.retries.load() == 0);
    }
    SECTION("builds no value nested deeper than 128 levels, so nothing overflows the stack") {
        answer = R"({"result":[{"NAME":"n","DEEP":)" + std::string(200'000, '[') +
                 std::string(200'000, ']') + "}],\"total\":1}";
        const auto envelope = api.call("crm.status.list", nlohmann::json::object());
        REQUIRE(envelope.result.is_array());
        CHECK(envelope.result[0]["NAME"] == "n");
        CHECK_FALSE(envelope.result.dump().empty());
    }
    server.stop();
    thread.join();
}
