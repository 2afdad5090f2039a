#include "lib/core/clock.hpp"
#include "lib/core/error.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/util/time.hpp"
#include "tests/support/ports.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using crmsync::Clock;
using crmsync::Error;
using crmsync::ErrorKind;
namespace http = crmsync::http;
namespace util = crmsync::util;

namespace {

// A real HTTP server on 127.0.0.1 whose one route answers from a script: the n-th request
// (counting from 0) gets respond(n, request, response). Bodies are recorded.
class ScriptedServer {
public:
    using Respond = std::function<void(int, const httplib::Request&, httplib::Response&)>;

    explicit ScriptedServer(Respond respond) : m_respond(std::move(respond)) {
        const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
            int n = 0;
            {
                std::lock_guard lock(m_mutex);
                n = static_cast<int>(m_bodies.size());
                m_bodies.push_back(req.body);
            }
            m_respond(n, req, res);
        };
        m_server.Get("/x", handler);
        m_server.Post("/x", handler);
        m_port = m_server.bind_to_any_port("127.0.0.1");
        REQUIRE(m_port > 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(1ms);
        }
    }
    ~ScriptedServer() {
        m_server.stop();
        m_thread.join();
    }

    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/x"; }
    int requests() const {
        std::lock_guard lock(m_mutex);
        return static_cast<int>(m_bodies.size());
    }
    std::vector<std::string> bodies() const {
        std::lock_guard lock(m_mutex);
        return m_bodies;
    }

private:
    Respond m_respond;
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<std::string> m_bodies;
};

http::RetryPolicy fast_policy(int attempts = 5) {
    http::RetryPolicy p;
    p.max_attempts = attempts;
    p.base_delay = 10ms;
    p.max_delay = 50ms;
    return p;
}

// A clock that records the waits instead of sleeping.
struct RecordingClock {
    Clock clock;
    std::vector<std::chrono::milliseconds> sleeps;
    RecordingClock() {
        clock.sleep_for = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
    }
    std::chrono::milliseconds total() const {
        std::chrono::milliseconds sum{0};
        for (auto d : sleeps) {
            sum += d;
        }
        return sum;
    }
};

// The kind of the crmsync::Error that `f` throws; nullopt (shown as {?}) when it returns.
std::optional<ErrorKind> kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.kind();
    }
    return std::nullopt;
}

http::HttpRequest get(const std::string& url) {
    http::HttpRequest r;
    r.url = url;
    r.timeout = 10'000ms;
    return r;
}

} // namespace

