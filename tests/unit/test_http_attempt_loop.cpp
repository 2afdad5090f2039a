#include "lib/core/cancel.hpp"
#include "lib/core/clock.hpp"
#include "lib/core/error.hpp"
#include "lib/http/attempt_loop.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using crmsync::Clock;
using crmsync::Error;
using crmsync::ErrorKind;
namespace http = crmsync::http;

namespace {

// A clock that only moves when the code under test sleeps.
struct ManualClock {
    std::chrono::steady_clock::time_point now{};
    Clock clock;
    std::vector<std::chrono::milliseconds> waits; // one per pause() made through pause()

    ManualClock() {
        clock.steady_now = [this] { return now; };
        clock.sleep_for = [this](std::chrono::milliseconds d) { now += d; };
    }
    // attempts.pause(may_repeat), recording how long it waited.
    void pause(http::AttemptLoop& attempts, bool may_repeat = true) {
        const auto before = now;
        attempts.pause(may_repeat);
        waits.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(now - before));
    }
};

http::RetryPolicy policy() {
    http::RetryPolicy p;
    p.max_attempts = 3;
    p.base_delay = 10ms;
    p.max_delay = 40ms;
    p.max_retry_after = 1000ms;
    return p;
}

const http::AttemptLoop::Wording k_wording{"the service", "it may be down", "look it up first",
                                           "its budget is spent", 4};

struct Thrown {
    ErrorKind kind = ErrorKind::internal;
    std::string message;
    std::string hint;
};

template <typename F> Thrown thrown_by(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return {e.kind(), e.what(), e.hint()};
    }
    FAIL("nothing was thrown");
    return {};
}

} // namespace

TEST_CASE("http::AttemptLoop bounds the attempts and waits between them", "[unit]") {
    const auto retry = policy();
    ManualClock manual;
    http::AttemptLoop attempts(retry, manual.clock, std::nullopt, "GET /x", k_wording);

    SECTION("failures count, and the last one says what happened each time") {
        for (int i = 1; i <= 2; ++i) {
            attempts.begin();
            attempts.failed("HTTP 503 #" + std::to_string(i));
            manual.pause(attempts);
        }
        attempts.begin();
        attempts.failed("HTTP 503 #3");
        const auto e = thrown_by([&] { attempts.pause(); });
        CHECK(e.kind == ErrorKind::connection);
        CHECK(e.message == "GET /x failed after 3 attempts; last: HTTP 503 #3");
        CHECK(e.hint == "it may be down");
        CHECK(attempts.attempts() == 3);
        REQUIRE(manual.waits.size() == 2);
        for (const auto wait : manual.waits) {
            CHECK(wait <= 40ms);
        }
    }

    SECTION("a throttled attempt is not counted, and waits what the server asked") {
        for (int i = 0; i < 3; ++i) {
            attempts.begin();
            attempts.throttled("HTTP 429", 250ms);
            CHECK(attempts.last_was_throttled());
            manual.pause(attempts);
            attempts.begin();
            attempts.failed("HTTP 500");
            CHECK_FALSE(attempts.last_was_throttled());
            if (i < 2) {
                manual.pause(attempts);
            }
        }
        CHECK(attempts.attempts() == 3);
        CHECK_THROWS_AS(attempts.pause(), Error);
        const auto& waits = manual.waits;
        REQUIRE(waits.size() == 5);
        CHECK(waits[0] == 250ms);
        CHECK(waits[2] == 250ms);
        CHECK(waits[4] == 250ms);
    }

    SECTION("throttling without Retry-After backs off") {
        attempts.begin();
        attempts.throttled("HTTP 429", std::nullopt);
        manual.pause(attempts);
        REQUIRE(manual.waits.size() == 1);
        CHECK(manual.waits[0] <= 40ms);
    }

    SECTION("throttling goes on only so many times in a row") {
        for (int i = 1; i < 4; ++i) {
            attempts.begin();
            attempts.throttled("HTTP 429 #" + std::to_string(i), 5ms);
            attempts.pause();
        }
        attempts.begin();
        const auto e = thrown_by([&] { attempts.throttled("HTTP 429 #4", 5ms); });
        CHECK(e.kind == ErrorKind::connection);
        CHECK(e.message ==
              "GET /x: the service refused it 4 times in a row over its rate limit; last: "
              "HTTP 429 #4");
        CHECK(e.hint == "its budget is spent");
    }

    SECTION("a failure in between starts the count of throttled answers again") {
        for (int i = 0; i < 2; ++i) {
            for (int t = 0; t < 3; ++t) {
                attempts.begin();
                attempts.throttled("HTTP 429", 5ms);
                attempts.pause();
            }
            attempts.begin();
            attempts.failed("HTTP 502");
            attempts.pause();
        }
        CHECK(attempts.attempts() == 2);
    }

    SECTION("a Retry-After longer than the policy allows is not waited for") {
        attempts.begin();
        const auto e = thrown_by([&] { attempts.throttled("HTTP 429", 2500ms); });
        CHECK(e.kind == ErrorKind::connection);
        CHECK(e.message == "GET /x: the service asks to wait 2 s before the next request "
                           "(HTTP 429)");
        CHECK(e.hint == "its budget is spent");
        CHECK(manual.now == std::chrono::steady_clock::time_point{});
    }

    SECTION("a failure may carry the server's Retry-After: it waits that long and still counts") {
        attempts.begin();
        attempts.failed("HTTP 503", 300ms);
        CHECK_FALSE(attempts.last_was_throttled());
        manual.pause(attempts);
        CHECK(manual.waits == std::vector<std::chrono::milliseconds>{300ms});
        CHECK(attempts.attempts() == 1);
        attempts.begin();
        const auto e = thrown_by([&] { attempts.failed("HTTP 503", 5000ms); });
        CHECK(e.message == "GET /x: the service asks to wait 5 s before the next request "
                           "(HTTP 503)");
    }

    SECTION("answers that are never JSON end in a data error, a mix in a connection error") {
        http::HttpResponse damaged;
        damaged.status = 200;
        damaged.body = "<html>";
        const bool mixed = GENERATE(false, true);
        for (int i = 1; i <= 3; ++i) {
            attempts.begin();
            if (mixed && i == 2) {
                attempts.failed("HTTP 502");
            } else {
                attempts.damaged_body(damaged);
            }
            if (i < 3) {
                manual.pause(attempts);
            }
        }
        const auto e = thrown_by([&] { attempts.pause(); });
        if (mixed) {
            CHECK(e.kind == ErrorKind::connection);
            CHECK(e.message == "GET /x failed after 3 attempts; last: HTTP 200 with a cut-off or "
                               "non-JSON body (6 bytes)");
        } else {
            CHECK(e.kind == ErrorKind::data);
            CHECK(e.message == "GET /x answered 3 time(s) with a body that is not JSON");
        }
    }

    SECTION("an attempt repeated at once (a renewed token) does not count") {
        attempts.begin();
        attempts.repeat_now();
        attempts.begin();
        attempts.failed("HTTP 500");
        CHECK(attempts.attempts() == 1);
        CHECK_FALSE(attempts.spent());
    }

    SECTION("a failed request that may have been carried out is not repeated") {
        attempts.begin();
        attempts.failed("connection reset");
        const auto e = thrown_by([&] { attempts.pause(false); });
        CHECK(e.message == "GET /x: no clear answer (connection reset)");
        CHECK(e.hint == "look it up first");
        CHECK(manual.now == std::chrono::steady_clock::time_point{});
    }

    SECTION("a throttled request is repeated even when a failed one would not be") {
        attempts.begin();
        attempts.throttled("HTTP 429", 20ms);
        manual.pause(attempts, false);
        CHECK(manual.waits == std::vector<std::chrono::milliseconds>{20ms});
    }
}

