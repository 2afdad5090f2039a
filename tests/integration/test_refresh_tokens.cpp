// crmsync accounts, refresh-tokens and token end to end: the real binary as a child process,
// the Google and Zoho token endpoint fakes in-process on loopback, a state file in a temp dir.

#include "tests/integration/support.hpp"

#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/oauth/zoho_accounts_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace crmsync;
using namespace std::chrono_literals;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;
using fakes::Fault;
using fakes::FaultKind;
using fakes::OAuthAccount;

namespace {

// Runs crmsync with `input` on stdin (support.hpp's runner gives it /dev/null).
ProcessResult run_with_stdin(const std::vector<std::string>& args, const std::string& input,
                             const TempDir& dir) {
    static std::atomic<int> counter{0};
    const std::string n = std::to_string(counter++);
    crmsync::testing::SpawnOptions options;
    options.program = CRMSYNC_BINARY;
    options.args = args;
    options.stdin_path = dir.file("stdin." + n);
    options.stdout_path = dir.file("stdin-out." + n);
    options.stderr_path = dir.file("stdin-err." + n);
    std::ofstream(options.stdin_path) << input;
    ProcessResult r;
    r.exit_code = crmsync::testing::ChildProcess(options).wait();
    r.out = crmsync::testing::read_file(options.stdout_path);
    r.err = crmsync::testing::read_file(options.stderr_path);
    return r;
}

std::string secrets_json(const OAuthAccount& a) {
    return nlohmann::json{{"client_secret", a.client_secret}, {"refresh_token", a.refresh_token}}
        .dump();
}

OAuthAccount google_account(int n) {
    return {"client-" + std::to_string(n % 3) + ".apps.googleusercontent.com",
            "GOCSPX-secret-of-client-" + std::to_string(n % 3),
            "1//0refresh-token-number-" + std::to_string(n),
            "https://www.googleapis.com/auth/contacts", false};
}

OAuthAccount zoho_account(int n) {
    return {"1000.ZOHOCLIENT" + std::to_string(n), "zoho-client-secret-" + std::to_string(n),
            "1000.zoho-refresh-token-" + std::to_string(n), "ZohoCRM.modules.ALL", false};
}

struct Fixture {
    TempDir dir;
    fakes::GoogleTokenFake google;
    fakes::ZohoAccountsFake zoho;
    std::string state = dir.file("state/state.db");
    std::vector<ProcessResult> results; // every run, for the secret scan

    explicit Fixture(fakes::ZohoAccountsFakeOptions zoho_options = eu())
        : zoho(std::move(zoho_options)) {
        google.start();
        zoho.start();
    }

    static fakes::ZohoAccountsFakeOptions eu() {
        fakes::ZohoAccountsFakeOptions o;
        o.data_centre = "eu";
        return o;
    }

    ProcessResult run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
        auto r = crmsync::testing::run_crmsync(args, env, dir);
        results.push_back(r);
        return r;
    }

    // refresh-tokens against the fakes, fast retries, summary and logs in the temp dir.
    ProcessResult refresh(std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"refresh-tokens",
                                      "--state",
                                      state,
                                      "--google-token-url",
                                      google.token_url(),
                                      "--zoho-accounts-url",
                                      zoho.base_url(),
                                      "--log-dir",
                                      dir.file("logs"),
                                      "--summary-json",
                                      dir.file("summary.json"),
                                      "--retry-base",
                                      "10ms",
                                      "--rate",
                                      "0"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run(args);
    }

    ProcessResult token(const std::string& account, std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"token",
                                      account,
                                      "--state",
                                      state,
                                      "--google-token-url",
                                      google.token_url(),
                                      "--zoho-accounts-url",
                                      zoho.base_url(),
                                      "--log-dir",
                                      dir.file("logs"),
                                      "--retry-base",
                                      "10ms"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run(args);
    }

