// Error notifications end to end: the crmsync binary as a child process, failing and then
// working again against the Dialfire and OAuth fakes, with the SMTP fake (and an HTTP endpoint)
// recording what was sent.

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"
#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/smtp/smtp_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace crmsync;
using namespace std::chrono_literals;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

// Records the JSON notices POSTed to /notify.
class NoticeReceiver {
public:
    NoticeReceiver() {
        m_server.Post("/notify", [this](const httplib::Request& req, httplib::Response& res) {
            std::lock_guard lock(m_mutex);
            m_bodies.push_back(req.body);
            res.status = 200;
        });
        m_port = m_server.bind_to_any_port("127.0.0.1");
        REQUIRE(m_port > 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(1ms);
        }
    }
    ~NoticeReceiver() {
        m_server.stop();
        m_thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/notify"; }
    std::vector<nlohmann::json> notices() const {
        std::lock_guard lock(m_mutex);
        std::vector<nlohmann::json> out;
        for (const auto& b : m_bodies) {
            out.push_back(nlohmann::json::parse(b));
        }
        return out;
    }

private:
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<std::string> m_bodies;
};

const char* const k_smtp_user = "alerts@example.com";
const char* const k_smtp_password = "smtp-password-for-tests-42";

struct Fixture {
    TempDir dir;
    fakes::SmtpFake smtp{smtp_options()};
    std::string notify_state = dir.file("notify/state.db");

    Fixture() { smtp.start(); }

    static fakes::SmtpFakeOptions smtp_options() {
        fakes::SmtpFakeOptions o;
        o.credentials = fakes::SmtpCredentials{k_smtp_user, k_smtp_password};
        return o;
    }

    std::vector<std::string> notify_args() const {
        return {"--notify-smtp",
                "smtp://alerts%40example.com@127.0.0.1:" + std::to_string(smtp.port()),
                "--notify-to",
                "ops@example.com",
                "--notify-state",
                notify_state};
    }

    std::map<std::string, std::string> env() const {
        return {{"CRMSYNC_SMTP_PASSWORD", k_smtp_password}};
    }

    std::vector<std::string> subjects() const {
        std::vector<std::string> out;
        for (const auto& m : smtp.messages()) {
            out.push_back(m.subject);
        }
        return out;
    }
};

fakes::FakeCampaignOptions small_campaign() {
    fakes::FakeCampaignOptions o;
    o.contacts = 5;
    o.inbound_calls = 2;
    o.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
    return o;
}

} // namespace

