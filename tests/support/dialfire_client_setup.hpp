#pragma once

// A started Dialfire fake on loopback and what a client of it needs, for the unit tests of the
// Dialfire API client and of the contact fetchers.

#include "drivers/dialfire/api_client.hpp"
#include "lib/core/clock.hpp"
#include "lib/http/retry_policy.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include <chrono>
#include <cstddef>
#include <optional>

namespace crmsync::testing {

struct DialfireClientSetup {
    fakes::DialfireFake fake;
    http::RetryPolicy policy;
    http::RetryStats stats;
    drivers::dialfire::ApiConfig config;

    // A campaign of `contacts` contacts and no inbound calls, built by `build_threads`
    // threads; requests are tried `max_attempts` times, 1 ms apart at first.
    DialfireClientSetup(std::size_t contacts, int max_attempts, std::size_t build_threads)
        : fake(campaign(contacts, build_threads)) {
        fake.start();
        policy.base_delay = std::chrono::milliseconds(1);
        policy.max_attempts = max_attempts;
        config.base_url = fake.base_url();
        config.campaign = fake.options().campaign_id;
        config.token = fake.options().token;
    }

    http::RetryContext retry() {
        return http::RetryContext{policy, stats, Clock::real(), std::nullopt, ""};
    }

private:
    static fakes::FakeCampaignOptions campaign(std::size_t contacts, std::size_t build_threads) {
        fakes::FakeCampaignOptions o;
        o.contacts = contacts;
        o.inbound_calls = 0;
        o.worker_threads = build_threads;
        return o;
    }
};

} // namespace crmsync::testing
