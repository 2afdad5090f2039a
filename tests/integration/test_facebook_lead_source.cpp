// The Facebook lead source against the Graph API fake over loopback HTTP: open/next_page until
// the end, records and checkpoints per form, throttling retried, code 190 as a clear error.

#include "drivers/facebook/lead_source.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"
#include "tests/fakes/graph/graph_fake.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using crmsync::Error;
using crmsync::ErrorKind;
using crmsync::SystemTime;
using crmsync::fakes::FaultKind;
using crmsync::fakes::GraphFake;
using crmsync::fakes::GraphFault;
using crmsync::fakes::GraphFaultKind;
using nlohmann::json;
namespace facebook = crmsync::drivers::facebook;
namespace pipeline = crmsync::pipeline;

namespace {

constexpr std::int64_t k_base = 1'764'756'000; // 2025-12-03T10:00:00Z, epoch seconds
const std::string k_token = "EAAG-page-token-7f3a9c";

struct Run {
    std::vector<pipeline::Page> pages;
    std::vector<json> records;
    std::optional<std::string> checkpoint; // the last one a page carried
    long retries = 0;
};

facebook::LeadSourceOptions options_for(const GraphFake& fake, std::vector<std::string> forms) {
    facebook::LeadSourceOptions o;
    o.base_url = fake.base_url();
    o.access_token = k_token;
    o.forms = std::move(forms);
    o.page_size = 3;
    o.retry.base_delay = 1ms;
    o.retry.max_delay = 5ms;
    o.retry.max_attempts = 4;
    return o;
}

Run drain(const facebook::LeadSourceOptions& options, std::optional<std::string> stored) {
    auto source = facebook::make_lead_source(options);
    source->open(stored);
    Run run;
    while (auto page = source->next_page()) {
        for (const auto& r : page->records) {
            run.records.push_back(r);
        }
        if (page->checkpoint) {
            run.checkpoint = page->checkpoint;
        }
        run.pages.push_back(std::move(*page));
    }
    pipeline::RunSummary summary;
    source->report(summary);
    run.retries = summary.retries;
    return run;
}

// The leads of a form: lead i created at k_base + i minutes.
void seed(GraphFake& fake, const std::string& form, int from, int to) {
    for (int i = from; i < to; ++i) {
        fake.put_lead(form, GraphFake::lead(form + "-" + std::to_string(i), k_base + i * 60,
                                            {{"full_name", "Lead " + std::to_string(i)},
                                             {"email", "lead" + std::to_string(i) + "@example.com"},
                                             {"phone_number", "+4860000000" + std::to_string(i)},
                                             {"budget", std::to_string(i * 100)}}));
    }
}

std::vector<std::string> ids(const Run& run) {
    std::vector<std::string> out;
    for (const auto& r : run.records) {
        out.push_back(r.value("id", ""));
    }
    return out;
}

std::map<std::string, std::string> params_of(const std::string& query) {
    httplib::Params params;
    httplib::detail::parse_query_text(query, params);
    return {params.begin(), params.end()};
}

Error error_of(const facebook::LeadSourceOptions& options, std::optional<std::string> stored = {}) {
    try {
        drain(options, std::move(stored));
    } catch (const Error& e) {
        return e;
    }
    FAIL("the run did not fail");
    return Error(ErrorKind::internal, "unreachable");
}

} // namespace