TEST_CASE("notifications: db_sync failing three times, then working", "[cli][sqlite]") {
    Fixture f;
    fakes::DialfireFake dialfire(small_campaign());
    dialfire.start();
    const std::string campaign = dialfire.options().campaign_id;
    const auto db_sync = [&](const std::string& api_url) {
        std::vector<std::string> args{"db_sync",
                                      "--campaign",
                                      campaign,
                                      "--api-url",
                                      api_url,
                                      "--url",
                                      "sqlite://" + f.dir.file("target.db"),
                                      "--log-dir",
                                      f.dir.file("logs"),
                                      "--retry-attempts",
                                      "2",
                                      "--retry-base",
                                      "10ms",
                                      "--summary-json",
                                      f.dir.file("summary.json")};
        const auto n = f.notify_args();
        args.insert(args.end(), n.begin(), n.end());
        auto env = f.env();
        env["CRMSYNC_TOKEN"] = dialfire.options().token;
        return crmsync::testing::run_crmsync(args, env, f.dir);
    };
    const std::string down = "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());

    SECTION("exactly one error mail for the episode and one recovery mail after it") {
        for (int i = 0; i < 3; ++i) {
            const auto r = db_sync(down);
            INFO(r.err);
            CHECK(r.exit_code == 1);
            CHECK(r.err.find("warning") == std::string::npos);
        }
        REQUIRE(f.smtp.message_count() == 1);
        const auto error_mail = f.smtp.messages()[0];
        CHECK(error_mail.subject.find("crmsync: db_sync " + campaign) == 0);
        CHECK(error_mail.subject.find("failing on") != std::string::npos);
        CHECK(error_mail.recipients == std::vector<std::string>{"ops@example.com"});
        CHECK(error_mail.auth_user == k_smtp_user);
        CHECK(error_mail.data.find("127.0.0.1") != std::string::npos);
        CHECK(error_mail.data.find(dialfire.options().token) == std::string::npos);
        CHECK(error_mail.data.find(k_smtp_password) == std::string::npos);

        const auto ok = db_sync(dialfire.base_url());
        INFO(ok.err);
        CHECK(ok.exit_code == 0);
        REQUIRE(f.smtp.message_count() == 2);
        const auto recovered = f.smtp.messages()[1];
        CHECK(recovered.subject.find("recovered on") != std::string::npos);
        CHECK(recovered.data.find("failed 3 runs in a row") != std::string::npos);

        CHECK(db_sync(dialfire.base_url()).exit_code == 0);
        CHECK(f.smtp.message_count() == 2);

        // A new failure is a new episode.
        CHECK(db_sync(down).exit_code == 1);
        CHECK(f.smtp.message_count() == 3);
    }
    SECTION("a mail that cannot be sent is logged, keeps the exit code, and goes out next run") {
        f.smtp.refuse_next({421, "4.3.2 shutting down", fakes::SmtpStage::connect, 3});
        const auto first = db_sync(down);
        CHECK(first.exit_code == 1);
        CHECK(first.err.find("crmsync: warning: a notification could not be sent") !=
              std::string::npos);
        CHECK(first.err.find(k_smtp_password) == std::string::npos);
        CHECK(f.smtp.message_count() == 0);
        const auto logs = crmsync::testing::list_files(f.dir.file("logs"));
        REQUIRE_FALSE(logs.empty());
        CHECK(crmsync::testing::read_file(logs.back()).find("could not send the error notice") !=
              std::string::npos);

        CHECK(db_sync(down).exit_code == 1);
        CHECK(f.smtp.message_count() == 1);
        CHECK(db_sync(down).exit_code == 1);
        CHECK(f.smtp.message_count() == 1);

        // A failing mail after a good run keeps exit 0.
        f.smtp.refuse_next({554, "5.7.1 no", fakes::SmtpStage::data, 1});
        const auto ok = db_sync(dialfire.base_url());
        CHECK(ok.exit_code == 0);
        CHECK(f.smtp.message_count() == 1);
        CHECK(db_sync(dialfire.base_url()).exit_code == 0);
        REQUIRE(f.smtp.message_count() == 2);
        CHECK(f.smtp.messages()[1].subject.find("recovered") != std::string::npos);
    }
    SECTION("a locked or misconfigured run is not an episode; flags are checked first") {
        const auto missing_to = crmsync::testing::run_crmsync(
            {"db_sync", "--campaign", campaign, "--api-url", down, "--notify-smtp",
             "smtp://127.0.0.1:" + std::to_string(f.smtp.port())},
            {{"CRMSYNC_TOKEN", "x"}}, f.dir);
        CHECK(missing_to.exit_code == 2);
        const auto no_password = crmsync::testing::run_crmsync(
            {"db_sync", "--campaign", campaign, "--api-url", down, "--notify-smtp",
             "smtp://bot@127.0.0.1:25", "--notify-to", "ops@example.com"},
            {{"CRMSYNC_TOKEN", "x"}}, f.dir);
        CHECK(no_password.exit_code == 2);
        CHECK(no_password.err.find("CRMSYNC_SMTP_PASSWORD") != std::string::npos);
        const auto in_url = crmsync::testing::run_crmsync(
            {"db_sync", "--campaign", campaign, "--api-url", down, "--notify-smtp",
             "smtp://bot:pw-in-the-url-123@127.0.0.1:25", "--notify-to", "ops@example.com"},
            {{"CRMSYNC_TOKEN", "x"}}, f.dir);
        CHECK(in_url.exit_code == 2);
        CHECK(in_url.err.find("pw-in-the-url-123") == std::string::npos);
        CHECK(crmsync::testing::run_crmsync(
                  {"db_sync", "--campaign", campaign, "--notify-url", "not a url"},
                  {{"CRMSYNC_TOKEN", "x"}}, f.dir)
                  .exit_code == 2);
        struct stat st {};
        CHECK(::stat(f.notify_state.c_str(), &st) != 0);
        CHECK(f.smtp.message_count() == 0);
    }
}

