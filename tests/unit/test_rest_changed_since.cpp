#include "lib/core/clock.hpp"
#include "lib/rest/changed_since.hpp"
#include "lib/util/time.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

using namespace std::chrono_literals;
using crmsync::SystemTime;
using nlohmann::json;
namespace rest = crmsync::rest;
namespace util = crmsync::util;

namespace {

SystemTime ms(long long n) { return SystemTime(std::chrono::milliseconds(n)); }

rest::ChangedSince callcenter_spec() {
    rest::ChangedSince spec;
    spec.field_pointer = "/updatedAt";
    spec.id_pointer = "/_id";
    spec.from_param = "updatedFrom";
    spec.to_param = "updatedTo";
    spec.after_id_param = "afterId";
    spec.lookback = 5min;
    spec.settle = 30s;
    return spec;
}

std::string query_of(const rest::ChangeWindow& window) {
    rest::PageRequest request;
    request.url = "https://h/x";
    window.add_params(request);
    return request.final_url();
}

} // namespace

TEST_CASE("rest::ChangeWindow", "[unit][http]") {
    const SystemTime run_start = ms(1'700'000'100'000);

    SECTION("a first run without --since asks for everything up to the frozen upper bound") {
        const rest::ChangeWindow window(callcenter_spec(), std::nullopt, run_start);
        CHECK_FALSE(window.from().has_value());
        CHECK(query_of(window) == "https://h/x?updatedTo=1700000070000");
    }
    SECTION("a first run with --since starts there, without a lookback") {
        auto spec = callcenter_spec();
        spec.since = ms(1'600'000'000'000);
        const rest::ChangeWindow window(spec, std::nullopt, run_start);
        CHECK(query_of(window) == "https://h/x?updatedFrom=1600000000000&updatedTo=1700000070000");
    }
    SECTION("a stored position is read again from the lookback before it, without afterId") {
        const rest::ChangeWindow window(callcenter_spec(),
                                        rest::Position{ms(1'700'000'000'000), "abc"}, run_start);
        CHECK(query_of(window) == "https://h/x?updatedFrom=1699999700000&updatedTo=1700000070000");
    }
    SECTION("with no lookback, the stored id is sent as afterId") {
        auto spec = callcenter_spec();
        spec.lookback = 0ms;
        const rest::ChangeWindow window(spec, rest::Position{ms(1'700'000'000'000), "abc"},
                                        run_start);
        CHECK(query_of(window) ==
              "https://h/x?updatedFrom=1700000000000&updatedTo=1700000070000&afterId=abc");
    }
    SECTION("the window is empty when the stored position lies past the upper bound") {
        auto spec = callcenter_spec();
        spec.lookback = 0ms;
        const rest::ChangeWindow window(spec, rest::Position{ms(1'700'000'090'000), "abc"},
                                        run_start);
        CHECK(window.empty());
    }
    SECTION("reaches the newest change among the records, ties broken by the larger id") {
        rest::ChangeWindow window(callcenter_spec(), std::nullopt, run_start);
        CHECK(window.see({{"_id", "b"}, {"updatedAt", 20}}));
        CHECK(window.see({{"_id", "c"}, {"updatedAt", 10}}));
        CHECK(window.see({{"_id", "a"}, {"updatedAt", 20}}));
        REQUIRE(window.reached().has_value());
        CHECK(window.reached()->changed == ms(20));
        CHECK(window.reached()->id == "b");
    }
    SECTION("records of the lookback never move the position backwards") {
        rest::ChangeWindow window(callcenter_spec(), rest::Position{ms(1000), "m"}, run_start);
        CHECK(window.see({{"_id", "z"}, {"updatedAt", 900}}));
        CHECK(window.reached()->changed == ms(1000));
        CHECK(window.reached()->id == "m");
    }
    SECTION("a record without a readable change time does not move the position") {
        rest::ChangeWindow window(callcenter_spec(), std::nullopt, run_start);
        CHECK_FALSE(window.see({{"_id", "a"}}));
        CHECK_FALSE(window.see({{"_id", "a"}, {"updatedAt", "yesterday"}}));
        CHECK_FALSE(window.see(json::array()));
        CHECK_FALSE(window.reached().has_value());
    }
}

TEST_CASE("rest::Position", "[unit][http]") {
    SECTION("round-trips through the checkpoint's JSON") {
        const rest::Position p{ms(1'700'000'000'123), "6650f0c2"};
        const auto back = rest::Position::from_json(p.to_json());
        REQUIRE(back.has_value());
        CHECK(back->changed == p.changed);
        CHECK(back->id == "6650f0c2");
        CHECK_FALSE(rest::Position::from_json(json{{"changed", "soon"}}).has_value());
    }
    SECTION("orders numeric ids by value, not as text") {
        CHECK(rest::Position{ms(5), 9} < rest::Position{ms(5), 10});
        CHECK_FALSE(rest::Position{ms(5), "9"} < rest::Position{ms(5), "10"});
        CHECK(rest::Position{ms(4), "z"} < rest::Position{ms(5), "a"});
    }
}

TEST_CASE("rest::format_time and parse_time", "[unit][http]") {
    const SystemTime t = ms(1'717'200'000'123);
    SECTION("writes the formats the APIs ask for") {
        CHECK(rest::format_time(t, rest::TimeFormat::epoch_ms) == "1717200000123");
        CHECK(rest::format_time(t, rest::TimeFormat::epoch_seconds) == "1717200000");
        CHECK(rest::format_time(t, rest::TimeFormat::iso8601) == "2024-06-01T00:00:00.123Z");
        CHECK(rest::format_time(t, rest::TimeFormat::date) == "2024-06-01");
        CHECK(rest::format_time(ms(-1), rest::TimeFormat::epoch_seconds) == "-1");
    }
    SECTION("reads record times in the stream's format and never guesses another") {
        CHECK(rest::parse_time(1717200000123, rest::TimeFormat::epoch_ms) == t);
        CHECK(rest::parse_time("1717200000123", rest::TimeFormat::epoch_ms) == t);
        CHECK(rest::parse_time(1717200000, rest::TimeFormat::epoch_seconds) == ms(1717200000000));
        CHECK(rest::parse_time("2025-02-03T01:24:53+0000", rest::TimeFormat::iso8601) ==
              util::parse_iso8601("2025-02-03T01:24:53Z"));
        CHECK_FALSE(rest::parse_time("2024-06-01", rest::TimeFormat::epoch_ms).has_value());
        CHECK_FALSE(rest::parse_time(1717200000123, rest::TimeFormat::iso8601).has_value());
        CHECK_FALSE(rest::parse_time(1e300, rest::TimeFormat::epoch_seconds).has_value());
    }
}
