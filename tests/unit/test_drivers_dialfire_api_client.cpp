#include "drivers/dialfire/api_client.hpp"

#include "lib/util/time.hpp"

#include <catch2/catch.hpp>

using namespace crmsync;

TEST_CASE("dialfire::format_dialfire_time", "[unit]") {
    const auto t = *util::parse_iso8601("2024-01-01T10:00:00.123Z");
    SECTION("writes T, milliseconds and no zone") {
        CHECK(drivers::dialfire::format_dialfire_time(t) == "2024-01-01T10:00:00.123");
    }
}
