#include "lib/util/time.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono;
using crmsync::SystemTime;
namespace util = crmsync::util;

namespace {

SystemTime utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int ms = 0) {
    const sys_days day = year{y} / month{mo} / std::chrono::day{d};
    return SystemTime{duration_cast<milliseconds>(day.time_since_epoch()) + hours{h} + minutes{mi} +
                      seconds{s} + milliseconds{ms}};
}

} // namespace

TEST_CASE("util::parse_iso8601", "[unit]") {
    SECTION("a date alone is midnight UTC") {
        CHECK(util::parse_iso8601("2024-01-01") == utc(2024, 1, 1));
        CHECK(util::parse_iso8601("2024-02-29") == utc(2024, 2, 29));
    }
    SECTION("date and time are separated by T or a space") {
        CHECK(util::parse_iso8601("2024-01-01T10:00:00") == utc(2024, 1, 1, 10));
        CHECK(util::parse_iso8601("2024-01-01 10:00:00") == utc(2024, 1, 1, 10));
        CHECK(util::parse_iso8601("2018-02-01T15:04:05") == utc(2018, 2, 1, 15, 4, 5));
    }
    SECTION("milliseconds, microseconds or no fraction are read to the millisecond") {
        CHECK(util::parse_iso8601("2024-01-01T10:00:00.123Z") == utc(2024, 1, 1, 10, 0, 0, 123));
        CHECK(util::parse_iso8601("2024-01-01T10:00:00.123456Z") == utc(2024, 1, 1, 10, 0, 0, 123));
        CHECK(util::parse_iso8601("2024-01-01T10:00:00.5") == utc(2024, 1, 1, 10, 0, 0, 500));
        CHECK(util::parse_iso8601("2024-01-01T10:00:00Z") == utc(2024, 1, 1, 10));
    }
    SECTION("Z and no zone both mean UTC") {
        CHECK(util::parse_iso8601("2024-01-01T10:00:00.000Z") ==
              util::parse_iso8601("2024-01-01T10:00:00.000"));
    }
    SECTION("a +hh:mm offset is subtracted to get UTC") {
        CHECK(util::parse_iso8601("2024-01-01 10:00:00.5+02:00") == utc(2024, 1, 1, 8, 0, 0, 500));
        CHECK(util::parse_iso8601("2024-01-01T01:00:00+02:00") == utc(2023, 12, 31, 23));
    }
    SECTION("a -hhmm offset without colon is added to get UTC") {
        CHECK(util::parse_iso8601("2024-01-01T10:00:00-0530") == utc(2024, 1, 1, 15, 30));
    }
    SECTION("invalid dates and words are rejected, never guessed") {
        for (const char* bad :
             {"2024-13-01", "2024-02-30", "2023-02-29", "2024-00-10", "2024-01-32", "yesterday", "",
              "2024", "2024-1-1", "24-01-01", "2024/01/01", " 2024-01-01", "2024-01-01T25:00:00",
              "2024-01-01T10:60:00", "2024-01-01T10", "2024-01-01T"}) {
            INFO(bad);
            CHECK_FALSE(util::parse_iso8601(bad).has_value());
        }
    }
    SECTION("trailing junk is rejected") {
        for (const char* bad :
             {"2024-01-01junk", "2024-01-01T10:00:00Zjunk", "2024-01-01T10:00:00 junk",
              "2024-01-01T10:00:00.Z", "2024-01-01T10:00:00+2", "2024-01-01T10:00:00+02:00x",
              "2024-01-01T10:00:00ZZ", "2024-01-01 "}) {
            INFO(bad);
            CHECK_FALSE(util::parse_iso8601(bad).has_value());
        }
    }
    SECTION("offsets outside a day's range are rejected") {
        CHECK_FALSE(util::parse_iso8601("2024-01-01T10:00:00+25:00").has_value());
        CHECK_FALSE(util::parse_iso8601("2024-01-01T10:00:00+02:99").has_value());
    }
}

