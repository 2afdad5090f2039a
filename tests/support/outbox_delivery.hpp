#pragma once

// Outbox deliveries for the tests of the outbox and the webhook sender.

#include "lib/state/outbox.hpp"

#include <string>
#include <utility>

namespace crmsync::testing {

/// A pending delivery "new" with the body {}, of `group` (one contact) in `job`.
inline state::Delivery test_delivery(std::string id, std::string group, std::string job = "job") {
    state::Delivery d;
    d.id = std::move(id);
    d.job = std::move(job);
    d.group_key = std::move(group);
    d.event = "new";
    d.body = "{}";
    return d;
}

} // namespace crmsync::testing
