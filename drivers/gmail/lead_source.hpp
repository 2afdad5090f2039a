#pragma once

#include "drivers/gmail/lead_template.hpp"
#include "lib/core/clock.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/source.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace crmsync::drivers::gmail {

// Reads lead mails of one Gmail mailbox: users.messages.list with the template's query, then
// users.messages.get?format=full for each message.
struct LeadSourceOptions {
    std::string base_url = "https://gmail.googleapis.com";
    std::string user_id = "me"; // the mailbox, or "me": the token's user
    // A valid access token, asked before every request (a TokenProvider-backed function may
    // refresh near expiry). After a 401 the source calls `forget_token` (when given) and asks
    // once more; a second 401 is an auth error. May throw crmsync::Error.
    std::function<std::string()> access_token;
    std::function<void()> forget_token;
    std::shared_ptr<const LeadTemplate> lead_template; // required
    std::optional<SystemTime> since;                   // window start instead of the checkpoint
    std::chrono::milliseconds lookback{std::chrono::minutes(10)};
    int page_size = 100; // maxResults of a list page (1..500)
    bool verify_tls = true;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    std::chrono::milliseconds request_timeout{60'000};
    const Clock* clock = &Clock::real();
};

// A pipeline::Source of lead records, one page per list page (stream "gmail"):
//   {"source": "gmail", "id": <message id>, "created_at": <internalDate as UTC ISO-8601>,
//    "name", "email", "phone", "message": string or null,
//    "details": {"template", "subject", "from", "thread_id", "part" (text/plain|text/html),
//                "charset", "fields": {other template fields}, "note" (when something was odd)}}
// A mail the template cannot read (no email and no phone, no text part, no internalDate) is
// {"source", "id", "error": <reason>, "raw": <first 300 bytes of its text or snippet>}.
// A message deleted between list and get (404) is skipped and counted.
//
// Query: "<template query> after:<epoch seconds>" with the window start = options.since, else
// the stored position minus the lookback, else no bound. Gmail answers newest first, so the
// checkpoint {"since": "<ISO-8601>"} (the newest internalDate read) is set only on the last
// page, once every listed message was returned.
//
// Errors (crmsync::Error): 401 twice -> auth; 403 with reason rateLimitExceeded or
// userRateLimitExceeded, 429, 5xx, cut-off bodies and transport failures are retried with
// backoff within options.retry and the deadline, then connection; 403 dailyLimitExceeded ->
// connection (the next run continues); other 403 -> auth; 400 -> usage (the template's query);
// a stored checkpoint this source did not write -> data.
std::unique_ptr<pipeline::Source> make_lead_source(const LeadSourceOptions& options);

// One message (users.messages.get format=full JSON) read with `lead_template` into a lead
// record as above. Never throws.
nlohmann::json lead_record(const nlohmann::json& message, const LeadTemplate& lead_template);

} // namespace crmsync::drivers::gmail
