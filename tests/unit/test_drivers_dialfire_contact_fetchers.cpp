// ContactFetchers: ids listed page by page are fetched by worker threads, and a feeding thread
// lists the next page while the consumer still works on the last one.

#include "drivers/dialfire/contact_fetchers.hpp"
#include "drivers/dialfire/simdjson_contacts.hpp"

#include "lib/core/error.hpp"
#include "tests/support/dialfire_client_setup.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>

using namespace crmsync;
using drivers::dialfire::ContactFetchers;

namespace {

// 4 threads build the campaign; a request is tried twice.
struct FetcherSetup : crmsync::testing::DialfireClientSetup {
    explicit FetcherSetup(std::size_t contacts) : DialfireClientSetup(contacts, 2, 4) {}
};

// The fake's ids cut into "listed pages" of `page` ids.
std::vector<std::vector<std::string>> pages_of(const std::vector<std::string>& ids,
                                               std::size_t page) {
    std::vector<std::vector<std::string>> pages;
    for (std::size_t start = 0; start < ids.size(); start += page) {
        pages.emplace_back(ids.begin() + static_cast<long>(start),
                           ids.begin() + static_cast<long>(std::min(ids.size(), start + page)));
    }
    return pages;
}

// The $id of each contact of a batch, in nlohmann's document or kept in simdjson's.
std::vector<std::string> ids_of(const drivers::dialfire::FetchedBatch& batch) {
    std::vector<std::string> ids;
    for (const auto& contact : batch.contacts) {
        ids.push_back(contact.at("$id").get<std::string>());
    }
    if (batch.kept) {
        for (const auto contact : batch.kept->contacts) {
            ids.emplace_back(std::string_view(contact["$id"]));
        }
    }
    return ids;
}

} // namespace

TEST_CASE("ContactFetchers fetches every listed contact once, across listed pages",
          "[unit][http]") {
    // As nlohmann's documents (webhook) or kept in simdjson's (db_sync).
    const bool keep_simdjson = GENERATE(false, true);
    FetcherSetup setup(230);
    const auto pages = pages_of(setup.fake.contact_ids(), 70);
    ContactFetchers fetchers(setup.config, 3, setup.retry(), keep_simdjson);
    std::size_t listed = 0;
    const auto list_more = [&] {
        fetchers.add_ids(pages[listed++]);
        return listed < pages.size();
    };
    std::map<std::string, int> seen;
    while (auto batch = fetchers.next(list_more)) {
        CHECK(batch->rejects.empty());
        CHECK(batch->missing == 0);
        CHECK((batch->kept != nullptr) == keep_simdjson);
        CHECK(batch->contacts.empty() == keep_simdjson);
        for (const auto& id : ids_of(*batch)) {
            ++seen[id];
        }
    }
    CHECK(listed == pages.size());
    REQUIRE(seen.size() == 230);
    for (const auto& [id, times] : seen) {
        INFO(id);
        CHECK(times == 1);
    }
}

TEST_CASE("ContactFetchers lists ahead while the consumer is busy", "[unit][http]") {
    // Pages of one request each, two workers: the queues hold 4 requests and 4 results. While
    // the consumer holds its first batch, the feeding thread lists until everything is full:
    // 1 taken + 4 results + 2 in the workers + 4 queued + 1 waiting = 12 pages. Listing on the
    // consumer's thread, as before, stopped at its first result, after at most 7.
    FetcherSetup setup(60);
    const auto pages = pages_of(setup.fake.contact_ids(), 2);
    ContactFetchers fetchers(setup.config, 2, setup.retry());
    std::mutex mutex;
    std::condition_variable listed_more;
    std::size_t listed = 0;
    const auto list_more = [&] {
        std::lock_guard lock(mutex);
        fetchers.add_ids(pages[listed++]);
        listed_more.notify_all();
        return listed < pages.size();
    };
    REQUIRE(fetchers.next(list_more));
    {
        std::unique_lock lock(mutex);
        // Generous: this bounds a failure, it measures nothing.
        CHECK(listed_more.wait_for(lock, std::chrono::seconds(60), [&] { return listed >= 11; }));
    }
    std::size_t contacts = 2;
    while (auto batch = fetchers.next(list_more)) {
        contacts += ids_of(*batch).size();
    }
    CHECK(contacts == 60);
}

TEST_CASE("ContactFetchers returns what was fetched before a listing error, then the error",
          "[unit][http]") {
    FetcherSetup setup(50);
    const auto ids = setup.fake.contact_ids();
    ContactFetchers fetchers(setup.config, 2, setup.retry());
    int calls = 0;
    const auto list_more = [&]() -> bool {
        if (calls++ == 0) {
            fetchers.add_ids(ids);
            return true;
        }
        throw Error(ErrorKind::io, "listing failed on purpose", "a hint");
    };
    std::size_t contacts = 0;
    try {
        while (auto batch = fetchers.next(list_more)) {
            contacts += ids_of(*batch).size();
        }
        FAIL("the listing error was not thrown");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("listing failed on purpose") != std::string::npos);
    }
    CHECK(contacts == 50);
}

TEST_CASE("ContactFetchers stops cleanly when dropped half-way", "[unit][http]") {
    FetcherSetup setup(200);
    const auto pages = pages_of(setup.fake.contact_ids(), 20);
    std::size_t listed = 0;
    {
        ContactFetchers fetchers(setup.config, 4, setup.retry());
        const auto list_more = [&] {
            fetchers.add_ids(pages[listed++]);
            return listed < pages.size();
        };
        REQUIRE(fetchers.next(list_more));
    } // workers and the feeding thread are stopped and joined here
    CHECK(listed >= 1);
    CHECK(listed <= pages.size());
}
