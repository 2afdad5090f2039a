// Checks the webhook receiver fake with a real HTTP client on loopback: recording, Standard
// Webhooks signatures, failure modes, delivery counting, control endpoints and the executable.

#include "tests/fakes/common/base64.hpp"
#include "tests/fakes/webhook_receiver/webhook_receiver.hpp"
#include "tests/fakes/webhook_receiver/webhook_signature.hpp"
#include "tests/support/fake_process.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

using crmsync::fakes::FaultKind;
using crmsync::fakes::SignatureCheck;
using crmsync::fakes::WebhookReceiver;
using crmsync::fakes::WebhookReceiverOptions;
using nlohmann::json;
using namespace std::chrono_literals;

// The reference vector of the Standard Webhooks test suites.
constexpr const char* k_vector_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* k_vector_id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t k_vector_timestamp = 1614265330;
constexpr const char* k_vector_body = R"({"test": 2432232314})";
constexpr const char* k_vector_signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// The dbsync2 payload (reference dbsync2.md §4.5).
const json k_payload = {
    {"contact", {{"$id", "C1"}, {"firstname", "Ann"}}},
    {"transaction", {{"fired", "2024-05-05T05:05:05.000Z"}, {"connections", json::array()}}},
    {"state", "new"}};

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

httplib::Client client_for(const std::string& base_url,
                           std::chrono::milliseconds read_timeout = 5s) {
    httplib::Client client(base_url);
    client.set_connection_timeout(2s);
    client.set_read_timeout(read_timeout);
    return client;
}

httplib::Result post(httplib::Client& client, const std::string& path, const std::string& body,
                     const std::string& id = "", std::optional<std::string> signature = {},
                     std::int64_t timestamp = unix_now()) {
    httplib::Headers headers;
    if (!id.empty()) {
        headers.emplace("webhook-id", id);
        headers.emplace("webhook-timestamp", std::to_string(timestamp));
    }
    if (signature) {
        headers.emplace("webhook-signature", *signature);
    }
    return client.Post(path.c_str(), headers, body, "application/json");
}

// A signed delivery of `body` as a Standard Webhooks sender would post it.
httplib::Result post_signed(httplib::Client& client, const std::string& secret,
                            const std::string& id, const std::string& body) {
    const auto now = unix_now();
    return post(client, "/hook", body, id, crmsync::fakes::sign_webhook(secret, id, now, body),
                now);
}