    // `accounts add` with the secrets in a 0600 file.
    ProcessResult add(const std::string& provider, const std::string& email, const OAuthAccount& a,
                      std::vector<std::string> extra = {}) {
        const std::string file = dir.file("secrets-" + email + ".json");
        {
            std::ofstream out(file);
            out << secrets_json(a);
        }
        ::chmod(file.c_str(), 0600);
        std::vector<std::string> args{"accounts",    "add",       "--state",        state,
                                      "--provider",  provider,    "--email",        email,
                                      "--client-id", a.client_id, "--secrets-file", file};
        args.insert(args.end(), extra.begin(), extra.end());
        auto r = run(args);
        std::remove(file.c_str());
        return r;
    }

    void add_google(int n, const std::string& email) {
        google.add_account(google_account(n));
        const auto r = add("google", email, google_account(n));
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    }

    void add_zoho(int n, const std::string& email) {
        zoho.add_account(zoho_account(n));
        const auto r = add("zoho", email, zoho_account(n), {"--zoho-dc", "eu"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    }

    nlohmann::json summary() const {
        return nlohmann::json::parse(crmsync::testing::read_file(dir.file("summary.json")));
    }

    nlohmann::json list() {
        const auto r = run({"accounts", "list", "--state", state, "--json"});
        REQUIRE(r.exit_code == 0);
        return nlohmann::json::parse(r.out);
    }

    nlohmann::json account(const std::string& email) {
        for (const auto& a : list()) {
            if (a["email"] == email) {
                return a;
            }
        }
        FAIL("no account " << email);
        return {};
    }
};

} // namespace

TEST_CASE("crmsync accounts", "[cli]") {
    Fixture f;

    SECTION("add reads the secrets from stdin; list shows the account with its secrets masked") {
        const auto a = google_account(1);
        const auto r = run_with_stdin({"accounts", "add", "--state", f.state, "--provider",
                                       "google", "--email", "alice@example.com", "--owner",
                                       "alice.crm", "--client-id", a.client_id},
                                      secrets_json(a), f.dir);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("added account 1: google alice@example.com") != std::string::npos);
        struct stat st {};
        REQUIRE(::stat(f.state.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);

        const auto text = f.run({"accounts", "list", "--state", f.state});
        REQUIRE(text.exit_code == 0);
        CHECK(text.out.find("alice@example.com") != std::string::npos);
        CHECK(text.out.find("alice.crm") != std::string::npos);
        CHECK(text.out.find(a.refresh_token) == std::string::npos);
        CHECK(text.out.find(a.client_secret) == std::string::npos);

        const auto json = f.list();
        REQUIRE(json.size() == 1);
        CHECK(json[0]["provider"] == "google");
        CHECK(json[0]["owner"] == "alice.crm");
        CHECK(json[0]["client_id"] == a.client_id);
        CHECK(json[0]["active"] == true);
        CHECK(json[0]["status"] == "ok");
        CHECK(json[0]["refresh_token"].get<std::string>().rfind("***", 0) == 0);
        CHECK(json[0]["client_secret"].get<std::string>().rfind("***", 0) == 0);
        CHECK(json.dump().find(a.refresh_token) == std::string::npos);
        CHECK(json.dump().find(a.client_secret) == std::string::npos);
    }
    SECTION("a Zoho account keeps its data centre; an unknown one is refused") {
        f.add_zoho(1, "zed@example.com");
        CHECK(f.account("zed@example.com")["zoho_dc"] == "eu");
        const auto bad = f.add("zoho", "x@example.com", zoho_account(2), {"--zoho-dc", "de"});
        CHECK(bad.exit_code == 2);
        CHECK(bad.err.find("--zoho-dc 'de'") != std::string::npos);
        const auto google_dc =
            f.add("google", "y@example.com", google_account(2), {"--zoho-dc", "eu"});
        CHECK(google_dc.exit_code == 2);
    }
    SECTION("secrets are never taken from argv, and bad input is not echoed") {
        const auto argv = f.run({"accounts", "add", "--state", f.state, "--provider", "google",
                                 "--email", "a@example.com", "--client-id", "c", "--client-secret",
                                 "s3cr3t-on-the-command-line"});
        CHECK(argv.exit_code == 2);
        const auto garbage =
            run_with_stdin({"accounts", "add", "--state", f.state, "--provider", "google",
                            "--email", "a@example.com", "--client-id", "c"},
                           "client_secret=very-secret-garbage-1234", f.dir);
        CHECK(garbage.exit_code == 2);
        CHECK(garbage.err.find("very-secret-garbage") == std::string::npos);
        CHECK(garbage.err.find("JSON object") != std::string::npos);
        const auto missing =
            run_with_stdin({"accounts", "add", "--state", f.state, "--provider", "google",
                            "--email", "a@example.com", "--client-id", "c"},
                           R"({"client_secret": "only-the-secret-5678"})", f.dir);
        CHECK(missing.exit_code == 2);
        CHECK(missing.err.find("refresh_token") != std::string::npos);
        CHECK(missing.err.find("only-the-secret") == std::string::npos);
        const auto typo =
            run_with_stdin({"accounts", "add", "--state", f.state, "--provider", "google",
                            "--email", "a@example.com", "--client-id", "c"},
                           R"({"client_secret": "s-1234", "refreshToken": "r-1234"})", f.dir);
        CHECK(typo.exit_code == 2);
        CHECK(typo.err.find("'refreshToken'") != std::string::npos);
        CHECK(f.list().empty());
    }
    SECTION("adding the same provider and email again replaces the secrets (re-authorization)") {
        f.add_google(1, "alice@example.com");
        const auto again = f.add("google", "alice@example.com", google_account(4));
        REQUIRE(again.exit_code == 0);
        CHECK(again.out.find("re-authorized account 1") != std::string::npos);
        CHECK(f.list().size() == 1);
    }
    SECTION("disable, enable and remove by id or email") {
        f.add_google(1, "alice@example.com");
        f.add_google(2, "bob@example.com");
        CHECK(f.run({"accounts", "disable", "--state", f.state, "alice@example.com"}).exit_code ==
              0);
        CHECK(f.account("alice@example.com")["active"] == false);
        CHECK(f.run({"accounts", "enable", "--state", f.state, "1"}).exit_code == 0);
        CHECK(f.account("alice@example.com")["active"] == true);
        const auto removed = f.run({"accounts", "remove", "--state", f.state, "bob@example.com"});
        CHECK(removed.exit_code == 0);
        CHECK(f.list().size() == 1);
        const auto unknown = f.run({"accounts", "remove", "--state", f.state, "bob@example.com"});
        CHECK(unknown.exit_code == 2);
        CHECK(unknown.err.find("no account 'bob@example.com'") != std::string::npos);
    }
}

TEST_CASE("crmsync refresh-tokens", "[cli][http]") {
    Fixture f;

    SECTION("refreshes every due account at Google and at Zoho's data centre, then none") {
        f.add_google(1, "alice@example.com");
        f.add_google(2, "bob@example.com");
        f.add_zoho(1, "zed@example.com");
        const auto r = f.refresh();
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("crmsync: refresh-tokens all ok in") == 0);
        const auto s = f.summary();
        CHECK(s["refreshed"] == 3);
        CHECK(s["due"] == 3);
        CHECK(f.google.request_count() == 2);
        CHECK(f.zoho.request_count() == 1);
        const auto zed = f.account("zed@example.com");
        CHECK(zed["api_domain"] == "https://www.zohoapis.eu");
        CHECK(zed["status"] == "ok");
        CHECK_FALSE(zed["expires_at"].get<std::string>().empty());

        // Valid for an hour: nothing is due.
        const auto again = f.refresh();
        CHECK(again.exit_code == 0);
        CHECK(f.summary()["fresh"] == 3);
        CHECK(f.summary()["refreshed"] == 0);
        CHECK(f.google.request_count() == 2);

        // Unless --within reaches past the expiry, or --force.
        CHECK(f.refresh({"--within", "2h", "--provider", "google"}).exit_code == 0);
        CHECK(f.summary()["refreshed"] == 2);
        CHECK(f.refresh({"--force", "--account", "zed@example.com"}).exit_code == 0);
        CHECK(f.summary()["refreshed"] == 1);
        CHECK(f.zoho.request_count() == 2);
        CHECK(f.google.request_count() == 4);
    }
    SECTION("invalid_grant marks the account needs_reauth and the others go on; exit 3") {
        f.add_google(1, "alice@example.com");
        f.add_google(2, "bob@example.com");
        f.add_google(3, "carol@example.com");
        f.google.set_revoked(google_account(2).refresh_token);
        const auto r = f.refresh();
        CHECK(r.exit_code == 3);
        CHECK(r.err.find("bob@example.com (google): needs re-authorization") != std::string::npos);
        CHECK(r.err.find("invalid_grant") != std::string::npos);
        CHECK(f.summary()["refreshed"] == 2);
        CHECK(f.summary()["needs_reauth"] == 1);
        CHECK(f.summary()["status"] == "partial");
        const auto bob = f.account("bob@example.com");
        CHECK(bob["status"] == "needs_reauth");
        CHECK(bob["last_error"].get<std::string>().find("accounts add") != std::string::npos);

        // Not tried again until re-authorized (or --force), but still reported.
        const std::size_t before = f.google.request_count();
        const auto second = f.refresh({"--within", "2h"});
        CHECK(second.exit_code == 3);
        CHECK(second.err.find("bob@example.com (google): needs re-authorization (not tried)") !=
              std::string::npos);
        CHECK(f.summary()["refreshed"] == 2);
        CHECK(f.google.request_count() == before + 2);
        CHECK(f.refresh({"--force"}).exit_code == 3);
        CHECK(f.google.request_count() == before + 5);

        // A new authorization fixes it.
        f.google.add_account(google_account(5));
        REQUIRE(f.add("google", "bob@example.com", google_account(5)).exit_code == 0);
        CHECK(f.refresh().exit_code == 0);
        CHECK(f.summary()["refreshed"] == 1);
        CHECK(f.account("bob@example.com")["status"] == "ok");
    }
    SECTION("invalid_client has its own message") {
        auto wrong = google_account(1);
        f.google.add_account(wrong);
        wrong.client_secret = "GOCSPX-a-wrong-secret";
        REQUIRE(f.add("google", "alice@example.com", wrong).exit_code == 0);
        const auto r = f.refresh();
        CHECK(r.exit_code == 3);
        CHECK(r.err.find("refused the OAuth client") != std::string::npos);
        CHECK(r.err.find("check the client id and secret") != std::string::npos);
        CHECK(f.account("alice@example.com")["status"] == "needs_reauth");
    }
    SECTION("Zoho's HTTP 200 error bodies are failures: invalid_code, invalid_client") {
        f.add_zoho(1, "zed@example.com");
        f.add_zoho(2, "zoe@example.com");
        f.zoho.set_revoked(zoho_account(1).refresh_token);
        // A client the data centre does not know: what a wrong --zoho-dc gets.
        auto stranger = zoho_account(3);
        REQUIRE(f.add("zoho", "zack@example.com", stranger, {"--zoho-dc", "eu"}).exit_code == 0);
        const auto r = f.refresh();
        CHECK(r.exit_code == 3);
        CHECK(f.summary()["refreshed"] == 1);
        CHECK(f.summary()["needs_reauth"] == 2);
        CHECK(r.err.find("invalid_code") != std::string::npos);
        CHECK(r.err.find("the data centre (this account uses 'eu')") != std::string::npos);
        CHECK(f.account("zoe@example.com")["status"] == "ok");
    }
    SECTION("5xx, resets, damaged and slow answers are retried with backoff") {
        f.add_google(1, "alice@example.com");
        f.add_zoho(1, "zed@example.com");
        // The reset comes first: on a reused connection libcurl would retry it by itself.
        f.google.inject({"POST", "", FaultKind::reset, 0, std::nullopt, 0, 1});
        f.google.inject({"POST", "", FaultKind::status, 503, std::nullopt, 0, 1});
        f.google.inject({"POST", "", FaultKind::malformed, 0, std::nullopt, 0, 1});
        f.zoho.inject({"POST", "", FaultKind::slow, 0, std::nullopt, 3000, 1});
        const auto r = f.refresh({"--timeout", "1s", "--concurrency", "1"});
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(f.summary()["refreshed"] == 2);
        CHECK(f.summary()["retries"] == 4);
        CHECK(f.google.request_count() == 4);
        // The slow request is recorded when the fake finally answers it.
        while (f.zoho.request_count() < 2) {
            std::this_thread::sleep_for(50ms);
        }
        CHECK(f.zoho.request_count() == 2);
    }
    SECTION("an endpoint that stays down: exit 1 when no account could be tried") {
        f.add_google(1, "alice@example.com");
        f.add_google(2, "bob@example.com");
        const auto r =
            f.run({"refresh-tokens", "--state", f.state, "--google-token-url",
                   "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port()) + "/token",
                   "--log-dir", f.dir.file("logs"), "--retry-attempts", "2", "--retry-base", "10ms",
                   "--summary-json", f.dir.file("summary.json")});
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("crmsync: error: no token could be refreshed") != std::string::npos);
        CHECK(f.summary()["failed"] == 2);
        CHECK(f.summary()["status"] == "failed");
        CHECK(f.account("alice@example.com")["status"] == "error");

