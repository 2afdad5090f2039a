// crmsync leads from Facebook Lead Ads and Gmail into Pipedrive, end to end: the real binary,
// the Graph, Gmail, Google OAuth and Pipedrive fakes in-process on loopback.

#include "tests/integration/support.hpp"

#include "tests/fakes/gmail/gmail_fake.hpp"
#include "tests/fakes/graph/graph_fake.hpp"
#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/pipedrive/pipedrive_fake.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sys/stat.h>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;
using nlohmann::json;

namespace {

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::vector<std::string> titles(const fakes::PipedriveFake& pipedrive) {
    std::vector<std::string> out;
    for (const auto& lead : pipedrive.leads()) {
        out.push_back(lead["title"].get<std::string>());
    }
    std::sort(out.begin(), out.end());
    return out;
}

json graph_lead(int i, std::int64_t created_s) {
    const std::string n = std::to_string(i);
    return {
        {"id", "90000000000" + n},
        {"created_time", created_s},
        {"form_id", "555"},
        {"field_data", json::array({{{"name", "full_name"}, {"values", {"Lead " + n}}},
                                    {{"name", "email"}, {"values", {"lead" + n + "@example.com"}}},
                                    {{"name", "phone_number"}, {"values", {"+4850010020" + n}}}})}};
}

json lead_mail(int i, std::int64_t at_ms) {
    const std::string n = std::to_string(i);
    return fakes::GmailFake::message(
        "18c1f0a2b3c4d50" + n, at_ms,
        fakes::GmailFake::part("text/plain",
                               "Name: Lead " + n + "\r\nE-mail: mail" + n +
                                   "@example.com\r\nPhone: +48 600 100 20" + n +
                                   "\r\nMessage: call me\r\n",
                               {{"Content-Type", "text/plain; charset=\"UTF-8\""}}),
        {{"From", "Website <forms@example.com>"}, {"Subject", "New lead #" + n}});
}

} // namespace

TEST_CASE("leads: Facebook Lead Ads leads become one person and one lead each", "[cli][http]") {
    TempDir dir;
    fakes::GraphFake graph;
    fakes::PipedriveFake pipedrive;
    graph.start();
    pipedrive.start();
    const auto now_s = now_ms() / 1000;
    for (int i = 1; i <= 3; ++i) {
        graph.put_lead("555", graph_lead(i, now_s - 600 + i));
    }
    const std::vector<std::string> args{"leads",
                                        "--source",
                                        "facebook",
                                        "--form",
                                        "555",
                                        "--api-url",
                                        graph.base_url(),
                                        "--token-env",
                                        "FB_TOKEN",
                                        "--pipedrive-url",
                                        pipedrive.base_url(),
                                        "--pipedrive-token-env",
                                        "PD_TOKEN",
                                        "--state",
                                        dir.file("state.db"),
                                        "--log-dir",
                                        dir.file("logs"),
                                        "--retry-base",
                                        "20ms"};
    const std::map<std::string, std::string> env{{"FB_TOKEN", "page-token-1"},
                                                 {"PD_TOKEN", "pd-token"}};
    const auto first = crmsync::testing::run_crmsync(args, env, dir);
    INFO(explain(first));
    CHECK(first.exit_code == 0);
    CHECK(titles(pipedrive) == std::vector<std::string>{"Facebook 900000000001: Lead 1",
                                                        "Facebook 900000000002: Lead 2",
                                                        "Facebook 900000000003: Lead 3"});
    CHECK(pipedrive.persons().size() == 3);

    graph.put_lead("555", graph_lead(4, now_s - 10));
    const auto second = crmsync::testing::run_crmsync(args, env, dir);
    INFO(explain(second));
    CHECK(second.exit_code == 0);
    CHECK(titles(pipedrive).size() == 4);
    CHECK(pipedrive.duplicate_leads() == 0);
    CHECK(pipedrive.duplicate_persons() == 0);

    SECTION("an expired page token fails the run with a clear message") {
        graph.expire_token();
        const auto r = crmsync::testing::run_crmsync(args, env, dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("page token expired") != std::string::npos);
        CHECK(r.err.find("page-token-1") == std::string::npos);
    }
}