TEST_CASE("util::format_iso8601 and the other formatters", "[unit]") {
    const SystemTime t = utc(2024, 1, 1, 10, 0, 0, 123);
    SECTION("format_iso8601 writes milliseconds and Z") {
        CHECK(util::format_iso8601(t) == "2024-01-01T10:00:00.123Z");
        CHECK(util::format_iso8601(utc(2024, 1, 1)) == "2024-01-01T00:00:00.000Z");
    }
    SECTION("format_sql_timestamp writes a space and no zone") {
        CHECK(util::format_sql_timestamp(t) == "2024-01-01 10:00:00.123");
    }
    SECTION("format_date writes the UTC date") {
        CHECK(util::format_date(t) == "2024-01-01");
        CHECK(util::format_date(utc(2023, 12, 31, 23, 59, 59, 999)) == "2023-12-31");
    }
    SECTION("times before 1970 are formatted correctly") {
        CHECK(util::format_iso8601(utc(1969, 12, 31, 23, 59, 59, 999)) ==
              "1969-12-31T23:59:59.999Z");
    }
    SECTION("format_iso8601 and parse_iso8601 round-trip") {
        for (const char* text :
             {"2024-01-01T10:00:00.123Z", "2000-02-29T00:00:00.000Z", "1999-12-31T23:59:59.999Z"}) {
            const auto parsed = util::parse_iso8601(text);
            REQUIRE(parsed);
            CHECK(util::format_iso8601(*parsed) == text);
        }
    }
    SECTION("the formatters write what printf writes, on every edge of the years 0-9999 and "
            "past them") {
        const auto printf_of = [](SystemTime when, const char* pattern) {
            using namespace std::chrono;
            const auto day = floor<days>(when);
            const year_month_day ymd{day};
            const hh_mm_ss clock{floor<milliseconds>(when - day)};
            std::array<char, 64> buf{};
            std::snprintf(buf.data(), buf.size(), pattern, static_cast<int>(ymd.year()),
                          static_cast<int>(static_cast<unsigned>(ymd.month())),
                          static_cast<int>(static_cast<unsigned>(ymd.day())),
                          static_cast<int>(clock.hours().count()),
                          static_cast<int>(clock.minutes().count()),
                          static_cast<int>(clock.seconds().count()),
                          static_cast<int>(clock.subseconds().count()));
            return std::string(buf.data());
        };
        std::vector<SystemTime> times = {utc(0, 1, 1), utc(9999, 12, 31, 23, 59, 59, 999),
                                         utc(1970, 1, 1), utc(2024, 2, 29, 9, 8, 7, 6),
                                         utc(2024, 12, 31, 23, 59, 59, 999)};
        // Past the four digits: a year before 0 and after 9999.
        times.push_back(utc(0, 1, 1) - std::chrono::milliseconds(1));
        times.push_back(utc(9999, 12, 31, 23, 59, 59, 999) + std::chrono::milliseconds(1));
        for (std::int64_t ms = -86'400'000; ms < 86'400'000 * 3; ms += 3'600'000 + 61'001) {
            times.push_back(SystemTime(std::chrono::milliseconds(ms)));
        }
        for (const auto when : times) {
            INFO(when.time_since_epoch().count());
            CHECK(util::format_iso8601(when) ==
                  printf_of(when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"));
            CHECK(util::format_sql_timestamp(when) ==
                  printf_of(when, "%04d-%02d-%02d %02d:%02d:%02d.%03d"));
        }
        CHECK(util::format_sql_timestamp(times[5]) == "-001-12-31 23:59:59.999");
        CHECK(util::format_iso8601(times[6]) == "10000-01-01T00:00:00.000Z");
    }
    SECTION("format_http_date writes an IMF-fixdate") {
        CHECK(util::format_http_date(utc(1994, 11, 6, 8, 49, 37)) ==
              "Sun, 06 Nov 1994 08:49:37 GMT");
        CHECK(util::format_http_date(utc(2024, 2, 29, 23, 5, 1)) ==
              "Thu, 29 Feb 2024 23:05:01 GMT");
    }
}

TEST_CASE("util::parse_http_date", "[unit]") {
    const SystemTime expected = utc(1994, 11, 6, 8, 49, 37);
    SECTION("reads an IMF-fixdate") {
        CHECK(util::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected);
    }
    SECTION("reads the obsolete RFC 850 form") {
        CHECK(util::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected);
    }
    SECTION("reads the obsolete asctime form") {
        CHECK(util::parse_http_date("Sun Nov  6 08:49:37 1994") == expected);
    }
    SECTION("reads back what format_http_date writes") {
        const SystemTime t = utc(2031, 7, 15, 12, 0, 1);
        CHECK(util::parse_http_date(util::format_http_date(t)) == t);
    }
    SECTION("rejects garbage") {
        for (const char* bad : {"", "garbage", "120", "Sun, 06 Foo 1994 08:49:37 GMT",
                                "Sun, 31 Feb 1994 08:49:37 GMT", "2024-01-01T10:00:00Z"}) {
            INFO(bad);
            CHECK_FALSE(util::parse_http_date(bad).has_value());
        }
    }
}

TEST_CASE("util::parse_duration", "[unit]") {
    SECTION("reads seconds, minutes, hours, days and milliseconds") {
        CHECK(util::parse_duration("90s") == milliseconds{90'000});
        CHECK(util::parse_duration("10m") == milliseconds{600'000});
        CHECK(util::parse_duration("2h") == milliseconds{7'200'000});
        CHECK(util::parse_duration("1d") == milliseconds{86'400'000});
        CHECK(util::parse_duration("1500ms") == milliseconds{1'500});
    }
    SECTION("a bare number is seconds") {
        CHECK(util::parse_duration("30") == milliseconds{30'000});
        CHECK(util::parse_duration("0") == milliseconds{0});
    }
    SECTION("malformed durations are rejected") {
        for (const char* bad : {"", "abc", "10x", "-5m", "1.5h", "m", " 10m", "10 m", "10mm"}) {
            INFO(bad);
            CHECK_FALSE(util::parse_duration(bad).has_value());
        }
    }
    SECTION("durations beyond a century are rejected, never overflowed (found by fuzz_time)") {
        CHECK_FALSE(util::parse_duration("901025019121d").has_value());
        CHECK_FALSE(util::parse_duration("999999999999h").has_value());
        CHECK_FALSE(util::parse_duration("36601d").has_value());
        CHECK(util::parse_duration("36600d") == milliseconds{36600LL * 86'400'000});
        CHECK(util::parse_duration("999999999999ms") == milliseconds{999'999'999'999});
    }
}