TEST_CASE("facebook lead source reads every form to the end, one checkpoint per form", "[http]") {
    GraphFake fake({"v21.0", k_token});
    fake.start();
    seed(fake, "700100", 0, 7);
    seed(fake, "700200", 0, 2);

    const auto run = drain(options_for(fake, {"700100", "700200"}), std::nullopt);

    SECTION("all leads, newest first per form, in pages of the asked size") {
        CHECK(ids(run) == std::vector<std::string>{"700100-6", "700100-5", "700100-4", "700100-3",
                                                   "700100-2", "700100-1", "700100-0", "700200-1",
                                                   "700200-0"});
        REQUIRE(run.pages.size() == 4);
        CHECK(run.pages[0].stream == "facebook/700100");
        CHECK(run.pages[3].stream == "facebook/700200");
        const auto& r = run.records[0];
        CHECK(r["source"] == "facebook");
        CHECK(r["created_at"] == "2025-12-03T10:06:00Z");
        CHECK(r["name"] == "Lead 6");
        CHECK(r["email"] == "lead6@example.com");
        CHECK(r["phone"] == "+48600000006");
        CHECK(r["details"]["form_id"] == "700100");
        CHECK(r["details"]["fields"]["budget"] == "600");
    }
    SECTION("a form's position moves only on its last page, to its newest lead") {
        CHECK_FALSE(run.pages[0].checkpoint);
        CHECK_FALSE(run.pages[1].checkpoint);
        REQUIRE(run.pages[2].checkpoint);
        CHECK(json::parse(*run.pages[2].checkpoint) ==
              json{{"forms", {{"700100", {{"since", "2025-12-03T10:06:00.000Z"}}}}}});
        CHECK(json::parse(*run.checkpoint) ==
              json{{"forms",
                    {{"700100", {{"since", "2025-12-03T10:06:00.000Z"}}},
                     {"700200", {{"since", "2025-12-03T10:01:00.000Z"}}}}}});
    }
    SECTION("requests carry the token, the lead fields and the page size; no filter at first") {
        const auto requests = fake.requests();
        REQUIRE(requests.size() == 4);
        const auto first = params_of(requests[0].query);
        CHECK(requests[0].path == "/v21.0/700100/leads");
        CHECK(first.at("access_token") == k_token);
        CHECK(first.at("limit") == "3");
        CHECK(first.at("fields").find("field_data") != std::string::npos);
        CHECK(first.count("filtering") == 0);
        // The next pages follow paging.next as Graph wrote it.
        CHECK(params_of(requests[1].query).count("after") == 1);
    }
}

TEST_CASE("facebook lead source filters on time_created from the checkpoint minus lookback",
          "[http]") {
    GraphFake fake({"v21.0", k_token});
    fake.start();
    seed(fake, "700100", 0, 30); // leads every minute from 10:00 to 10:29
    auto options = options_for(fake, {"700100"});
    options.lookback = 10min;
    const std::string stored =
        json{{"forms", {{"700100", {{"since", "2025-12-03T10:25:00.000Z"}}}}}}.dump();

    SECTION("the window starts at the stored position minus the lookback, inclusive") {
        const auto run = drain(options, stored);
        // 10:15 .. 10:29: GREATER_THAN (10:15 - 1 s) keeps the lead of the start second.
        CHECK(run.records.size() == 15);
        CHECK(run.records.back()["id"] == "700100-15");
        const auto filtering = json::parse(params_of(fake.requests()[0].query).at("filtering"));
        CHECK(filtering == json::array({{{"field", "time_created"},
                                         {"operator", "GREATER_THAN"},
                                         {"value", k_base + 15 * 60 - 1}}}));
        CHECK(json::parse(*run.checkpoint)["forms"]["700100"]["since"] ==
              "2025-12-03T10:29:00.000Z");
    }
    SECTION("--since replaces the stored position") {
        options.since = SystemTime(std::chrono::seconds(k_base + 27 * 60));
        const auto run = drain(options, stored);
        CHECK(ids(run) == std::vector<std::string>{"700100-29", "700100-28", "700100-27"});
    }
    SECTION("no new leads: the stored position stays") {
        const std::string ahead =
            json{{"forms", {{"700100", {{"since", "2025-12-03T11:00:00.000Z"}}}, {"old", 1}}}}
                .dump();
        const auto run = drain(options, ahead);
        CHECK(run.records.empty());
        CHECK(json::parse(*run.checkpoint)["forms"]["700100"]["since"] ==
              "2025-12-03T11:00:00.000Z");
        CHECK(json::parse(*run.checkpoint)["forms"]["old"] == 1); // other forms' entries kept
    }
    SECTION("a checkpoint this source did not write is a data error") {
        const auto e = error_of(options, std::string(R"({"streams": {}})"));
        CHECK(e.kind() == ErrorKind::data);
        const auto e2 =
            error_of(options, json{{"forms", {{"700100", {{"since", "soon"}}}}}}.dump());
        CHECK(e2.kind() == ErrorKind::data);
        CHECK(e2.describe().find("700100") != std::string::npos);
    }
}