        // 5xx that outlasts the attempts is the same.
        f.google.inject({"POST", "", FaultKind::status, 500, std::nullopt, 0, 100});
        CHECK(f.refresh({"--retry-attempts", "3"}).exit_code == 1);
        CHECK(f.google.request_count() == 6);
        f.google.clear_faults();
        CHECK(f.refresh().exit_code == 0);
        CHECK(f.account("alice@example.com")["status"] == "ok");
    }
    SECTION("never more than 10 token requests per Zoho refresh token per 10 minutes") {
        f.add_zoho(1, "zed@example.com");
        for (int i = 0; i < 12; ++i) {
            const auto r = f.refresh({"--force"});
            INFO(i << ": " << r.err);
            CHECK(r.exit_code == 0);
        }
        CHECK(f.zoho.request_count() == 10);
        CHECK(f.zoho.tokens_issued(zoho_account(1).refresh_token) == 10);
        CHECK(f.summary()["refreshed"] == 0);
        CHECK(f.summary()["deferred"] == 1);

        // Retries count too: a 5xx burns a request of the window.
        f.add_zoho(2, "zoe@example.com");
        f.zoho.inject({"POST", "", FaultKind::status, 500, std::nullopt, 0, 100});
        const auto r =
            f.refresh({"--force", "--account", "zoe@example.com", "--retry-attempts", "50"});
        CHECK(r.exit_code == 1);
        CHECK(f.zoho.request_count() == 20);
    }
    SECTION("Zoho's own throttle answer is a failure of that account only") {
        fakes::ZohoAccountsFakeOptions options = Fixture::eu();
        options.token_limit = 1;
        Fixture g(options);
        g.add_zoho(1, "zed@example.com");
        g.add_google(1, "alice@example.com");
        CHECK(g.refresh().exit_code == 0);
        const auto r = g.refresh({"--force"});
        CHECK(r.exit_code == 3);
        CHECK(r.err.find("grants no more tokens") != std::string::npos);
        CHECK(g.summary()["refreshed"] == 1);
        CHECK(g.zoho.request_count() == 2);
    }
    SECTION("many accounts in chunks, in parallel: one failure never stops the others") {
        for (int i = 0; i < 30; ++i) {
            f.add_google(i, "user" + std::to_string(i) + "@example.com");
        }
        for (int i : {3, 14, 25}) {
            f.google.set_revoked(google_account(i).refresh_token);
        }
        const auto r = f.refresh({"--chunk", "7", "--concurrency", "4"});
        CHECK(r.exit_code == 3);
        CHECK(f.summary()["refreshed"] == 27);
        CHECK(f.summary()["needs_reauth"] == 3);
        CHECK(f.google.request_count() == 30);
    }
    SECTION("--rate paces the requests") {
        for (int i = 0; i < 6; ++i) {
            f.add_google(i, "user" + std::to_string(i) + "@example.com");
        }
        const auto r =
            f.run({"refresh-tokens", "--state", f.state, "--google-token-url", f.google.token_url(),
                   "--log-dir", f.dir.file("logs"), "--rate", "10", "--concurrency", "4"});
        CHECK(r.exit_code == 0);
        const auto requests = f.google.requests();
        REQUIRE(requests.size() == 6);
        // One request at once, then one per 100 ms.
        CHECK(requests.back().at_ms - requests.front().at_ms >= 450);
    }
    SECTION("--account and --provider select; a disabled account is skipped") {
        f.add_google(1, "alice@example.com");
        f.add_google(2, "bob@example.com");
        f.add_zoho(1, "zed@example.com");
        CHECK(f.refresh({"--account", "bob@example.com"}).exit_code == 0);
        CHECK(f.summary()["refreshed"] == 1);
        CHECK(f.account("bob@example.com")["expires_at"] != "");
        CHECK(f.account("alice@example.com")["expires_at"] == "");
        CHECK(f.refresh({"--provider", "zoho"}).exit_code == 0);
        CHECK(f.summary()["refreshed"] == 1);
        CHECK(f.run({"accounts", "disable", "--state", f.state, "alice@example.com"}).exit_code ==
              0);
        CHECK(f.refresh().exit_code == 0);
        CHECK(f.summary()["accounts"] == 2);
        CHECK(f.summary()["refreshed"] == 0);
        const auto disabled = f.refresh({"--account", "alice@example.com"});
        CHECK(disabled.exit_code == 2);
        CHECK(disabled.err.find("is disabled") != std::string::npos);
        CHECK(f.refresh({"--account", "nobody@example.com"}).exit_code == 2);
    }
    SECTION("an overlapping run exits 4") {
        f.add_google(1, "alice@example.com");
        // The first run holds the lock while its token request hangs in a slow answer.
        f.google.inject({"POST", "", FaultKind::slow, 0, std::nullopt, 4000, 1});
        crmsync::testing::CrmsyncProcess first({"refresh-tokens", "--state", f.state,
                                                "--google-token-url", f.google.token_url(),
                                                "--log-dir", f.dir.file("logs")},
                                               {}, f.dir);
        while (f.google.pending_faults() > 0) {
            std::this_thread::sleep_for(20ms);
        }
        const auto second = f.refresh();
        CHECK(second.exit_code == 4);
        CHECK(second.err.find("another refresh-tokens run") != std::string::npos);
        CHECK(first.wait().exit_code == 0);
    }
    SECTION("usage errors exit 2 before any I/O") {
        CHECK(f.refresh({"--within", "soon"}).exit_code == 2);
        CHECK(f.refresh({"--provider", "outlook"}).exit_code == 2);
        CHECK(f.run({"refresh-tokens", "--state", f.state, "--google-token-url", "ftp://x"})
                  .exit_code == 2);
        struct stat st {};
        CHECK(::stat(f.state.c_str(), &st) != 0);
    }
}

