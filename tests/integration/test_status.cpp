// crmsync status over a state file: jobs, OAuth accounts (never their secrets) and error
// episodes, as text and as JSON for monitoring.

#include "tests/integration/support.hpp"

#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sys/stat.h>

using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;
using nlohmann::json;

namespace {

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

} // namespace

TEST_CASE("status shows OAuth accounts and error episodes of a state file", "[cli][sqlite]") {
    TempDir dir;
    const std::string state = dir.file("state.db");
    const std::string secrets = dir.file("secrets.json");
    std::ofstream(secrets) << R"({"client_secret": "GOCSPX-very-secret-value",
                                  "refresh_token": "1//0refresh-token-very-secret"})";
    ::chmod(secrets.c_str(), 0600);
    const auto added = crmsync::testing::run_crmsync(
        {"accounts", "add", "--state", state, "--provider", "google", "--email", "ana@example.com",
         "--client-id", "client-1.apps.googleusercontent.com", "--secrets-file", secrets},
        {}, dir);
    REQUIRE(added.exit_code == 0);

    // A db_sync run that fails (its API does not answer) opens an error episode; its notice
    // cannot be sent either, which changes nothing about the episode.
    const std::string closed =
        "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());
    const auto failed = crmsync::testing::run_crmsync(
        {"db_sync", "--campaign", "STATUSCAMPAIGN01", "--api-url", closed, "--url",
         "sqlite://" + dir.file("target.db"), "--retry-attempts", "1", "--log-dir",
         dir.file("logs"), "--notify-url", closed + "/notices", "--notify-state", state},
        {{"CRMSYNC_TOKEN", "tok3n-value"}}, dir);
    INFO(explain(failed));
    REQUIRE(failed.exit_code == 1);

    SECTION("as JSON") {
        const auto r =
            crmsync::testing::run_crmsync({"status", "--state", state, "--json"}, {}, dir);
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        const auto out = json::parse(r.out);
        REQUIRE(out["accounts"].size() == 1);
        CHECK(out["accounts"][0]["email"] == "ana@example.com");
        CHECK(out["accounts"][0]["provider"] == "google");
        CHECK(out["accounts"][0]["active"] == true);
        CHECK(out["accounts"][0]["expires_at"] == "");
        REQUIRE(out["episodes"].size() == 1);
        CHECK(out["episodes"][0]["failing"] == true);
        CHECK(out["episodes"][0]["command"] == "db_sync");
        CHECK(out["episodes"][0]["failures"] == 1);
        CHECK(out["episodes"][0]["last_error"].get<std::string>().find("fields/list") !=
              std::string::npos);
        CHECK(r.out.find("very-secret") == std::string::npos);
        CHECK(r.out.find("tok3n-value") == std::string::npos);
    }
    SECTION("as text") {
        const auto r = crmsync::testing::run_crmsync({"status", "--state", state}, {}, dir);
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("account 1 google ana@example.com  ok  token expires none") !=
              std::string::npos);
        CHECK(r.out.find("failing ") != std::string::npos);
        CHECK(r.out.find("(db_sync) since ") != std::string::npos);
        CHECK(r.out.find("very-secret") == std::string::npos);
    }
}