TEST_CASE("notifications: refresh-tokens with a failing token endpoint", "[cli][http]") {
    Fixture f;
    NoticeReceiver receiver;
    fakes::GoogleTokenFake google;
    google.start();
    const fakes::OAuthAccount account{"client-9.apps.googleusercontent.com", "GOCSPX-notify-secret",
                                      "1//0notify-refresh-token", "", false};
    google.add_account(account);
    const std::string state = f.dir.file("state/state.db");
    {
        std::ofstream(f.dir.file("secrets.json")) << nlohmann::json{
            {"client_secret", account.client_secret},
            {"refresh_token", account.refresh_token}}.dump();
    }
    const auto add = crmsync::testing::run_crmsync(
        {"accounts", "add", "--state", state, "--provider", "google", "--email",
         "alice@example.com", "--client-id", account.client_id, "--secrets-file",
         f.dir.file("secrets.json")},
        {}, f.dir);
    REQUIRE(add.exit_code == 0);
    const auto refresh = [&] {
        std::vector<std::string> args{"refresh-tokens",
                                      "--state",
                                      state,
                                      "--google-token-url",
                                      google.token_url(),
                                      "--log-dir",
                                      f.dir.file("logs"),
                                      "--retry-attempts",
                                      "2",
                                      "--retry-base",
                                      "10ms",
                                      "--force",
                                      "--notify-url",
                                      receiver.url(),
                                      "--summary-json",
                                      f.dir.file("summary.json")};
        const auto n = f.notify_args();
        // The episode lives in the command's own state file unless --notify-state says otherwise.
        args.insert(args.end(), n.begin(), n.end() - 2);
        return crmsync::testing::run_crmsync(args, f.env(), f.dir);
    };

    google.inject({"POST", "", fakes::FaultKind::status, 503, std::nullopt, 0, 1000});
    for (int i = 0; i < 3; ++i) {
        CHECK(refresh().exit_code == 1);
    }
    CHECK(f.smtp.message_count() == 1);
    auto notices = receiver.notices();
    REQUIRE(notices.size() == 1);
    CHECK(notices[0]["event"] == "error");
    CHECK(notices[0]["command"] == "refresh-tokens");
    CHECK(notices[0]["error"].get<std::string>().find("alice@example.com") != std::string::npos);

    google.clear_faults();
    CHECK(refresh().exit_code == 0);
    CHECK(f.smtp.message_count() == 2);
    notices = receiver.notices();
    REQUIRE(notices.size() == 2);
    CHECK(notices[1]["event"] == "recovered");
    CHECK(notices[1]["failures"] == 3);

    // The episode is in the command's state file, not in --notify-state's.
    struct stat st {};
    CHECK(::stat(f.notify_state.c_str(), &st) != 0);

    for (const auto& file : crmsync::testing::list_files(f.dir.path())) {
        if (file.find("/state/") != std::string::npos ||
            file.find("secrets.json") != std::string::npos) {
            continue;
        }
        const auto text = crmsync::testing::read_file(file);
        INFO(file);
        CHECK(text.find(k_smtp_password) == std::string::npos);
        CHECK(text.find(account.client_secret) == std::string::npos);
        CHECK(text.find(account.refresh_token) == std::string::npos);
    }
    for (const auto& m : f.smtp.messages()) {
        CHECK(m.data.find(account.refresh_token) == std::string::npos);
        CHECK(m.data.find(account.client_secret) == std::string::npos);
    }
}
