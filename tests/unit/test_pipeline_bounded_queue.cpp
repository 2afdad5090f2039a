#include "lib/pipeline/bounded_queue.hpp"

#include <catch2/catch.hpp>

#include <thread>

namespace pipeline = crmsync::pipeline;

TEST_CASE("pipeline::BoundedQueue", "[unit]") {
    SECTION("holds its capacity, then takes more only after a pop") {
        pipeline::BoundedQueue<int> queue(2);
        int item = 1;
        CHECK(queue.try_push(item));
        CHECK(queue.try_push(item));
        CHECK_FALSE(queue.try_push(item));
        CHECK(queue.pop() == 1);
        CHECK(queue.try_push(item));
    }

    SECTION("with a weight floor, takes items beyond its capacity until they weigh that much") {
        // Capacity 2 items, floor 10: light items queue up to the floor, plus one.
        pipeline::BoundedQueue<int> queue(
            2, 10, [](const int& weight) { return static_cast<std::size_t>(weight); });
        int light = 3;
        CHECK(queue.try_push(light)); // 3
        CHECK(queue.try_push(light)); // 6: at capacity, under the floor
        CHECK(queue.try_push(light)); // 9
        CHECK(queue.try_push(light)); // 12: the item that reaches the floor
        CHECK_FALSE(queue.try_push(light));
        CHECK(queue.pop() == 3);      // 9 again: under the floor
        CHECK(queue.try_push(light)); // 12
        CHECK_FALSE(queue.try_push(light));
        // Heavy items: the capacity still holds two however heavy they are.
        pipeline::BoundedQueue<int> heavy_queue(
            2, 10, [](const int& weight) { return static_cast<std::size_t>(weight); });
        int heavy = 50;
        CHECK(heavy_queue.try_push(heavy));
        CHECK(heavy_queue.try_push(heavy));
        CHECK_FALSE(heavy_queue.try_push(heavy));
    }

    SECTION("the weight of what was popped is given back exactly") {
        pipeline::BoundedQueue<int> queue(
            1, 10, [](const int& weight) { return static_cast<std::size_t>(weight); });
        for (int round = 0; round < 100; ++round) {
            int a = 4;
            int b = 5;
            int c = 7;
            REQUIRE(queue.try_push(a));
            REQUIRE(queue.try_push(b));
            REQUIRE(queue.try_push(c)); // 9 < 10 before it
            REQUIRE_FALSE(queue.try_push(a));
            REQUIRE(queue.pop() == 4);
            REQUIRE(queue.pop() == 5);
            REQUIRE(queue.pop() == 7);
        }
    }

    SECTION("close() wakes a blocked push, which fails, and pops drain what is left") {
        pipeline::BoundedQueue<int> queue(1);
        CHECK(queue.push(1));
        bool pushed = true;
        std::thread pusher([&] { pushed = queue.push(2); });
        queue.close();
        pusher.join();
        CHECK_FALSE(pushed);
        CHECK(queue.pop() == 1);
        CHECK_FALSE(queue.pop());
    }
}