// Each section makes its client after its server, so the client (and its keep-alive
// connection) goes first and the server stops at once.
TEST_CASE("http::send_with_retry", "[http]") {
    http::RetryStats stats;

    SECTION("retries a 503 twice, then returns the 200") {
        ScriptedServer server([](int n, const httplib::Request&, httplib::Response& res) {
            res.status = n < 2 ? 503 : 200;
            res.set_content(n < 2 ? "busy" : "{\"ok\":true}", "application/json");
        });
        http::HttpClient client;
        const auto policy = fast_policy();
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
        const auto response = http::send_with_retry(client, get(server.url()), ctx);
        CHECK(response.status == 200);
        CHECK(response.body == "{\"ok\":true}");
        CHECK(stats.retries == 2);
        CHECK(server.requests() == 3);
    }
    SECTION("waits about a second on 429 with Retry-After: 1") {
        ScriptedServer server([](int n, const httplib::Request&, httplib::Response& res) {
            if (n == 0) {
                res.status = 429;
                res.set_header("Retry-After", "1");
            } else {
                res.status = 200;
            }
        });
        http::HttpClient client;
        const auto policy = fast_policy();
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
        const auto start = std::chrono::steady_clock::now();
        const auto response = http::send_with_retry(client, get(server.url()), ctx);
        const auto waited = std::chrono::steady_clock::now() - start;
        CHECK(response.status == 200);
        CHECK(waited >= 900ms);
        CHECK(server.requests() == 2);
    }
    SECTION("Retry-After: 0 falls back to the bounded backoff, never a hot loop") {
        ScriptedServer server([](int, const httplib::Request&, httplib::Response& res) {
            res.status = 429;
            res.set_header("Retry-After", "0");
        });
        http::HttpClient client;
        RecordingClock rc;
        const auto policy = fast_policy(4);
        const http::RetryContext ctx{policy, stats, rc.clock, std::nullopt, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
              ErrorKind::connection);
        CHECK(server.requests() == 4);
        CHECK(stats.retries == 3);
        for (auto d : rc.sleeps) {
            CHECK(d <= policy.max_delay);
        }
    }
    SECTION("an HTTP-date Retry-After is measured against the server's Date header") {
        ScriptedServer server([](int n, const httplib::Request&, httplib::Response& res) {
            if (n == 0) {
                res.status = 503;
                res.set_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
                res.set_header("Retry-After", "Sun, 06 Nov 1994 08:49:39 GMT");
            } else {
                res.status = 200;
            }
        });
        http::HttpClient client;
        RecordingClock rc;
        const auto policy = fast_policy();
        const http::RetryContext ctx{policy, stats, rc.clock, std::nullopt, "GET /x"};
        CHECK(http::send_with_retry(client, get(server.url()), ctx).status == 200);
        CHECK(rc.total() == 2000ms);
        CHECK(server.requests() == 2);
    }
    SECTION("a Retry-After beyond max_retry_after fails at once with a connection error") {
        ScriptedServer server([](int, const httplib::Request&, httplib::Response& res) {
            res.status = 503;
            res.set_header("Retry-After", "3600");
        });
        http::HttpClient client;
        RecordingClock rc;
        auto policy = fast_policy();
        policy.max_retry_after = 60'000ms;
        const http::RetryContext ctx{policy, stats, rc.clock, std::nullopt, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
              ErrorKind::connection);
        CHECK(server.requests() == 1);
        CHECK(rc.sleeps.empty());
    }
    SECTION("404 fails at once with a usage error after exactly one request") {
        ScriptedServer server([](int, const httplib::Request&, httplib::Response& res) {
            res.status = 404;
            res.set_content("{\"error\":\"no such campaign\"}", "application/json");
        });
        http::HttpClient client;
        const auto policy = fast_policy();
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
              ErrorKind::usage);
        CHECK(server.requests() == 1);
        CHECK(stats.retries == 0);
    }
    SECTION("401 and 403 fail at once with an auth error after one request") {
        for (int status : {401, 403}) {
            INFO(status);
            ScriptedServer server([status](int, const httplib::Request&, httplib::Response& res) {
                res.status = status;
            });
            http::HttpClient client;
            const auto policy = fast_policy();
            const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
            CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
                  ErrorKind::auth);
            CHECK(server.requests() == 1);
        }
        CHECK(stats.retries == 0);
    }
    SECTION("gives up with a connection error when max_attempts are used up") {
        ScriptedServer server(
            [](int, const httplib::Request&, httplib::Response& res) { res.status = 500; });
        http::HttpClient client;
        const auto policy = fast_policy(3);
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
              ErrorKind::connection);
        CHECK(server.requests() == 3);
        CHECK(stats.retries == 2);
    }
    SECTION("retries a refused connection, then fails with a connection error") {
        const std::string url =
            "http://127.0.0.1:" + std::to_string(crmsync::testing::closed_port()) + "/x";
        http::HttpClient client;
        const auto policy = fast_policy(3);
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(url), ctx); }) ==
              ErrorKind::connection);
        CHECK(stats.retries == 2);
    }
    SECTION("retries a 2xx whose body the BodyCheck refuses") {
        ScriptedServer server([](int n, const httplib::Request&, httplib::Response& res) {
            res.status = 200;
            res.set_content(n == 0 ? "{\"trunc" : "{}", "application/json");
        });
        http::HttpClient client;
        const auto policy = fast_policy();
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "GET /x"};
        const auto response =
            http::send_with_retry(client, get(server.url()), ctx,
                                  [](const http::HttpResponse& r) { return r.body == "{}"; });
        CHECK(response.body == "{}");
        CHECK(server.requests() == 2);
        CHECK(stats.retries == 1);
    }
    SECTION("a POST body arrives whole on every retry") {
        ScriptedServer server([](int n, const httplib::Request&, httplib::Response& res) {
            res.status = n < 2 ? 503 : 200;
        });
        http::HttpClient client;
        std::string body = "[";
        for (int i = 0; i < 2000; ++i) {
            body += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
        }
        body += "]";
        http::HttpRequest request = get(server.url());
        request.method = "POST";
        request.body = body;
        request.headers = {{"Content-Type", "application/json"}};
        const auto policy = fast_policy();
        const http::RetryContext ctx{policy, stats, Clock::real(), std::nullopt, "POST /x"};
        CHECK(http::send_with_retry(client, request, ctx).status == 200);
        const auto bodies = server.bodies();
        REQUIRE(bodies.size() == 3);
        for (const auto& b : bodies) {
            CHECK(b == body);
        }
    }
    SECTION("the deadline stops the retries with a connection error") {
        ScriptedServer server(
            [](int, const httplib::Request&, httplib::Response& res) { res.status = 503; });
        http::HttpClient client;
        auto policy = fast_policy(1000);
        policy.max_delay = 200ms;
        const auto deadline = std::chrono::steady_clock::now() + 100ms;
        const http::RetryContext ctx{policy, stats, Clock::real(), deadline, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
              ErrorKind::connection);
        CHECK(server.requests() < 1000);
    }
    SECTION("no attempt starts after the deadline") {
        ScriptedServer server(
            [](int, const httplib::Request&, httplib::Response& res) { res.status = 200; });
        http::HttpClient client;
        const auto policy = fast_policy();
        const auto deadline = std::chrono::steady_clock::now() - 1s;
        const http::RetryContext ctx{policy, stats, Clock::real(), deadline, "GET /x"};
        CHECK(kind_of([&] { http::send_with_retry(client, get(server.url()), ctx); }) ==
              ErrorKind::connection);
        CHECK(server.requests() == 0);
    }
}

