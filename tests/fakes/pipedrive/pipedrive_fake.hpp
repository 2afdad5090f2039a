#pragma once

// An in-process fake of the Pipedrive API parts `crmsync leads` uses (reference apis.md §4):
// a real HTTP server on 127.0.0.1.
//
//   GET  /api/v2/persons/search?term&fields=email|phone|name[,..]&exact_match=true|false
//        &limit (default 100, max 500)&cursor   -> {"success":true,"data":{"items":[{
//        "result_score","item":{"id","type":"person","name","phones":[..],"emails":[..]}}]},
//        "additional_data":{"next_cursor": "..." | null}}; exact_match compares whole values
//        (case-insensitive), else substrings; term must not be empty.
//   POST /api/v2/persons  {"name" (required), "emails":[{value,primary,label}], "phones":[..]}
//        -> 200 {"success":true,"data":{"id",...}}
//   GET  /api/v1/leads?person_id&limit (max 500)&start -> {"success":true,"data":[lead..],
//        "additional_data":{"pagination":{"start","limit","more_items_in_collection",
//        "next_start"}}}  (also under /v1/)
//   POST /api/v1/leads {"title" (required), "person_id" (must exist)} -> 201 {"success":true,
//        "data":{"id": UUID, "title", "person_id", ...}}  (also under /v1/)
// Auth: header x-api-token or ?api_token=; else 401 {"success":false,"error":"unauthorized
// access","errorCode":401,"error_info":"Please check developers.pipedrive.com"}. Failures
// answer {"success":false,"error":...,"error_info":...,"data":null,"additional_data":null}.
//
// The 2-second burst budget (when burst_limit > 0): fixed windows of window_ms; every API
// request spends one token; over it -> 429 {"success":false,"error":"Request over limit"}
// with Retry-After (whole seconds to the window's end). With rate_headers, every answer has
// x-ratelimit-limit / -remaining / -reset (seconds to the window's end, rounded up).
//
// Faults (tests/fakes/common/fault.hpp) act before authentication and the budget. Hooks run
// around the handling of each API request (before: nothing done yet; after: done, the
// answer not yet sent) and may block, so a test can kill its client at that exact point.
// Control routes: POST/DELETE /_fake/faults, GET /_fake/stats.
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace crmsync::fakes {

struct PipedriveFakeOptions {
    std::string token = "pd-token";
    int burst_limit = 0; // requests per window; 0 = no burst budget
    int window_ms = 2000;
    bool rate_headers = true;
    std::size_t worker_threads = 4;
};

struct PipedriveRequest {
    std::string method;
    std::string path;
    std::string query;
    std::string body;
    int status = 0; // 0: the connection was reset
};

// How the budget was used, for the bench: tokens spent per window that saw requests.
struct PipedriveBudgetStats {
    long requests = 0;      // API requests answered within the budget
    long throttled = 0;     // 429 answers for an exhausted window
    long windows_used = 0;  // windows in which at least one request came
    long full_windows = 0;  // windows whose whole budget was spent
    long first_window = -1; // index of the first and last window with requests
    long last_window = -1;
};

enum class HookPoint { before, after };

class PipedriveFake {
public:
    explicit PipedriveFake(PipedriveFakeOptions options = {});
    ~PipedriveFake();
    PipedriveFake(const PipedriveFake&) = delete;
    PipedriveFake& operator=(const PipedriveFake&) = delete;

    int start(int port = 0);
    void stop();
    int port() const;
    std::string base_url() const; // http://127.0.0.1:PORT

    // Adds a person as if created in Pipedrive; returns its id.
    std::int64_t add_person(const std::string& name, const std::vector<std::string>& emails,
                            const std::vector<std::string>& phones);
    std::vector<nlohmann::json> persons() const;
    std::vector<nlohmann::json> leads() const;
    // Persons that share an e-mail or a phone with an earlier person, and leads whose title
    // an earlier lead has: what must stay 0.
    std::size_t duplicate_persons() const;
    std::size_t duplicate_leads() const;

    // Runs around each API request; `method` and `path` without the query.
    // Returning false drops the request there: the connection is reset, and at `before`
    // nothing was done.
    void set_hook(
        std::function<bool(const std::string& method, const std::string& path, HookPoint point)>
            hook);
    void inject(Fault fault);
    void clear_faults();
    std::vector<PipedriveRequest> requests() const;
    std::size_t count(const std::string& method, const std::string& path_prefix) const;
    PipedriveBudgetStats budget_stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
