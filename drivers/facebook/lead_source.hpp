#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/source.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::facebook {

// Reads new leads of Lead Ads forms from the Graph API: GET /{form}/leads, filtered on
// time_created, paged by paging.next.
struct LeadSourceOptions {
    std::string base_url = "https://graph.facebook.com/v21.0";
    // A page access token with leads_retrieval. Sent as the access_token query parameter;
    // registered as a secret by the source (the caller may have done so already).
    std::string access_token;
    std::vector<std::string> forms; // one stream each, read in this order
    // The window's start for every form, instead of the stored checkpoint (--since).
    std::optional<SystemTime> since;
    // Re-read this much before the stored position: leads that became visible late.
    std::chrono::milliseconds lookback{std::chrono::minutes(10)};
    int page_size = 100;
    bool verify_tls = true;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    std::chrono::milliseconds request_timeout{60'000};
    const Clock* clock = &Clock::real(); // waits and deadlines; tests drive it
};

// A pipeline::Source of lead records (the shape every lead source shares):
//   {"source": "facebook", "id": <Graph lead id>, "created_at": "<UTC ISO-8601>",
//    "name", "email", "phone", "message": string or null,
//    "details": {"form_id", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id",
//                "campaign_name", "platform", "is_organic" (those present),
//                "fields": {other field_data name: values joined by ", "}}}
// A lead it cannot read (no id, no readable created_time) is {"source", "id", "error", "raw"}.
//
// Streams: "facebook/<form id>", one after the other; the first request of each asks for
// time_created GREATER_THAN (window start - 1 s), so a lead in the start second is read again
// rather than lost. Window start: options.since if given, else the form's stored position minus
// the lookback, else everything the API still keeps.
//
// Checkpoint: {"forms": {"<form id>": {"since": "<ISO-8601>"}}}, the newest created_time read
// per form. The API answers newest first, so a form's entry moves only on the page that ends
// the form (every lead before it was returned); entries of forms not read in this run are kept.
//
// Errors (crmsync::Error, with the form and page): Graph code 190 -> auth ("page token
// expired"); codes 10, 102 and 200-299 -> auth (permissions); throttling (codes 4, 17, 32, 341,
// 613, 80001, 80005, or is_transient) and 5xx, 429, cut-off bodies, transport failures are
// retried with backoff within options.retry and the deadline, then connection (a throttled
// answer whose X-Business-Use-Case-Usage gives estimated_time_to_regain_access is retried
// after that time, or fails at once as connection when it exceeds retry.max_retry_after); other
// Graph errors (an unknown form id: code 100) -> usage; a 2xx body that stays unreadable -> data;
// a stored checkpoint this source did not write -> data.
std::unique_ptr<pipeline::Source> make_lead_source(const LeadSourceOptions& options);

} // namespace crmsync::drivers::facebook