TEST_CASE("leads: Gmail lead mails read by a template become leads, unreadable ones become rejects",
          "[cli][http]") {
    TempDir dir;
    fakes::GoogleTokenFake google;
    fakes::GmailFake gmail;
    fakes::PipedriveFake pipedrive;
    google.start();
    gmail.start();
    pipedrive.start();
    const std::string state = dir.file("state.db");

    // The OAuth account, as `crmsync accounts add` keeps it, and a fresh access token.
    const fakes::OAuthAccount account{"client-1.apps.googleusercontent.com", "GOCSPX-secret-1",
                                      "1//0refresh-token-leads", "", false};
    google.add_account(account);
    const std::string secrets = dir.file("secrets.json");
    std::ofstream(secrets) << json{
        {"client_secret", account.client_secret},
        {"refresh_token",
         account.refresh_token}}.dump();
    ::chmod(secrets.c_str(), 0600);
    const auto added = crmsync::testing::run_crmsync(
        {"accounts", "add", "--state", state, "--provider", "google", "--email",
         "leads@example.com", "--client-id", account.client_id, "--secrets-file", secrets},
        {}, dir);
    REQUIRE(added.exit_code == 0);
    const auto token = crmsync::testing::run_crmsync(
        {"token", "leads@example.com", "--state", state, "--google-token-url", google.token_url(),
         "--log-dir", dir.file("logs")},
        {}, dir);
    INFO(explain(token));
    REQUIRE(token.exit_code == 0);
    std::string access_token = token.out;
    access_token.erase(access_token.find_last_not_of("\r\n") + 1);
    gmail.set_access_token(access_token);

    const std::string template_file = dir.file("contact-form.json");
    std::ofstream(template_file) << R"({"name": "contact-form",
        "query": "from:forms@example.com subject:\"New lead\"",
        "fields": {"name": "^Name:\\s*(.+)$", "email": "^E-?mail:\\s*(\\S+)$",
                   "phone": "^Phone:\\s*(.+)$", "message": "^Message:\\s*([\\s\\S]*)$"}})";

    const auto base = now_ms() - 30 * 60'000;
    for (int i = 1; i <= 3; ++i) {
        gmail.put_message(lead_mail(i, base + i * 60'000));
    }
    gmail.put_message(fakes::GmailFake::message(
        "18c1f0a2b3c4d599", base + 5 * 60'000,
        fakes::GmailFake::part("text/plain", "Hello, please call me back.\r\n",
                               {{"Content-Type", "text/plain; charset=\"UTF-8\""}}),
        {{"From", "Website <forms@example.com>"}, {"Subject", "New lead #99"}}));

    const std::vector<std::string> args{"leads",
                                        "--source",
                                        "gmail",
                                        "--account",
                                        "leads@example.com",
                                        "--template",
                                        template_file,
                                        "--api-url",
                                        gmail.base_url(),
                                        "--google-token-url",
                                        google.token_url(),
                                        "--pipedrive-url",
                                        pipedrive.base_url(),
                                        "--pipedrive-token-env",
                                        "PD_TOKEN",
                                        "--state",
                                        state,
                                        "--since",
                                        "2000-01-01",
                                        "--log-dir",
                                        dir.file("logs"),
                                        "--retry-base",
                                        "20ms"};
    const std::map<std::string, std::string> env{{"PD_TOKEN", "pd-token"}};
    const auto first = crmsync::testing::run_crmsync(args, env, dir);
    INFO(explain(first));
    CHECK(first.exit_code == 3); // the unreadable mail is rejected with its reason
    CHECK(titles(pipedrive) == std::vector<std::string>{"Gmail 18c1f0a2b3c4d501: Lead 1",
                                                        "Gmail 18c1f0a2b3c4d502: Lead 2",
                                                        "Gmail 18c1f0a2b3c4d503: Lead 3"});
    CHECK(first.out.find("rejected 1") != std::string::npos);
    CHECK(first.err.find(access_token) == std::string::npos);

    const auto again = crmsync::testing::run_crmsync(args, env, dir);
    INFO(explain(again));
    CHECK(titles(pipedrive).size() == 3);
    CHECK(pipedrive.duplicate_persons() == 0);
    CHECK(pipedrive.duplicate_leads() == 0);
}
