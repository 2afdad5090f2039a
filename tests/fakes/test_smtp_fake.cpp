// Checks the SMTP fake with libcurl's SMTP client (what crmsync's mail notifications use) and
// with a raw socket for the parts of the dialogue libcurl never exercises.

#include "tests/fakes/smtp/smtp_fake.hpp"
#include "tests/support/fake_process.hpp"

#include <catch2/catch.hpp>
#include <curl/curl.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using crmsync::fakes::SmtpCredentials;
using crmsync::fakes::SmtpFake;
using crmsync::fakes::SmtpFakeOptions;
using crmsync::fakes::SmtpRefusal;
using crmsync::fakes::SmtpStage;
using namespace std::chrono_literals;

constexpr long k_timeout_s = 10;

const std::string k_mail = "From: crmsync <sync@example.test>\r\n"
                           "To: ops@example.test\r\n"
                           "Subject: crmsync: sync failed\r\n"
                           " for campaign DEMO\r\n"
                           "\r\n"
                           "Batch 12 could not be written.\r\n"
                           ".leading dot survives\r\n"
                           "..two dots too\r\n";

struct CurlDeleter {
    void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

struct Payload {
    const std::string& text;
    std::size_t offset = 0;
};

std::size_t read_payload(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto& payload = *static_cast<Payload*>(user);
    const auto n = std::min(size * count, payload.text.size() - payload.offset);
    std::memcpy(buffer, payload.text.data() + payload.offset, n);
    payload.offset += n;
    return n;
}

struct MailOptions {
    std::string user;
    std::string password;
    std::string login_options; ///< e.g. "AUTH=LOGIN"
    bool sasl_initial_response = false;
};

struct SendResult {
    CURLcode code = CURLE_OK;
    std::string error;
};

SendResult send_mail(const SmtpFake& fake, const std::vector<std::string>& recipients,
                     const std::string& text = k_mail, const MailOptions& options = {}) {
    static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    REQUIRE(initialised);
    std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
    REQUIRE(curl);
    std::unique_ptr<curl_slist, CurlDeleter> rcpt;
    for (const auto& r : recipients) {
        rcpt.reset(curl_slist_append(rcpt.release(), r.c_str()));
    }
    std::array<char, CURL_ERROR_SIZE> error{};
    Payload payload{text};
    const auto url = fake.url();
    curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error.data());
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_MAIL_FROM, "<sync@example.test>");
    curl_easy_setopt(curl.get(), CURLOPT_MAIL_RCPT, rcpt.get());
    curl_easy_setopt(curl.get(), CURLOPT_READFUNCTION, read_payload);
    curl_easy_setopt(curl.get(), CURLOPT_READDATA, &payload);
    curl_easy_setopt(curl.get(), CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, k_timeout_s);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, k_timeout_s);
    if (!options.user.empty()) {
        curl_easy_setopt(curl.get(), CURLOPT_USERNAME, options.user.c_str());
        curl_easy_setopt(curl.get(), CURLOPT_PASSWORD, options.password.c_str());
    }
    if (!options.login_options.empty()) {
        curl_easy_setopt(curl.get(), CURLOPT_LOGIN_OPTIONS, options.login_options.c_str());
    }
    curl_easy_setopt(curl.get(), CURLOPT_SASL_IR, options.sasl_initial_response ? 1L : 0L);
    const auto code = curl_easy_perform(curl.get());
    return {code, error.data()};
}

