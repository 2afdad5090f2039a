#include "lib/notify/notifier.hpp"

#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"
#include "tests/fakes/smtp/smtp_fake.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace crmsync;
using namespace std::chrono_literals;
using notify::Channel;
using notify::Notice;

namespace {

// An HTTP endpoint answering POST /hook with the given statuses in turn (the last repeats).
class HookServer {
public:
    explicit HookServer(std::vector<int> statuses) : m_statuses(std::move(statuses)) {
        m_server.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
            std::lock_guard lock(m_mutex);
            const std::size_t n = m_bodies.size();
            m_bodies.push_back(req.body);
            m_types.push_back(req.get_header_value("Content-Type"));
            res.status = m_statuses[std::min(n, m_statuses.size() - 1)];
            res.set_content("{}", "application/json");
        });
        m_port = m_server.bind_to_any_port("127.0.0.1");
        REQUIRE(m_port > 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(1ms);
        }
    }
    ~HookServer() {
        m_server.stop();
        m_thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/hook"; }
    std::vector<std::string> bodies() const {
        std::lock_guard lock(m_mutex);
        return m_bodies;
    }
    std::string content_type() const {
        std::lock_guard lock(m_mutex);
        return m_types.empty() ? "" : m_types.back();
    }

private:
    std::vector<int> m_statuses;
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<std::string> m_bodies;
    std::vector<std::string> m_types;
};

Notice error_notice() {
    Notice n;
    n.kind = Notice::Kind::error;
    n.command = "db_sync";
    n.job = "2FZFB7ZN993KJBR9 into sqlite://crm.db (tables dfire_*)";
    n.host = "cron-1";
    n.error = "GET /api/campaigns failed: connection refused";
    n.since = "2026-01-01T10:00:00.000Z";
    n.at = "2026-01-01T10:00:00.000Z";
    n.failures = 1;
    return n;
}

} // namespace

