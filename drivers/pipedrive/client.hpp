#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace crmsync::drivers::pipedrive {

inline constexpr const char* k_default_url = "https://api.pipedrive.com";

// Pipedrive's 2-second burst budget as its answers report it (x-ratelimit-remaining and
// x-ratelimit-reset), shared by every client of a run so that requests in flight together
// never spend more than is left. Thread safe.
class BurstBudget {
public:
    // Blocks until a request may start: budget is left beyond the requests in flight, or the
    // window has reset. Throws Error(connection) when the reset comes after `deadline`,
    // Error(interrupted) on a stop signal.
    void acquire(const Clock& clock,
                 const std::optional<std::chrono::steady_clock::time_point>& deadline);
    // Ends the hold of acquire(); `response` (null for a transport failure) updates the budget.
    void release(const Clock& clock, const http::HttpResponse* response);

    long waits() const;
    long wait_ms() const;

private:
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::optional<long> m_remaining; // as last reported; unknown: no limit seen
    int m_in_flight = 0;
    std::optional<std::chrono::steady_clock::time_point> m_resets_at;
    long m_waits = 0;
    long m_wait_ms = 0;
};

struct ClientOptions {
    std::string base_url = k_default_url; // without /api/v1
    std::string token;                    // sent as x-api-token; registered as a secret
    bool verify_tls = true;
    http::RetryPolicy retry;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    const Clock* clock = &Clock::real();
    std::shared_ptr<BurstBudget> budget; // shared by the clients of one run; null: its own
};

// What the client did about Pipedrive's limits, for the summary and the bench.
struct ClientStats {
    long requests = 0;  // HTTP requests sent
    long retries = 0;   // repeated after a 5xx, a transport failure or a damaged body
    long throttled = 0; // 429 answers (waited for Retry-After, then repeated)
};

// A small Pipedrive client for leads: persons (v2 search with exact match, v2 create) and
// leads (v1 create and list by person), with the x-api-token header.
//
// Limits: every answer's x-ratelimit-remaining / x-ratelimit-reset is read; once the burst
// window's budget is spent the next request waits for its reset (never fails on it). A 429 is
// waited out (Retry-After, else backoff) and repeated: it was not processed.
//
// Errors (crmsync::Error): `data` for an answer that refuses the request (400, 404, 422: the
// message holds Pipedrive's answer; the lead is to be parked); `auth` for 401/403;
// `connection` for a transient failure the retries did not get past. Reads (GETs) are retried
// on 5xx, transport failures and damaged bodies per the retry policy; writes (POSTs) are not,
// because a write whose answer was lost may have been applied: the caller must look again
// (find_person, find_lead) before writing again. `interrupted` on a stop signal.
// Not thread safe.
class Client {
public:
    explicit Client(ClientOptions options);

    // The id of a person whose e-mail (when given), else phone, matches exactly; the lowest
    // id when several do. Empty `email` and `phone`: the person's name instead.
    std::optional<std::int64_t> find_person(const std::string& email, const std::string& phone,
                                            const std::string& name);
    // POST /api/v2/persons; returns the new id.
    std::int64_t create_person(const std::string& name, const std::string& email,
                               const std::string& phone);
    // The id of a lead of `person_id` whose title starts with `title_marker`.
    std::optional<std::string> find_lead(std::int64_t person_id, const std::string& title_marker);
    // POST /api/v1/leads; returns the new lead's id (a UUID).
    std::string create_lead(const std::string& title, std::int64_t person_id);

    const ClientStats& stats() const { return m_stats; }
    const BurstBudget& budget() const { return *m_options.budget; }

private:
    // One request with the limits and the retry rules above; returns the parsed body of a 2xx
    // whose "success" is true.
    nlohmann::json call(const std::string& method, const std::string& path_and_query,
                        const nlohmann::json* body, const std::string& what);
    std::optional<std::int64_t> search_persons(const std::string& field, const std::string& term);

    ClientOptions m_options;
    http::HttpClient m_http;
    ClientStats m_stats;
};

} // namespace crmsync::drivers::pipedrive