TEST_CASE("facebook lead source follows Graph's paging quirks", "[http]") {
    GraphFake fake({"v21.0", k_token});
    fake.start();
    seed(fake, "700100", 0, 5);
    const auto options = options_for(fake, {"700100"});

    SECTION("an empty page that still has next is followed") {
        GraphFault empty;
        empty.graph_kind = GraphFaultKind::empty_page;
        empty.count = 2;
        fake.inject(empty);
        const auto run = drain(options, std::nullopt);
        CHECK(run.records.size() == 5);
        CHECK(run.pages.size() == 4); // two empty pages, then 3 + 2 leads
        CHECK(run.pages[0].records.empty());
        CHECK_FALSE(run.pages[0].checkpoint);
        CHECK(json::parse(*run.checkpoint)["forms"]["700100"]["since"] ==
              "2025-12-03T10:04:00.000Z");
    }
    SECTION("a next link that repeats ends the form instead of looping") {
        GraphFault repeat;
        repeat.graph_kind = GraphFaultKind::repeat_next;
        repeat.count = 100;
        fake.inject(repeat);
        const auto run = drain(options, std::nullopt);
        // Page 1 links to itself: it is read once more, then the repeat is noticed.
        CHECK(fake.requests().size() == 2);
        CHECK(run.pages.size() == 2);
        REQUIRE(run.checkpoint);
    }
}

TEST_CASE("facebook lead source retries throttling and transient failures", "[http]") {
    GraphFake fake({"v21.0", k_token});
    fake.start();
    seed(fake, "700100", 0, 5);
    auto options = options_for(fake, {"700100"});

    SECTION("codes 4, 17 and 613 as HTTP 400, a 500 and a cut-off body are retried") {
        for (const int code : {4, 17, 613}) {
            GraphFault throttled;
            throttled.status = 400;
            throttled.graph_code = code;
            fake.inject(throttled);
        }
        GraphFault down;
        down.status = 500;
        fake.inject(down);
        GraphFault cut;
        cut.kind = FaultKind::truncate;
        fake.inject(cut);
        options.retry.max_attempts = 6; // five failures in a row on the first page
        const auto run = drain(options, std::nullopt);
        CHECK(run.records.size() == 5);
        CHECK(run.retries == 5);
        CHECK(fake.requests().size() == 7);
    }
    SECTION("a 400 that only says is_transient is retried") {
        GraphFault transient;
        transient.status = 400;
        transient.graph_code = 1;
        transient.is_transient = true;
        fake.inject(transient);
        CHECK(drain(options, std::nullopt).records.size() == 5);
    }
    SECTION("throttling that does not end fails as a connection error within the attempts") {
        GraphFault throttled;
        throttled.status = 400;
        throttled.graph_code = 4;
        throttled.count = 100;
        fake.inject(throttled);
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::connection);
        CHECK(e.describe().find("failed after 4 attempts") != std::string::npos);
        CHECK(e.describe().find("Graph error 4") != std::string::npos);
        CHECK(fake.requests().size() == 4);
    }
    SECTION("no retry reaches past the run's deadline") {
        GraphFault throttled;
        throttled.status = 400;
        throttled.graph_code = 4;
        throttled.count = 100;
        fake.inject(throttled);
        // A clock that only moves when the source waits.
        auto now = std::chrono::steady_clock::time_point{};
        crmsync::Clock clock;
        clock.steady_now = [&now] { return now; };
        clock.sleep_for = [&now](std::chrono::milliseconds d) { now += d; };
        options.clock = &clock;
        options.retry.base_delay = 1s;
        options.retry.max_delay = 1s;
        options.retry.max_attempts = 1000;
        options.deadline = now + 20s;
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::connection);
        CHECK(e.describe().find("time budget") != std::string::npos);
        CHECK(now <= *options.deadline);
        CHECK(fake.requests().size() > 1);
    }
    SECTION("business use case throttling longer than a run waits fails at once") {
        GraphFault buc;
        buc.status = 400;
        buc.graph_code = 80005;
        buc.regain_minutes = 60;
        fake.inject(buc);
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::connection);
        CHECK(e.describe().find("about 60 min") != std::string::npos);
        CHECK(fake.requests().size() == 1);
    }
    SECTION("a short estimated_time_to_regain_access is waited for, then the run goes on") {
        GraphFault buc;
        buc.status = 400;
        buc.graph_code = 80005;
        buc.regain_minutes = 1;
        fake.inject(buc);
        std::vector<std::chrono::milliseconds> waits;
        crmsync::Clock clock;
        clock.sleep_for = [&waits](std::chrono::milliseconds d) { waits.push_back(d); };
        options.clock = &clock;
        CHECK(drain(options, std::nullopt).records.size() == 5);
        std::chrono::milliseconds waited{0};
        for (const auto w : waits) {
            waited += w;
        }
        CHECK(waited == std::chrono::milliseconds(60'000));
    }
    SECTION("an answer that is never JSON is a data error") {
        GraphFault html;
        html.kind = FaultKind::malformed;
        html.count = 100;
        fake.inject(html);
        CHECK(error_of(options).kind() == ErrorKind::data);
    }
}

TEST_CASE("facebook lead source survives odd and hostile answers", "[http]") {
    GraphFake fake({"v21.0", k_token});
    fake.start();
    fake.add_form("700100");
    const auto options = options_for(fake, {"700100"});
    const auto answer = [&fake](const std::string& body) {
        GraphFault raw;
        raw.graph_kind = GraphFaultKind::raw_body;
        raw.raw_body = body;
        fake.inject(raw);
    };

    SECTION("invalid UTF-8 in a lead becomes U+FFFD; the lead is still read") {
        answer(std::string(R"({"data": [{"id": "1", "created_time": "2025-12-03T10:00:00+0000",)"
                           R"( "field_data": [{"name": "full_name", "values": ["Jo)") +
               "\xff" + R"("]}, {"name": "email", "values": ["j@example.com"]}]}]})");
        const auto run = drain(options, std::nullopt);
        REQUIRE(run.records.size() == 1);
        CHECK(run.records[0]["name"] == "Jo\xEF\xBF\xBD");
        CHECK(run.records[0]["email"] == "j@example.com");
    }
    SECTION("a lead without created_time is a record with the reason; the others move the "
            "checkpoint") {
        answer(R"({"data": [{"id": "2", "created_time": "2025-12-03T10:05:00+0000"},
                            {"id": "1", "field_data": []}]})");
        const auto run = drain(options, std::nullopt);
        REQUIRE(run.records.size() == 2);
        CHECK(run.records[1]["error"] == "the lead has no readable created_time");
        CHECK(json::parse(*run.checkpoint)["forms"]["700100"]["since"] ==
              "2025-12-03T10:05:00.000Z");
    }
    SECTION("data that is not an array is a data error") {
        answer(R"({"data": {"id": "1"}})");
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::data);
        CHECK(e.describe().find("without a data array") != std::string::npos);
    }
}