// Sends `request` as is and returns everything the server answers until it closes.
std::string raw_http(int port, const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
        timeval timeout{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        std::array<char, 4096> buffer{};
        for (ssize_t n = 0; (n = ::recv(fd, buffer.data(), buffer.size(), 0)) > 0;) {
            reply.append(buffer.data(), static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return reply;
}

} // namespace

TEST_CASE("base64 round trips and rejects bad input", "[unit]") {
    using crmsync::fakes::base64_decode;
    using crmsync::fakes::base64_encode;
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_decode("Zg==") == "f");
    CHECK(base64_decode("Zm8") == "fo");
    CHECK(base64_decode(std::string("AHVzZXIAcGFzcw==")) == std::string("\0user\0pass", 10));
    CHECK_FALSE(base64_decode("Zm9v!"));
    CHECK_FALSE(base64_decode("Z"));
    CHECK_FALSE(base64_decode("Zg="));
    CHECK_FALSE(base64_decode("Zm9v===="));
}

TEST_CASE("Standard Webhooks signatures match the reference vector", "[unit]") {
    using crmsync::fakes::sign_webhook;
    using crmsync::fakes::verify_webhook;
    using crmsync::fakes::webhook_key;
    CHECK(sign_webhook(k_vector_secret, k_vector_id, k_vector_timestamp, k_vector_body) ==
          k_vector_signature);
    const auto key = webhook_key(k_vector_secret);
    const auto ts = std::to_string(k_vector_timestamp);
    CHECK(verify_webhook(key, k_vector_id, ts, k_vector_signature, k_vector_body,
                         k_vector_timestamp, 300s) == SignatureCheck::valid);
    SECTION("rejects a changed body, id or timestamp") {
        CHECK(verify_webhook(key, k_vector_id, ts, k_vector_signature, R"({"test": 2432232315})",
                             k_vector_timestamp, 300s) == SignatureCheck::mismatch);
        CHECK(verify_webhook(key, "msg_other", ts, k_vector_signature, k_vector_body,
                             k_vector_timestamp, 300s) == SignatureCheck::mismatch);
        CHECK(verify_webhook(key, k_vector_id, "1614265331", k_vector_signature, k_vector_body,
                             k_vector_timestamp, 300s) == SignatureCheck::mismatch);
    }
    SECTION("accepts any matching entry of a space-separated list") {
        const std::string list =
            std::string("v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw== ") +
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + k_vector_signature;
        CHECK(verify_webhook(key, k_vector_id, ts, list, k_vector_body, k_vector_timestamp, 300s) ==
              SignatureCheck::valid);
    }
    SECTION("checks the timestamp window only when asked") {
        CHECK(verify_webhook(key, k_vector_id, ts, k_vector_signature, k_vector_body,
                             k_vector_timestamp + 301, 300s) == SignatureCheck::bad_timestamp);
        CHECK(verify_webhook(key, k_vector_id, ts, k_vector_signature, k_vector_body,
                             k_vector_timestamp - 301, 300s) == SignatureCheck::bad_timestamp);
        CHECK(verify_webhook(key, k_vector_id, ts, k_vector_signature, k_vector_body,
                             k_vector_timestamp + 86'400, 0s) == SignatureCheck::valid);
        CHECK(verify_webhook(key, k_vector_id, "16142653x0", k_vector_signature, k_vector_body,
                             k_vector_timestamp, 0s) == SignatureCheck::bad_timestamp);
    }
    SECTION("uses a secret without whsec_ as raw bytes") {
        const auto raw = sign_webhook("plain secret", "id1", 5, "{}");
        CHECK(verify_webhook("plain secret", std::string("id1"), std::string("5"), raw, "{}", 5,
                             0s) == SignatureCheck::valid);
        CHECK(verify_webhook(webhook_key(k_vector_secret), std::string("id1"), std::string("5"),
                             raw, "{}", 5, 0s) == SignatureCheck::mismatch);
    }
    CHECK_THROWS_AS(webhook_key("whsec_not base64!"), std::invalid_argument);
    CHECK(verify_webhook(key, std::nullopt, ts, k_vector_signature, k_vector_body,
                         k_vector_timestamp, 300s) == SignatureCheck::missing_headers);
}

TEST_CASE("WebhookReceiver records every request", "[http]") {
    WebhookReceiver receiver;
    receiver.start();
    auto client = client_for(receiver.base_url());

    SECTION("accepts POST on any path with 200 and keeps the body byte for byte") {
        const auto body = k_payload.dump();
        auto res =
            client.Post("/any/path/here?x=1", {{"X-Custom", "Value"}}, body, "application/json");
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->body == "{}");
        const auto records = receiver.requests();
        REQUIRE(records.size() == 1);
        const auto& r = records[0];
        CHECK(r.seq == 1);
        CHECK(r.method == "POST");
        CHECK(r.path == "/any/path/here");
        CHECK(r.query == "x=1");
        CHECK(r.body == body);
        CHECK(json::parse(r.body)["state"] == "new");
        CHECK(r.status == 200);
        CHECK(r.finished);
        CHECK(r.acknowledged());
        CHECK(r.signature == SignatureCheck::not_checked);
        CHECK(r.header("X-CUSTOM") == "Value");
        CHECK(r.header("content-type") == "application/json");
        for (const auto& [name, value] : r.headers) {
            CHECK(std::none_of(name.begin(), name.end(),
                               [](char c) { return c >= 'A' && c <= 'Z'; }));
            CHECK(name != "remote_addr"); // httplib's pseudo headers are not passed on.
        }
        CHECK(std::chrono::abs(r.received_at - std::chrono::system_clock::now()) < 5s);
        CHECK(r.remote_port > 0);
    }
    SECTION("accepts a body without Content-Type, as dbsync2 sends it") {
        // httplib's client always adds a Content-Type, so this request is written by hand.
        const auto body = k_payload.dump();
        const auto reply = raw_http(receiver.port(), "POST /dbsync2 HTTP/1.1\r\nHost: x\r\n"
                                                     "Content-Length: " +
                                                         std::to_string(body.size()) +
                                                         "\r\nConnection: close\r\n\r\n" + body);
        CHECK(reply.starts_with("HTTP/1.1 200"));
        CHECK(receiver.requests().at(0).body == body);
        CHECK_FALSE(receiver.requests().at(0).header("content-type"));
    }
    SECTION("answers other methods 405 and records them") {
        auto res = client.Get("/hook");
        REQUIRE(res);
        CHECK(res->status == 405);
        CHECK(receiver.requests().at(0).method == "GET");
        CHECK(receiver.requests().at(0).status == 405);
    }
    SECTION("records concurrent deliveries without losing any") {
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&receiver, t] {
                auto c = client_for(receiver.base_url());
                for (int i = 0; i < 25; ++i) {
                    post(c, "/hook", "{}", "id-" + std::to_string(t) + "-" + std::to_string(i));
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        CHECK(receiver.request_count() == 100);
        CHECK(receiver.distinct_ids().size() == 100);
        CHECK(receiver.acknowledged_ids().size() == 100);
    }
}

TEST_CASE("WebhookReceiver verifies Standard Webhooks signatures", "[http]") {
    const std::string secret =
        "whsec_" + crmsync::fakes::base64_encode("0123456789abcdef0123456789");
    WebhookReceiverOptions options;
    options.secret = secret;
    WebhookReceiver receiver(options);
    receiver.start();
    auto client = client_for(receiver.base_url());
    const auto body = k_payload.dump();

    SECTION("a valid signature is answered 200") {
        auto res = post_signed(client, secret, "msg_1", body);
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(receiver.requests().at(0).signature == SignatureCheck::valid);
        CHECK(receiver.requests().at(0).id == "msg_1");
    }
    SECTION("a wrong signature is answered 401 and recorded as mismatch") {
        auto res = post_signed(client, "whsec_" + crmsync::fakes::base64_encode("other key"),
                               "msg_1", body);
        REQUIRE(res);
        CHECK(res->status == 401);
        CHECK(json::parse(res->body)["error"] == "invalid_signature");
        CHECK(receiver.requests().at(0).signature == SignatureCheck::mismatch);
        CHECK(receiver.acknowledged_ids().empty());
    }
    SECTION("missing headers are answered 401") {
        auto res = post(client, "/hook", body);
        REQUIRE(res);
        CHECK(res->status == 401);
        CHECK(receiver.requests().at(0).signature == SignatureCheck::missing_headers);
    }
    SECTION("a stale timestamp is answered 401 until the receiver's clock agrees") {
        const auto old = unix_now() - 3600;
        const auto signature = crmsync::fakes::sign_webhook(secret, "msg_old", old, body);
        CHECK(post(client, "/hook", body, "msg_old", signature, old)->status == 401);
        CHECK(receiver.requests().at(0).signature == SignatureCheck::bad_timestamp);
        receiver.set_clock_offset(-3600s);
        CHECK(post(client, "/hook", body, "msg_old", signature, old)->status == 200);
    }
    SECTION("the secret can be changed or dropped at any time") {
        receiver.set_secret("raw-secret");
        CHECK(post_signed(client, "raw-secret", "msg_2", body)->status == 200);
        CHECK(post_signed(client, secret, "msg_3", body)->status == 401);
        receiver.set_secret(std::nullopt);
        CHECK(post(client, "/hook", body)->status == 200);
        CHECK(receiver.requests().back().signature == SignatureCheck::not_checked);
    }
}

TEST_CASE("WebhookReceiver failure modes", "[http]") {
    WebhookReceiver receiver;
    const int port = receiver.start();
    auto client = client_for(receiver.base_url());

    SECTION("fails the next N with a status, then answers 200 again") {
        receiver.fail_next(2, 500);
        CHECK(post(client, "/hook", "{}", "a")->status == 500);
        CHECK(post(client, "/hook", "{}", "a")->status == 500);
        CHECK(receiver.pending_faults() == 0);
        CHECK(post(client, "/hook", "{}", "a")->status == 200);
        CHECK(receiver.requests().at(0).fault == FaultKind::status);
    }
    SECTION("429 carries the Retry-After value it was given") {
        for (const std::string value : {"2", "0", "Wed, 21 Oct 2015 07:28:00 GMT"}) {
            receiver.fail_next(1, 429, value);
            auto res = post(client, "/hook", "{}");
            REQUIRE(res);
            CHECK(res->status == 429);
            CHECK(res->get_header_value("Retry-After") == value);
        }
        receiver.fail_next(1, 410);
        CHECK(post(client, "/hook", "{}")->status == 410);
    }
    SECTION("reset: the client gets no response") {
        receiver.reset_next(1);
        auto res = post(client, "/hook", "{}", "r");
        CHECK_FALSE(res);
        const auto r = receiver.requests().at(0);
        CHECK(r.status == 0);
        CHECK(r.finished);
        CHECK(r.fault == FaultKind::reset);
        CHECK(post(client, "/hook", "{}", "r")->status == 200);
    }
    SECTION("slow: a client with a short timeout gives up; the request is recorded on arrival") {
        receiver.set_response_delay(800ms);
        auto impatient = client_for(receiver.base_url(), 200ms);
        const auto start = std::chrono::steady_clock::now();
        auto res = post(impatient, "/hook", "{}", "slow");
        CHECK_FALSE(res);
        CHECK(std::chrono::steady_clock::now() - start < 700ms);
        REQUIRE(receiver.request_count() == 1);
        CHECK_FALSE(receiver.requests().at(0).finished);
        CHECK(receiver.wait_for_requests(1, 3s));
        CHECK(receiver.requests().at(0).status == 200);
        receiver.set_response_delay(0ms);
        receiver.slow_next(1, 300ms);
        const auto slow_start = std::chrono::steady_clock::now();
        CHECK(post(client, "/hook", "{}")->status == 200);
        CHECK(std::chrono::steady_clock::now() - slow_start >= 300ms);
    }
    SECTION("down: connections are refused until it comes up on the same port") {
        receiver.go_down();
        CHECK_FALSE(receiver.is_up());
        auto res = post(client, "/hook", "{}", "d");
        REQUIRE_FALSE(res);
        CHECK(res.error() == httplib::Error::Connection);
        CHECK(receiver.request_count() == 0);
        receiver.come_up();
        CHECK(receiver.is_up());
        CHECK(receiver.port() == port);
        CHECK(post(client, "/hook", "{}", "d")->status == 200);
    }
    SECTION("down for a while comes back by itself") {
        receiver.go_down_for(300ms);
        CHECK_FALSE(post(client, "/hook", "{}"));
        const auto deadline = std::chrono::steady_clock::now() + 3s;
        while (!receiver.is_up() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
        }
        CHECK(post(client, "/hook", "{}")->status == 200);
    }
    SECTION("going down resets requests that are still sleeping") {
        receiver.set_response_delay(5s);
        std::thread sender([&] {
            auto c = client_for(receiver.base_url(), 10s);
            CHECK_FALSE(post(c, "/hook", "{}", "cut"));
        });
        while (receiver.request_count() == 0) {
            std::this_thread::sleep_for(5ms);
        }
        const auto start = std::chrono::steady_clock::now();
        receiver.go_down();
        sender.join();
        CHECK(std::chrono::steady_clock::now() - start < 2s);
        CHECK(receiver.requests().at(0).status == 0);
        CHECK(receiver.requests().at(0).finished);
    }
    SECTION("restore brings back plain 200") {
        receiver.fail_next(5, 503);
        receiver.set_response_delay(2s);
        receiver.go_down();
        receiver.restore();
        CHECK(receiver.is_up());
        CHECK(receiver.pending_faults() == 0);
        CHECK(post(client, "/hook", "{}")->status == 200);
    }
}

TEST_CASE("WebhookReceiver counts deliveries by id", "[http]") {
    WebhookReceiver receiver;
    receiver.start();
    auto client = client_for(receiver.base_url());

    receiver.fail_next(1, 500);
    CHECK(post(client, "/hook", "{}", "A")->status == 500);
    CHECK(post(client, "/hook", "{}", "A")->status == 200);
    CHECK(post(client, "/hook", "{}", "B")->status == 200);
    CHECK(post(client, "/hook", "{}", "B")->status == 200);
    CHECK(post(client, "/hook", "{}")->status == 200); // No id: not counted by id.

    CHECK(receiver.distinct_ids() == std::vector<std::string>{"A", "B"});
    CHECK(receiver.count_by_id("A") == 2);
    CHECK(receiver.count_by_id("C") == 0);
    const auto acknowledged = receiver.acknowledged_ids();
    CHECK(acknowledged == std::map<std::string, std::size_t>{{"A", 1}, {"B", 2}});
    CHECK(receiver.wait_for_acknowledged(2, 100ms));
    CHECK_FALSE(receiver.wait_for_acknowledged(3, 50ms));

    receiver.clear();
    CHECK(receiver.request_count() == 0);
    CHECK(post(client, "/hook", "{}", "C")->status == 200);
    CHECK(receiver.requests().at(0).seq == 6);

    SECTION("the id header is configurable") {
        WebhookReceiverOptions options;
        options.id_header = "Idempotency-Key";
        WebhookReceiver other(options);
        other.start();
        auto c = client_for(other.base_url());
        c.Post("/", {{"Idempotency-Key", "K1"}}, "{}", "application/json");
        CHECK(other.distinct_ids() == std::vector<std::string>{"K1"});
    }
}

TEST_CASE("WebhookReceiver control endpoints", "[http]") {
    WebhookReceiver receiver;
    receiver.start();
    const int control_port = receiver.start_control();
    auto client = client_for(receiver.base_url());
    auto control = client_for("http://127.0.0.1:" + std::to_string(control_port));

    REQUIRE(control
                .Post("/_fake/faults", R"({"kind":"status","status":503,"count":1})",
                      "application/json")
                ->status == 200);
    CHECK(post(client, "/hook", "{}", "x")->status == 503);
    CHECK(post(client, "/hook", "{}", "x")->status == 200);

    CHECK(control.Post("/_fake/down", "", "")->status == 200);
    CHECK_FALSE(post(client, "/hook", "{}"));
    CHECK(json::parse(control.Get("/_fake/stats")->body)["up"] == false);
    CHECK(control.Post("/_fake/up", "", "")->status == 200);
    CHECK(post(client, "/hook", "{}", "y")->status == 200);

    const auto stats = json::parse(control.Get("/_fake/stats")->body);
    CHECK(stats["total"] == 3);
    CHECK(stats["by_status"]["503"] == 1);
    CHECK(stats["acknowledged_ids"] == 2);
    const auto listed = json::parse(control.Get("/_fake/requests?limit=2")->body);
    REQUIRE(listed.size() == 2);
    CHECK(listed[1]["id"] == "y");
    const auto ids = json::parse(control.Get("/_fake/ids")->body);
    CHECK(ids["count"]["x"] == 2);
    CHECK(ids["acknowledged"]["x"] == 1);

    CHECK(control.Post("/_fake/secret", R"({"secret":"s3"})", "application/json")->status == 200);
    CHECK(post(client, "/hook", "{}")->status == 401);
    CHECK(control.Post("/_fake/faults", R"({"kind":"explode"})", "application/json")->status ==
          400);
    CHECK(control.Delete("/_fake/requests")->status == 200);
    CHECK(receiver.request_count() == 0);
}

#ifdef CRMSYNC_WEBHOOK_RECEIVER_BINARY
TEST_CASE("webhook_receiver runs as a process and exits cleanly on SIGTERM", "[http]") {
    crmsync::testing::FakeProcess process;
    const auto port_file = process.path("port");
    const auto control_file = process.path("control");
    process.start(CRMSYNC_WEBHOOK_RECEIVER_BINARY,
                  {"--port", "0", "--port-file", port_file, "--control-port-file", control_file,
                   "--secret", "raw"});
    const int port = process.wait_for_port(port_file, 10s);
    const int control_port = process.wait_for_port(control_file, 1s);
    auto client = client_for("http://127.0.0.1:" + std::to_string(port));
    CHECK(post_signed(client, "raw", "p1", "{}")->status == 200);
    CHECK(post(client, "/hook", "{}")->status == 401);
    auto control = client_for("http://127.0.0.1:" + std::to_string(control_port));
    CHECK(json::parse(control.Get("/_fake/stats")->body)["total"] == 2);
    CHECK(process.terminate(10s) == 0);
    CHECK(process.output().find("webhook_receiver: stopped") != std::string::npos);
}
#endif