TEST_CASE("http::RetryPolicy::backoff", "[unit][http]") {
    http::RetryPolicy policy;
    policy.base_delay = 10ms;
    policy.max_delay = 1000ms;

    SECTION("stays within [0, min(cap, base * 2^(attempt-1))]") {
        for (int attempt = 1; attempt <= 12; ++attempt) {
            const long long ceiling = std::min<long long>(1000, 10LL << (attempt - 1));
            for (int i = 0; i < 200; ++i) {
                const auto d = policy.backoff(attempt).count();
                INFO("attempt " << attempt << " delay " << d);
                CHECK(d >= 0);
                CHECK(d <= ceiling);
            }
        }
    }
    SECTION("is jittered, not a constant") {
        std::set<long long> seen;
        for (int i = 0; i < 200; ++i) {
            seen.insert(policy.backoff(6).count());
        }
        CHECK(seen.size() > 10);
    }
    SECTION("does not overflow for huge attempt numbers") {
        for (int attempt : {31, 63, 64, 1000, 1 << 30}) {
            const auto d = policy.backoff(attempt).count();
            CHECK(d >= 0);
            CHECK(d <= 1000);
        }
    }
}

TEST_CASE("http::RetryPolicy::retry_after", "[unit][http]") {
    const auto now = *util::parse_iso8601("1994-11-06T08:49:30Z");
    const auto with = [](std::map<std::string, std::string> headers) {
        http::HttpResponse r;
        r.status = 503;
        r.headers = std::move(headers);
        return r;
    };

    SECTION("reads delay-seconds") {
        CHECK(http::RetryPolicy::retry_after(with({{"retry-after", "5"}}), now) == 5000ms);
        CHECK(http::RetryPolicy::retry_after(with({{"retry-after", "120"}}), now) == 120'000ms);
    }
    SECTION("absent, zero, negative or malformed values give nullopt") {
        CHECK_FALSE(http::RetryPolicy::retry_after(with({}), now).has_value());
        for (const char* v : {"", "0", "-1", "abc", "1.5", "5s"}) {
            INFO(v);
            CHECK_FALSE(
                http::RetryPolicy::retry_after(with({{"retry-after", v}}), now).has_value());
        }
    }
    SECTION("an HTTP date is measured against now when there is no Date header") {
        CHECK(http::RetryPolicy::retry_after(
                  with({{"retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"}}), now) == 7000ms);
    }
    SECTION("an HTTP date is measured against the Date header when present") {
        CHECK(http::RetryPolicy::retry_after(with({{"retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"},
                                                   {"date", "Sun, 06 Nov 1994 08:49:36 GMT"}}),
                                             now) == 1000ms);
    }
    SECTION("a huge delay-seconds is cut to the longest wait, never overflowing") {
        for (const char* v : {"99999999999999999999", "9223372036854775807", "9223372036854775",
                              "86400", "31536000"}) {
            INFO(v);
            CHECK(http::RetryPolicy::retry_after(with({{"retry-after", v}}), now) ==
                  http::RetryPolicy::k_longest_retry_after);
        }
        CHECK(http::RetryPolicy::retry_after(with({{"retry-after", "86399"}}), now) ==
              86'399'000ms);
    }
    SECTION("negative or garbage huge values give nullopt") {
        for (const char* v : {"-99999999999999999999", "-9223372036854775808", "99999999999x",
                              "1e30", "+5", " 5"}) {
            INFO(v);
            CHECK_FALSE(
                http::RetryPolicy::retry_after(with({{"retry-after", v}}), now).has_value());
        }
    }
    SECTION("an HTTP date far in the future is cut to the longest wait") {
        CHECK(
            http::RetryPolicy::retry_after(with({{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}}),
                                           now) == http::RetryPolicy::k_longest_retry_after);
    }
    SECTION("an HTTP date in the past gives nullopt") {
        CHECK_FALSE(http::RetryPolicy::retry_after(
                        with({{"retry-after", "Sun, 06 Nov 1994 08:49:00 GMT"}}), now)
                        .has_value());
    }
}

TEST_CASE("http::RetryPolicy::is_retryable_status", "[unit][http]") {
    SECTION("408, 425, 429 and 5xx are retried") {
        for (long s : {408L, 425L, 429L, 500L, 502L, 503L, 504L}) {
            INFO(s);
            CHECK(http::RetryPolicy::is_retryable_status(s));
        }
    }
    SECTION("other 4xx are not") {
        for (long s : {400L, 401L, 403L, 404L, 409L, 422L}) {
            INFO(s);
            CHECK_FALSE(http::RetryPolicy::is_retryable_status(s));
        }
    }
}