TEST_CASE("http::AttemptLoop keeps to the time budget and to a stop signal", "[unit]") {
    auto retry = policy();
    retry.max_retry_after = 10s;
    ManualClock manual;
    const auto deadline = manual.now + 1000ms;
    http::AttemptLoop attempts(retry, manual.clock, deadline, "POST /y", k_wording);

    SECTION("no wait reaches past the deadline") {
        attempts.begin();
        attempts.throttled("HTTP 429", 1500ms);
        const auto e = thrown_by([&] { attempts.pause(); });
        CHECK(e.kind == ErrorKind::connection);
        CHECK(e.message == "POST /y: time budget spent while retrying; last: HTTP 429");
        CHECK(manual.now == std::chrono::steady_clock::time_point{});
    }

    SECTION("no attempt starts after the deadline") {
        attempts.begin();
        attempts.failed("HTTP 500");
        manual.now += 1500ms;
        const auto e = thrown_by([&] { attempts.begin(); });
        CHECK(e.kind == ErrorKind::connection);
        CHECK(e.message == "POST /y: time budget spent; last: HTTP 500");
    }

    SECTION("a stop signal ends the loop before an attempt and during a wait") {
        crmsync::stop_flag().store(true);
        const auto before = thrown_by([&] { attempts.begin(); });
        crmsync::stop_flag().store(false);
        CHECK(before.kind == ErrorKind::interrupted);
        CHECK(before.message == "interrupted before POST /y");

        attempts.begin();
        attempts.throttled("HTTP 429", 250ms); // more than one slice of the sleep
        manual.clock.sleep_for = [&](std::chrono::milliseconds d) {
            manual.now += d;
            crmsync::stop_flag().store(true);
        };
        const auto during = thrown_by([&] { attempts.pause(); });
        crmsync::stop_flag().store(false);
        CHECK(during.kind == ErrorKind::interrupted);
        CHECK(during.message == "interrupted while waiting for the service");
    }
}