TEST_CASE("facebook lead source fails clearly on token and form errors", "[http]") {
    GraphFake fake({"v21.0", k_token});
    fake.start();
    seed(fake, "700100", 0, 5);
    auto options = options_for(fake, {"700100"});

    SECTION("code 190 (expired session) is an auth error saying the page token expired") {
        fake.expire_token();
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::auth);
        CHECK(e.describe().find("page token expired") != std::string::npos);
        CHECK(e.describe().find("subcode 463") != std::string::npos);
        CHECK(e.describe().find("form 700100") != std::string::npos);
        CHECK(e.hint().find("leads_retrieval") != std::string::npos);
        CHECK(fake.requests().size() == 1); // never retried
    }
    SECTION("a wrong token is code 190 too; the token never shows in the error") {
        options.access_token = "EAAG-wrong-token-123";
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::auth);
        CHECK(crmsync::util::redact(e.describe()).find("EAAG-wrong") == std::string::npos);
        CHECK(e.describe().find("EAAG-wrong") == std::string::npos);
    }
    SECTION("code 190 on a later page stops the run after the pages before it") {
        auto source = facebook::make_lead_source(options);
        source->open(std::nullopt);
        const auto first = source->next_page();
        REQUIRE(first);
        CHECK(first->records.size() == 3);
        fake.expire_token();
        CHECK_THROWS_AS(source->next_page(), Error);
    }
    SECTION("an unknown form is a usage error naming it") {
        options.forms = {"999"};
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::usage);
        CHECK(e.describe().find("999") != std::string::npos);
        CHECK(e.hint().find("--form") != std::string::npos);
    }
    SECTION("a missing token is a config error before any request") {
        options.access_token.clear();
        CHECK_THROWS_AS(facebook::make_lead_source(options), Error);
        CHECK(fake.requests().empty());
    }
}
