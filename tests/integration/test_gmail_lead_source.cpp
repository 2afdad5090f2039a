// The Gmail lead source against the Gmail fake over loopback HTTP: list + get until the end,
// records and the checkpoint, the token asked again after a 401, rate limits retried.

#include "drivers/gmail/lead_source.hpp"
#include "lib/core/error.hpp"
#include "tests/fakes/gmail/gmail_fake.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using crmsync::Error;
using crmsync::ErrorKind;
using crmsync::SystemTime;
using crmsync::fakes::FaultKind;
using crmsync::fakes::GmailFake;
using crmsync::fakes::GmailFault;
using nlohmann::json;
namespace gmail = crmsync::drivers::gmail;
namespace pipeline = crmsync::pipeline;

namespace {

constexpr std::int64_t k_base_ms = 1'764'756'000'000; // 2025-12-03T10:00:00Z
const std::string k_token = "ya29.gmail-token-1";

const char* const k_contact_form = R"({"name": "contact-form",
  "query": "from:forms@example.com subject:\"New lead\"",
  "fields": {"name": "^Name:\\s*(.+)$", "email": "^E-?mail:\\s*(\\S+)$",
             "phone": "^Phone:\\s*(.+)$", "message": "^Message:\\s*([\\s\\S]*)$"}})";

struct Run {
    std::vector<pipeline::Page> pages;
    std::vector<json> records;
    std::optional<std::string> checkpoint;
    pipeline::RunSummary summary;
};

// A token source like the command's: a cached token, dropped by forget().
struct Tokens {
    std::vector<std::string> issued{k_token};
    std::size_t next = 0;
    int asked = 0;
    int forgotten = 0;
};

gmail::LeadSourceOptions options_for(const GmailFake& fake, const std::shared_ptr<Tokens>& tokens) {
    gmail::LeadSourceOptions o;
    o.base_url = fake.base_url();
    o.access_token = [tokens] {
        ++tokens->asked;
        return tokens->issued[std::min(tokens->next, tokens->issued.size() - 1)];
    };
    o.forget_token = [tokens] {
        ++tokens->forgotten;
        ++tokens->next;
    };
    o.lead_template = std::make_shared<gmail::LeadTemplate>(
        gmail::LeadTemplate::parse(k_contact_form, "contact-form.json"));
    o.page_size = 2;
    o.retry.base_delay = 1ms;
    o.retry.max_delay = 5ms;
    o.retry.max_attempts = 4;
    return o;
}

Run drain(const gmail::LeadSourceOptions& options, std::optional<std::string> stored) {
    auto source = gmail::make_lead_source(options);
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
    source->report(run.summary);
    return run;
}

Error error_of(const gmail::LeadSourceOptions& options, std::optional<std::string> stored = {}) {
    try {
        drain(options, std::move(stored));
    } catch (const Error& e) {
        return e;
    }
    FAIL("the run did not fail");
    return Error(ErrorKind::internal, "unreachable");
}

// Lead mail i, received at k_base + i minutes.
json lead_mail(int i) {
    const std::string n = std::to_string(i);
    return GmailFake::message(
        "18c1f0a2b3c4d5" + std::string(i < 10 ? "0" : "") + n, k_base_ms + i * 60'000,
        GmailFake::part("text/plain",
                        "Name: Lead " + n + "\r\nE-mail: lead" + n + "@example.com\r\nPhone: +48 " +
                            n + "\r\nMessage: call me\r\n",
                        {{"Content-Type", "text/plain; charset=\"UTF-8\""}}),
        {{"From", "Website <forms@example.com>"}, {"Subject", "New lead #" + n}});
}

std::map<std::string, std::string> params_of(const std::string& query) {
    httplib::Params params;
    httplib::detail::parse_query_text(query, params);
    return {params.begin(), params.end()};
}

std::vector<std::string> list_queries(const GmailFake& fake) {
    std::vector<std::string> out;
    for (const auto& r : fake.requests()) {
        if (r.path.ends_with("/messages")) {
            out.push_back(params_of(r.query)["q"]);
        }
    }
    return out;
}

} // namespace