TEST_CASE("notify::parse_smtp_url", "[unit]") {
    SECTION("smtp with a user and a port") {
        const auto u = notify::parse_smtp_url("smtp://alerts%40example.com@mail.example.com:2525");
        CHECK_FALSE(u.implicit_tls);
        CHECK(u.user == "alerts@example.com");
        CHECK(u.host == "mail.example.com");
        CHECK(u.port == 2525);
        CHECK_FALSE(u.loopback());
    }
    SECTION("default ports: 587 for smtp, 465 for smtps") {
        CHECK(notify::parse_smtp_url("smtp://relay.example.com").port == 587);
        const auto s = notify::parse_smtp_url("SMTPS://bot@relay.example.com/");
        CHECK(s.implicit_tls);
        CHECK(s.port == 465);
        CHECK(s.user == "bot");
    }
    SECTION("loopback hosts, IPv6 included") {
        CHECK(notify::parse_smtp_url("smtp://127.0.0.1:25").loopback());
        CHECK(notify::parse_smtp_url("smtp://localhost").loopback());
        const auto v6 = notify::parse_smtp_url("smtp://[::1]:2525");
        CHECK(v6.loopback());
        CHECK(v6.port == 2525);
    }
    SECTION("refuses other schemes, missing hosts, bad ports, paths and passwords") {
        CHECK_THROWS_AS(notify::parse_smtp_url("http://mail.example.com"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("mail.example.com"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("smtp://"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("smtp://user@"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("smtp://host:0"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("smtp://host:99999"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("smtp://host:"), Error);
        CHECK_THROWS_AS(notify::parse_smtp_url("smtp://host/path"), Error);
        try {
            notify::parse_smtp_url("smtp://bot:hunter2secret@mail.example.com");
            FAIL("a password in the URL was accepted");
        } catch (const Error& e) {
            CHECK(std::string(e.what()).find("hunter2secret") == std::string::npos);
            CHECK(e.kind() == ErrorKind::usage);
        }
    }
}

TEST_CASE("notify::Notifier texts", "[unit]") {
    SECTION("the subject names the job, the state and the host") {
        CHECK(notify::Notifier::subject(error_notice()) ==
              "crmsync: db_sync 2FZFB7ZN993KJBR9 into sqlite://crm.db (tables dfire_*) failing "
              "on cron-1");
        auto recovered = error_notice();
        recovered.kind = Notice::Kind::recovered;
        recovered.command = "webhook";
        recovered.job = "webhook:CAMP:https://hooks.example.com/x";
        CHECK(notify::Notifier::subject(recovered) ==
              "crmsync: webhook CAMP:https://hooks.example.com/x recovered on cron-1");
    }
    SECTION("the mail has CRLF lines below the SMTP limit and no header injection") {
        notify::NotifierOptions options;
        options.smtp_url = "smtp://127.0.0.1:25";
        options.mail_to = {"ops@example.com", "oncall@example.com"};
        notify::Notifier notifier(options);
        auto n = error_notice();
        n.job = "evil\r\nBcc: victim@example.com";
        n.error = std::string(5000, 'x') + "\nsecond line";
        const std::string message = notifier.mail_message(n);
        const std::string headers = message.substr(0, message.find("\r\n\r\n"));
        CHECK(headers.find("\r\nBcc:") == std::string::npos);
        CHECK(message.find("To: ops@example.com, oncall@example.com\r\n") != std::string::npos);
        CHECK(message.find("From: crmsync <crmsync@") != std::string::npos);
        std::size_t start = 0;
        while (start < message.size()) {
            const auto end = message.find("\r\n", start);
            REQUIRE(end != std::string::npos);
            CHECK(end - start <= 998);
            start = end + 2;
        }
        for (std::size_t i = 0; i < message.size(); ++i) {
            if (message[i] == '\n') {
                REQUIRE(i > 0);
                CHECK(message[i - 1] == '\r');
            }
        }
    }
    SECTION("a non-ASCII subject is MIME-encoded") {
        notify::NotifierOptions options;
        options.smtp_url = "smtp://127.0.0.1:25";
        options.mail_to = {"ops@example.com"};
        auto n = error_notice();
        n.job = "Kampagne Größe";
        const auto message = notify::Notifier(options).mail_message(n);
        CHECK(message.find("Subject: =?UTF-8?B?") != std::string::npos);
    }
    SECTION("registered secrets never reach a text") {
        util::register_secret("sk-notify-secret-123456");
        auto n = error_notice();
        n.error = "refused token sk-notify-secret-123456";
        notify::NotifierOptions options;
        options.smtp_url = "smtp://127.0.0.1:25";
        options.mail_to = {"ops@example.com"};
        CHECK(notify::Notifier(options).mail_message(n).find("sk-notify-secret") ==
              std::string::npos);
        CHECK(notify::Notifier::json_body(n).find("sk-notify-secret") == std::string::npos);
    }
}

TEST_CASE("notify::Notifier sends mail through SMTP", "[unit][http]") {
    fakes::SmtpFakeOptions fake_options;
    fake_options.credentials = fakes::SmtpCredentials{"alerts@example.com", "smtp-pass-9876"};
    fakes::SmtpFake smtp(fake_options);
    const int port = smtp.start();
    notify::NotifierOptions options;
    options.smtp_url = "smtp://alerts%40example.com@127.0.0.1:" + std::to_string(port);
    options.smtp_password = "smtp-pass-9876";
    options.mail_to = {"ops@example.com", "oncall@example.com"};
    options.timeout = 5s;

    SECTION("one message to every recipient, from the SMTP user, with the error in the body") {
        notify::Notifier notifier(options);
        CHECK(notifier.channels() == std::vector<Channel>{Channel::smtp});
        const auto result = notifier.send(error_notice(), Channel::smtp);
        INFO(result.error);
        REQUIRE(result.ok);
        const auto messages = smtp.messages();
        REQUIRE(messages.size() == 1);
        const auto& m = messages[0];
        CHECK(m.auth_user == "alerts@example.com");
        CHECK(m.mail_from == "alerts@example.com");
        CHECK(m.recipients == std::vector<std::string>{"ops@example.com", "oncall@example.com"});
        CHECK(m.subject == notify::Notifier::subject(error_notice()));
        CHECK(m.data.find("connection refused") != std::string::npos);
        CHECK(m.header("Auto-Submitted") == std::optional<std::string>("auto-generated"));
        CHECK(m.header("X-Crmsync-Event") == std::optional<std::string>("error"));
    }
    SECTION("--notify-from sets the sender") {
        options.mail_from = "crmsync@ops.example.com";
        REQUIRE(notify::Notifier(options).send(error_notice(), Channel::smtp).ok);
        CHECK(smtp.messages().at(0).mail_from == "crmsync@ops.example.com");
    }
    SECTION("a wrong password is reported, not retried, and the password is not in the reason") {
        options.smtp_password = "wrong-password-1234";
        util::register_secret(options.smtp_password);
        const auto result = notify::Notifier(options).send(error_notice(), Channel::smtp);
        CHECK_FALSE(result.ok);
        CHECK(result.error.find("wrong-password") == std::string::npos);
        CHECK(smtp.message_count() == 0);
        CHECK(smtp.stats().auth_failures == 1);
    }
    SECTION("a permanent refusal of the data fails at once") {
        smtp.refuse_next({554, "5.7.1 no thanks", fakes::SmtpStage::data, 1});
        const auto result = notify::Notifier(options).send(error_notice(), Channel::smtp);
        CHECK_FALSE(result.ok);
        CHECK(result.error.find("554") != std::string::npos);
        CHECK(smtp.message_count() == 0);
        CHECK(smtp.stats().connections == 1);
    }
    SECTION("a transient refusal is retried") {
        smtp.refuse_next({451, "4.3.0 try later", fakes::SmtpStage::mail_from, 1});
        const auto result = notify::Notifier(options).send(error_notice(), Channel::smtp);
        INFO(result.error);
        CHECK(result.ok);
        CHECK(smtp.message_count() == 1);
    }
    SECTION("an unreachable server fails without throwing") {
        options.smtp_url = "smtp://127.0.0.1:" + std::to_string(crmsync::testing::closed_port());
        options.attempts = 2;
        const auto result = notify::Notifier(options).send(error_notice(), Channel::smtp);
        CHECK_FALSE(result.ok);
        CHECK_FALSE(result.error.empty());
    }
}

TEST_CASE("notify::Notifier posts JSON to a URL", "[unit][http]") {
    SECTION("one POST with the event, job, host and error") {
        HookServer hook({204});
        notify::NotifierOptions options;
        options.url = hook.url();
        notify::Notifier notifier(options);
        CHECK(notifier.channels() == std::vector<Channel>{Channel::url});
        REQUIRE(notifier.send(error_notice(), Channel::url).ok);
        const auto bodies = hook.bodies();
        REQUIRE(bodies.size() == 1);
        CHECK(hook.content_type() == "application/json");
        const auto j = nlohmann::json::parse(bodies[0]);
        CHECK(j["event"] == "error");
        CHECK(j["command"] == "db_sync");
        CHECK(j["host"] == "cron-1");
        CHECK(j["failures"] == 1);
        CHECK(j["error"] == error_notice().error);
        CHECK(j["text"].get<std::string>().find("failing") != std::string::npos);
    }
    SECTION("5xx is retried; 4xx is not") {
        HookServer flaky({503, 200});
        notify::NotifierOptions options;
        options.url = flaky.url();
        CHECK(notify::Notifier(options).send(error_notice(), Channel::url).ok);
        CHECK(flaky.bodies().size() == 2);

        HookServer refusing({404});
        options.url = refusing.url();
        const auto result = notify::Notifier(options).send(error_notice(), Channel::url);
        CHECK_FALSE(result.ok);
        CHECK(result.error == "HTTP 404");
        CHECK(refusing.bodies().size() == 1);
    }
}
