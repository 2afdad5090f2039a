// One source, two kinds of sink: db_sync into SQL tables and into an http(s) URL (the durable
// outbox with the webhook's delivery rules) must carry the same rows.

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/fakes/webhook_receiver/webhook_receiver.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <set>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

constexpr const char* k_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fakes::FakeCampaignOptions campaign(std::size_t contacts) {
    fakes::FakeCampaignOptions o;
    o.contacts = contacts;
    o.history_end = std::chrono::system_clock::now() - std::chrono::minutes(1);
    o.history_span = std::chrono::hours(24);
    return o;
}

fakes::WebhookReceiverOptions signed_receiver() {
    fakes::WebhookReceiverOptions o;
    o.secret = k_secret;
    return o;
}

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

} // namespace

TEST_CASE("db_sync into an http(s) URL posts every row once, like the SQL target stores it",
          "[http][sqlite]") {
    TempDir dir;
    fakes::DialfireFake fake(campaign(30));
    fakes::WebhookReceiver receiver(signed_receiver());
    fake.start();
    receiver.start();
    const std::map<std::string, std::string> env{{"CRMSYNC_TOKEN", fake.options().token},
                                                 {"HOOK_SECRET", k_secret}};
    const auto run = [&](const std::string& url, const std::string& summary) {
        return crmsync::testing::run_crmsync(
            {"db_sync", "--campaign", fake.options().campaign_id, "--api-url", fake.base_url(),
             "--url", url, "--state", dir.file("state.db"), "--log-dir", dir.file("logs"),
             "--summary-json", dir.file(summary), "--retry-base", "50ms", "--webhook-secret-env",
             "HOOK_SECRET", "--webhook-rate", "0"},
            env, dir);
    };

    const auto sql_run = run("sqlite://" + dir.file("target.db"), "sql.json");
    INFO(explain(sql_run));
    REQUIRE(sql_run.exit_code == 0);
    const auto http_run = run(receiver.base_url() + "/hook", "http.json");
    INFO(explain(http_run));
    REQUIRE(http_run.exit_code == 0);

    // Every acknowledged delivery is one row, under one id, in the body shape of row_message.
    std::map<std::string, std::set<std::string>> rows_by_table;
    std::set<std::string> ids;
    for (const auto& r : receiver.requests()) {
        if (!r.acknowledged()) {
            continue;
        }
        CHECK(ids.insert(r.id).second);
        const auto body = nlohmann::json::parse(r.body);
        CHECK(body["state"] == "new");
        REQUIRE(body["record"].is_object());
        CHECK_FALSE(body["record"].empty());
        rows_by_table[body["table"].get<std::string>()].insert(body["key"].get<std::string>());
    }
    auto db = crmsync::testing::open("sqlite://" + dir.file("target.db"));
    for (const char* table : {"dfire_contacts", "dfire_transactions", "dfire_connections"}) {
        CAPTURE(table);
        CHECK(static_cast<long>(rows_by_table[table].size()) ==
              crmsync::testing::count_rows(*db, table));
    }
    CHECK(rows_by_table["dfire_contacts"].size() == 30);

    SECTION("a second run sends nothing: the ledger knows every row") {
        const auto before = receiver.requests().size();
        const auto again = run(receiver.base_url() + "/hook", "again.json");
        INFO(explain(again));
        CHECK(again.exit_code == 0);
        CHECK(receiver.requests().size() == before);
    }
}