TEST_CASE("gmail lead source lists, gets and reads the lead mails of the template", "[http]") {
    GmailFake fake({"leads@example.com", k_token});
    fake.start();
    for (int i = 0; i < 5; ++i) {
        fake.put_message(lead_mail(i));
    }
    // Not a lead mail (other sender), and a lead mail the template cannot read.
    fake.put_message(GmailFake::message(
        "18c1f0a2b3c4d5ff", k_base_ms + 30 * 60'000,
        GmailFake::part("text/plain", "E-mail: spam@example.com", {{"Content-Type", "text/plain"}}),
        {{"From", "someone@else.com"}, {"Subject", "New lead offer"}}));
    fake.put_message(
        GmailFake::message("18c1f0a2b3c4d5aa", k_base_ms + 10 * 60'000,
                           GmailFake::part("text/plain", "Thank you for your message.",
                                           {{"Content-Type", "text/plain"}}),
                           {{"From", "forms@example.com"}, {"Subject", "New lead (auto-reply)"}}));
    const auto tokens = std::make_shared<Tokens>();

    const auto run = drain(options_for(fake, tokens), std::nullopt);

    SECTION("every matching mail becomes a record, newest first; unreadable ones carry why") {
        REQUIRE(run.records.size() == 6);
        CHECK(run.records[0]["id"] == "18c1f0a2b3c4d5aa");
        CHECK(run.records[0]["error"] ==
              "template contact-form found neither an e-mail nor a phone in the mail");
        CHECK(run.records[0]["raw"] == "Thank you for your message.");
        const auto& r = run.records[1];
        CHECK(r["source"] == "gmail");
        CHECK(r["id"] == "18c1f0a2b3c4d504");
        CHECK(r["created_at"] == "2025-12-03T10:04:00Z");
        CHECK(r["name"] == "Lead 4");
        CHECK(r["email"] == "lead4@example.com");
        CHECK(r["phone"] == "+48 4");
        CHECK(r["message"] == "call me");
        CHECK(r["details"]["subject"] == "New lead #4");
        CHECK(run.summary.counters ==
              std::vector<std::pair<std::string, long>>{{"unreadable lead mails", 1}});
    }
    SECTION("list pages of the asked size; the checkpoint only on the last, at the newest mail") {
        REQUIRE(run.pages.size() == 3);
        CHECK(run.pages[0].stream == "gmail");
        CHECK_FALSE(run.pages[0].checkpoint);
        CHECK_FALSE(run.pages[1].checkpoint);
        REQUIRE(run.pages[2].checkpoint);
        CHECK(json::parse(*run.pages[2].checkpoint) == json{{"since", "2025-12-03T10:10:00.000Z"}});
    }
    SECTION("the template's query is sent as is on a first run, with the bearer token") {
        CHECK(list_queries(fake) ==
              std::vector<std::string>(3, "from:forms@example.com subject:\"New lead\""));
        for (const auto& r : fake.requests()) {
            CHECK(r.authorization == "Bearer " + k_token);
        }
        CHECK(fake.requests().size() == 3 + 6);
    }
}