TEST_CASE("crmsync token", "[cli][http]") {
    Fixture f;
    f.add_google(1, "alice@example.com");
    f.add_zoho(1, "zed@example.com");

    SECTION("prints a valid access token, refreshing it first only when needed") {
        const auto first = f.token("alice@example.com");
        INFO(first.err);
        REQUIRE(first.exit_code == 0);
        const std::string token = first.out.substr(0, first.out.find('\n'));
        CHECK(first.out == token + "\n");
        CHECK(f.google.validate(token));
        CHECK(f.google.request_count() == 1);
        const auto second = f.token("1", {"--summary-json", f.dir.file("token.json")});
        CHECK(second.out == first.out);
        const auto summary =
            nlohmann::json::parse(crmsync::testing::read_file(f.dir.file("token.json")));
        CHECK(summary["command"] == "token");
        CHECK(summary["status"] == "ok");
        CHECK(summary.dump().find(token) == std::string::npos);
        CHECK(f.google.request_count() == 1);
        // Asking for more validity than is left refreshes.
        const auto longer = f.token("alice@example.com", {"--min-valid", "2h"});
        CHECK(longer.exit_code == 0);
        CHECK(longer.out != first.out);
        CHECK(f.google.request_count() == 2);
    }
    SECTION("--json carries the expiry, the Zoho api_domain and the header to send") {
        const auto r = f.token("zed@example.com", {"--json"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        const auto j = nlohmann::json::parse(r.out);
        CHECK(f.zoho.validate(j["access_token"]));
        CHECK(j["api_domain"] == "https://www.zohoapis.eu");
        CHECK(j["authorization"] == "Zoho-oauthtoken " + j["access_token"].get<std::string>());
        CHECK(j["expires_in"].get<long>() > 3000);
    }
    SECTION("an account that needs re-authorization gives no token; exit 1") {
        f.google.set_revoked(google_account(1).refresh_token);
        const auto r = f.token("alice@example.com");
        CHECK(r.exit_code == 1);
        CHECK(r.out.empty());
        CHECK(r.err.find("refused the refresh token") != std::string::npos);
        const auto again = f.token("alice@example.com");
        CHECK(again.exit_code == 1);
        CHECK(again.err.find("needs re-authorization") != std::string::npos);
        CHECK(f.google.request_count() == 1);
    }
    SECTION("unknown and disabled accounts exit 2") {
        CHECK(f.token("nobody@example.com").exit_code == 2);
        REQUIRE(f.run({"accounts", "disable", "--state", f.state, "zed@example.com"}).exit_code ==
                0);
        const auto r = f.token("zed@example.com");
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("disabled") != std::string::npos);
    }
}

TEST_CASE("no secret reaches a log, a summary, an error or accounts list", "[cli][http]") {
    Fixture f;
    f.add_google(1, "alice@example.com");
    f.add_google(2, "bob@example.com");
    f.add_zoho(1, "zed@example.com");
    f.add_zoho(2, "zoe@example.com");
    f.google.set_revoked(google_account(2).refresh_token);
    f.zoho.inject({"POST", "", FaultKind::status, 503, std::nullopt, 0, 1});
    auto wrong = zoho_account(2);
    wrong.client_secret = "zoho-wrong-secret-for-the-test";
    REQUIRE(f.add("zoho", "zoe@example.com", wrong, {"--zoho-dc", "eu"}).exit_code == 0);

    f.refresh({"--l", "5", "--v"});
    f.refresh({"--l", "5", "--force"});
    f.token("alice@example.com", {"--l", "5", "--min-valid", "3h"});
    f.token("zed@example.com", {"--json"});
    f.token("bob@example.com", {"--l", "5"});
    f.run({"accounts", "list", "--state", f.state});
    f.run({"accounts", "list", "--state", f.state, "--json"});

    std::vector<std::string> secrets;
    for (int n : {1, 2}) {
        secrets.push_back(google_account(n).client_secret);
        secrets.push_back(google_account(n).refresh_token);
        secrets.push_back(zoho_account(n).client_secret);
        secrets.push_back(zoho_account(n).refresh_token);
    }
    secrets.push_back(wrong.client_secret);
    const auto issued_google = f.google.issued_tokens();
    const auto issued_zoho = f.zoho.issued_tokens();
    REQUIRE(issued_google.size() >= 2);
    REQUIRE(issued_zoho.size() >= 2);
    for (const auto& t : issued_google) {
        secrets.push_back(t.access_token);
    }
    for (const auto& t : issued_zoho) {
        secrets.push_back(t.access_token);
    }

    std::vector<std::pair<std::string, std::string>> texts;
    for (const auto& file : crmsync::testing::list_files(f.dir.path())) {
        // The state file keeps the secrets by design (0600); token's stdout is the token.
        if (file.find("/state/") != std::string::npos) {
            continue;
        }
        texts.emplace_back(file, crmsync::testing::read_file(file));
    }
    REQUIRE_FALSE(crmsync::testing::list_files(f.dir.file("logs")).empty());
    std::set<std::string> access_tokens;
    for (const auto& t : issued_google) {
        access_tokens.insert(t.access_token);
    }
    for (const auto& t : issued_zoho) {
        access_tokens.insert(t.access_token);
    }
    std::size_t token_outputs = 0;
    for (const auto& [name, text] : texts) {
        for (const auto& secret : secrets) {
            if (text.find(secret) == std::string::npos) {
                continue;
            }
            // The one place an access token belongs: what `crmsync token` printed on stdout.
            const bool printed_token =
                access_tokens.count(secret) > 0 && name.find("/stdout.") != std::string::npos &&
                std::any_of(f.results.begin(), f.results.end(), [&](const ProcessResult& r) {
                    return r.exit_code == 0 && r.out == text;
                });
            if (printed_token) {
                ++token_outputs;
                continue;
            }
            FAIL_CHECK("secret " << secret.substr(0, 8) << "... found in " << name);
        }
    }
    CHECK(token_outputs >= 2);
}