// A line-oriented SMTP client on a raw socket.
class RawSession {
public:
    explicit RawSession(int port) : m_fd(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        REQUIRE(::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
        timeval timeout{5, 0};
        ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    }
    ~RawSession() { ::close(m_fd); }
    RawSession(const RawSession&) = delete;
    RawSession& operator=(const RawSession&) = delete;

    /// The next reply, all lines of a multi-line reply included; "" when the server closed.
    std::string reply() {
        std::string out;
        for (;;) {
            const auto line = read_line();
            if (line.empty()) {
                return out;
            }
            out += line;
            if (line.size() < 4 || line[3] != '-') {
                return out;
            }
        }
    }
    std::string command(const std::string& line) {
        send(line + "\r\n");
        return reply();
    }
    void send(const std::string& text) {
        REQUIRE(::send(m_fd, text.data(), text.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(text.size()));
    }

private:
    std::string read_line() {
        std::string line;
        char c = 0;
        while (::recv(m_fd, &c, 1, 0) == 1) {
            line += c;
            if (c == '\n') {
                break;
            }
        }
        return line;
    }
    int m_fd;
};

std::string code_of(const std::string& reply) { return reply.substr(0, 3); }

} // namespace

TEST_CASE("SmtpFake receives mail from libcurl", "[http]") {
    SmtpFake fake;
    fake.start();

    SECTION("records envelope, data and Subject") {
        const auto result = send_mail(fake, {"<ops@example.test>", "<oncall@example.test>"});
        INFO(result.error);
        REQUIRE(result.code == CURLE_OK);
        REQUIRE(fake.wait_for_messages(1, 2s));
        const auto messages = fake.messages();
        REQUIRE(messages.size() == 1);
        const auto& m = messages[0];
        CHECK(m.mail_from == "sync@example.test");
        CHECK(m.recipients == std::vector<std::string>{"ops@example.test", "oncall@example.test"});
        CHECK(m.data == k_mail); // libcurl dot-stuffs the two last lines; the fake unstuffs.
        CHECK(m.subject == "crmsync: sync failed for campaign DEMO");
        CHECK(m.header("to") == "ops@example.test");
        CHECK_FALSE(m.header("cc"));
        CHECK(m.auth_user.empty());
        CHECK_FALSE(m.helo.empty());
        CHECK(fake.stats().accepted == 1);
        CHECK(fake.stats().connections == 1);
    }
    SECTION("keeps messages apart and can forget them") {
        REQUIRE(send_mail(fake, {"<a@example.test>"}).code == CURLE_OK);
        REQUIRE(send_mail(fake, {"<b@example.test>"}, "Subject: second\r\n\r\nx\r\n").code ==
                CURLE_OK);
        REQUIRE(fake.message_count() == 2);
        CHECK(fake.messages()[1].subject == "second");
        fake.clear();
        CHECK(fake.message_count() == 0);
        CHECK(fake.stats().accepted == 2);
    }
    SECTION("refuses the next message after its data, then accepts again") {
        fake.refuse_next({554, "5.7.1 Message refused by the fake", SmtpStage::data, 1});
        CHECK(send_mail(fake, {"<ops@example.test>"}).code != CURLE_OK);
        CHECK(fake.message_count() == 0);
        CHECK(fake.pending_refusals() == 0);
        CHECK(send_mail(fake, {"<ops@example.test>"}).code == CURLE_OK);
        CHECK(fake.message_count() == 1);
        CHECK(fake.stats().refused == 1);
    }
    SECTION("refuses at other stages, 421 closing the connection") {
        fake.refuse_next({421, "4.3.2 Service shutting down", SmtpStage::connect, 1});
        fake.refuse_next({451, "4.3.0 Try again later", SmtpStage::mail_from, 1});
        fake.refuse_next({550, "5.1.1 No such user", SmtpStage::rcpt_to, 1});
        for (int i = 0; i < 3; ++i) {
            CHECK(send_mail(fake, {"<ops@example.test>"}).code != CURLE_OK);
        }
        CHECK(fake.message_count() == 0);
        CHECK(send_mail(fake, {"<ops@example.test>"}).code == CURLE_OK);
        CHECK(fake.stats().refused == 3);
    }
}

TEST_CASE("SmtpFake authenticates with AUTH PLAIN and AUTH LOGIN", "[http]") {
    SmtpFakeOptions options;
    options.credentials = SmtpCredentials{"mailer", "s3cret pass"};
    SmtpFake fake(options);
    fake.start();
    MailOptions good{"mailer", "s3cret pass", "", false};

    SECTION("PLAIN, with and without an initial response") {
        good.login_options = "AUTH=PLAIN";
        REQUIRE(send_mail(fake, {"<ops@example.test>"}, k_mail, good).code == CURLE_OK);
        good.sasl_initial_response = true;
        REQUIRE(send_mail(fake, {"<ops@example.test>"}, k_mail, good).code == CURLE_OK);
        REQUIRE(fake.message_count() == 2);
        CHECK(fake.messages()[0].auth_user == "mailer");
    }
    SECTION("LOGIN, with and without an initial response") {
        good.login_options = "AUTH=LOGIN";
        REQUIRE(send_mail(fake, {"<ops@example.test>"}, k_mail, good).code == CURLE_OK);
        good.sasl_initial_response = true;
        REQUIRE(send_mail(fake, {"<ops@example.test>"}, k_mail, good).code == CURLE_OK);
        CHECK(fake.message_count() == 2);
    }
    SECTION("a wrong password is denied") {
        auto bad = good;
        bad.password = "wrong";
        CHECK(send_mail(fake, {"<ops@example.test>"}, k_mail, bad).code == CURLE_LOGIN_DENIED);
        CHECK(fake.stats().auth_failures == 1);
        CHECK(fake.message_count() == 0);
    }
    SECTION("mail without AUTH is refused") {
        CHECK(send_mail(fake, {"<ops@example.test>"}).code != CURLE_OK);
        CHECK(fake.message_count() == 0);
    }
}

TEST_CASE("SmtpFake speaks RFC 5321 to a raw client", "[http]") {
    SmtpFakeOptions options;
    options.hostname = "fake.test";
    SmtpFake fake(options);
    const int port = fake.start();
    RawSession s(port);

    CHECK(s.reply().starts_with("220 fake.test"));
    CHECK(code_of(s.command("MAIL FROM:<a@b>")) == "503");
    const auto ehlo = s.command("EHLO client.test");
    CHECK(ehlo.starts_with("250-fake.test"));
    CHECK(ehlo.find("SIZE") != std::string::npos);
    CHECK(ehlo.find("AUTH") == std::string::npos);
    CHECK(code_of(s.command("AUTH PLAIN")) == "503");
    CHECK(code_of(s.command("STARTTLS")) == "454");
    CHECK(code_of(s.command("FROB")) == "500");
    CHECK(code_of(s.command("NOOP")) == "250");
    CHECK(code_of(s.command("RCPT TO:<x@y>")) == "503");
    CHECK(code_of(s.command("MAIL FROM:<>")) == "250");
    CHECK(code_of(s.command("MAIL FROM:<a@b>")) == "503");
    CHECK(code_of(s.command("DATA")) == "503");
    CHECK(code_of(s.command("RCPT TO:<>")) == "501");
    CHECK(code_of(s.command("rcpt to: <x@y> NOTIFY=NEVER")) == "250");
    CHECK(code_of(s.command("RSET")) == "250");
    CHECK(code_of(s.command("DATA")) == "503");
    CHECK(code_of(s.command("HELO again")) == "250");
    CHECK(code_of(s.command("MAIL FROM:<a@b> SIZE=99999999999")) == "552");
    CHECK(code_of(s.command("MAIL FROM:<a@b> BODY=8BITMIME")) == "250");
    CHECK(code_of(s.command("RCPT TO:<x@y>")) == "250");
    CHECK(code_of(s.command("DATA")) == "354");
    s.send("Subject: raw\r\n\r\n..\r\n...x\r\nend\r\n.\r\n");
    CHECK(code_of(s.reply()) == "250");
    CHECK(code_of(s.command("QUIT")) == "221");
    CHECK(s.reply().empty());

    REQUIRE(fake.message_count() == 1);
    const auto m = fake.messages()[0];
    CHECK(m.mail_from == "a@b");
    CHECK(m.recipients == std::vector<std::string>{"x@y"});
    CHECK(m.data == "Subject: raw\r\n\r\n.\r\n..x\r\nend\r\n");
    CHECK(m.helo == "again");
}

TEST_CASE("SmtpFake stops with open connections", "[http]") {
    SmtpFake fake;
    const int port = fake.start();
    RawSession idle(port);
    CHECK(idle.reply().starts_with("220"));
    const auto start = std::chrono::steady_clock::now();
    fake.stop();
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(idle.reply().empty());
}

TEST_CASE("SmtpFake serves control endpoints", "[http]") {
    SmtpFake fake;
    fake.start();
    const int control_port = fake.start_control();
    httplib::Client control("http://127.0.0.1:" + std::to_string(control_port));
    control.set_read_timeout(5s);

    CHECK(control
              .Post("/_fake/refuse", R"({"stage":"data","code":554,"count":1})", "application/json")
              ->status == 200);
    CHECK(send_mail(fake, {"<ops@example.test>"}).code != CURLE_OK);
    CHECK(send_mail(fake, {"<ops@example.test>"}).code == CURLE_OK);
    const auto messages = nlohmann::json::parse(control.Get("/_fake/messages")->body);
    REQUIRE(messages.size() == 1);
    CHECK(messages[0]["subject"] == "crmsync: sync failed for campaign DEMO");
    const auto stats = nlohmann::json::parse(control.Get("/_fake/stats")->body);
    CHECK(stats["refused"] == 1);
    CHECK(stats["accepted"] == 1);
    CHECK(control.Post("/_fake/refuse", R"({"stage":"later"})", "application/json")->status == 400);
    CHECK(control.Delete("/_fake/messages")->status == 200);
    CHECK(fake.message_count() == 0);
}

#ifdef CRMSYNC_SMTP_FAKE_BINARY
TEST_CASE("smtp_fake runs as a process and exits cleanly on SIGTERM", "[http]") {
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    const auto control_file = process.path("control");
    process.start(CRMSYNC_SMTP_FAKE_BINARY,
                  {"--port", "0", "--port-file", port_file, "--control-port-file", control_file});
    const int port = process.wait_for_port(port_file, 10s);
    const int control_port = process.wait_for_port(control_file, 1s);
    RawSession s(port);
    CHECK(s.reply().starts_with("220"));
    CHECK(code_of(s.command("QUIT")) == "221");
    httplib::Client control("http://127.0.0.1:" + std::to_string(control_port));
    CHECK(nlohmann::json::parse(control.Get("/_fake/stats")->body)["connections"] == 1);
    CHECK(process.terminate(10s) == 0);
}
#endif