TEST_CASE("gmail lead source asks for mails after the checkpoint minus lookback", "[http]") {
    GmailFake fake({"leads@example.com", k_token});
    fake.start();
    for (int i = 0; i < 30; ++i) {
        fake.put_message(lead_mail(i));
    }
    auto options = options_for(fake, std::make_shared<Tokens>());
    options.page_size = 100;
    const std::string stored = json{{"since", "2025-12-03T10:25:00.000Z"}}.dump();

    SECTION("after:<epoch seconds> of the window start, one second early") {
        const auto run = drain(options, stored);
        const auto start_s = (k_base_ms + 15 * 60'000) / 1000;
        CHECK(list_queries(fake) ==
              std::vector<std::string>{"from:forms@example.com subject:\"New lead\" after:" +
                                       std::to_string(start_s - 1)});
        CHECK(run.records.size() == 15); // 10:15 .. 10:29
        CHECK(json::parse(*run.checkpoint)["since"] == "2025-12-03T10:29:00.000Z");
    }
    SECTION("--since replaces the checkpoint") {
        options.since = SystemTime(std::chrono::milliseconds(k_base_ms + 28 * 60'000));
        CHECK(drain(options, stored).records.size() == 2);
    }
    SECTION("nothing new: an empty list keeps the stored position") {
        const std::string ahead = json{{"since", "2025-12-03T12:00:00.000Z"}}.dump();
        const auto run = drain(options, ahead);
        CHECK(run.records.empty());
        REQUIRE(run.checkpoint);
        CHECK(json::parse(*run.checkpoint)["since"] == "2025-12-03T12:00:00.000Z");
    }
    SECTION("a checkpoint this source did not write is a data error") {
        CHECK(error_of(options, std::string(R"({"forms": {}})")).kind() == ErrorKind::data);
    }
}

TEST_CASE("gmail lead source renews the token once after a 401", "[http]") {
    GmailFake fake({"leads@example.com", "ya29.fresh-token-2"});
    fake.start();
    fake.put_message(lead_mail(1));
    const auto tokens = std::make_shared<Tokens>();

    SECTION("an expired token is forgotten, a fresh one is asked for and used") {
        tokens->issued = {k_token, "ya29.fresh-token-2"};
        const auto run = drain(options_for(fake, tokens), std::nullopt);
        CHECK(run.records.size() == 1);
        CHECK(tokens->forgotten == 1);
        const auto requests = fake.requests();
        REQUIRE(requests.size() == 3);
        CHECK(requests[0].status == 401);
        CHECK(requests[1].authorization == "Bearer ya29.fresh-token-2");
    }
    SECTION("a token refused twice is an auth error that says what to do") {
        const auto e = error_of(options_for(fake, tokens));
        CHECK(e.kind() == ErrorKind::auth);
        CHECK(e.describe().find("401 twice") != std::string::npos);
        CHECK(e.hint().find("crmsync accounts") != std::string::npos);
        CHECK(e.describe().find(k_token) == std::string::npos);
        CHECK(fake.requests().size() == 2);
    }
}

TEST_CASE("gmail lead source retries rate limits and transient failures", "[http]") {
    GmailFake fake({"leads@example.com", k_token});
    fake.start();
    for (int i = 0; i < 3; ++i) {
        fake.put_message(lead_mail(i));
    }
    auto options = options_for(fake, std::make_shared<Tokens>());

    SECTION("429, 403 rateLimitExceeded, 403 userRateLimitExceeded, 500 and a cut-off body") {
        GmailFault limited;
        limited.status = 429;
        fake.inject(limited);
        GmailFault quota;
        quota.status = 403;
        quota.reason = "rateLimitExceeded";
        fake.inject(quota);
        GmailFault user_quota;
        user_quota.status = 403;
        user_quota.reason = "userRateLimitExceeded";
        user_quota.path_prefix = "/gmail/v1/users/me/messages/";
        fake.inject(user_quota);
        GmailFault backend;
        backend.status = 500;
        fake.inject(backend);
        GmailFault cut;
        cut.kind = FaultKind::truncate;
        cut.path_prefix = "/gmail/v1/users/me/messages/";
        fake.inject(cut);
        const auto run = drain(options, std::nullopt);
        CHECK(run.records.size() == 3);
        for (const auto& r : run.records) {
            CHECK_FALSE(r.contains("error"));
        }
        CHECK(run.summary.retries == 5);
    }
    SECTION("a 429 with Retry-After waits as asked") {
        GmailFault limited;
        limited.status = 429;
        limited.retry_after = "7";
        fake.inject(limited);
        std::chrono::milliseconds waited{0};
        crmsync::Clock clock;
        clock.sleep_for = [&waited](std::chrono::milliseconds d) { waited += d; };
        options.clock = &clock;
        CHECK(drain(options, std::nullopt).records.size() == 3);
        CHECK(waited == 7s);
    }
    SECTION("the daily quota is a connection error for the next run") {
        GmailFault daily;
        daily.status = 403;
        daily.reason = "dailyLimitExceeded";
        fake.inject(daily);
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::connection);
        CHECK(e.describe().find("daily quota") != std::string::npos);
    }
    SECTION("a 403 for policy is an auth error, not retried") {
        GmailFault policy;
        policy.status = 403;
        policy.reason = "domainPolicy";
        fake.inject(policy);
        CHECK(error_of(options).kind() == ErrorKind::auth);
        CHECK(fake.requests().size() == 1);
    }
    SECTION("limits that do not end fail within the attempts") {
        GmailFault limited;
        limited.status = 429;
        limited.count = 100;
        fake.inject(limited);
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::connection);
        CHECK(fake.requests().size() == 4);
    }
    SECTION("a message deleted between list and get is skipped and counted") {
        GmailFault gone;
        gone.status = 404;
        gone.path_prefix = "/gmail/v1/users/me/messages/18c1f0a2b3c4d501";
        fake.inject(gone);
        const auto run = drain(options, std::nullopt);
        CHECK(run.records.size() == 2);
        CHECK(run.summary.counters == std::vector<std::pair<std::string, long>>{
                                          {"Gmail messages gone before they were read", 1}});
    }
    SECTION("a query Gmail refuses is a usage error pointing at the template") {
        GmailFault bad;
        bad.status = 400;
        fake.inject(bad);
        const auto e = error_of(options);
        CHECK(e.kind() == ErrorKind::usage);
        CHECK(e.hint().find("query") != std::string::npos);
    }
}
