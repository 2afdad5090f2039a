#pragma once

// An in-process fake of the Callback24 API parts `crmsync leads` reads (reference apis.md §6;
// the official docs were not readable, so the shapes follow the third-party clients there):
//
//   GET /api/v1/phoneCalls/history?date_from=ISO&date_to=ISO  (X-API-TOKEN)
//       -> 200 {"result": [call...]}: every service's calls whose addition_time is in
//          [date_from, date_to); a missing or unreadable date -> 422 {"message": ...}.
//   GET /api/v1/phoneCalls/getCallInfo?call_id=N
//       -> 200 {"data": {"call_at", "website", ...}}, or 404 {"message": "Call not found"}.
//   Missing or wrong X-API-TOKEN -> 401 {"message": "Unauthenticated."}.
// A call is {"id": number, "phone_number", "addition_time": "YYYY-MM-DD HH:MM:SS" (UTC),
// "service_name", "call_start_time", "has_status_realised"}; put() stores it as given (so
// tests can store malformed calls), with its website for getCallInfo.
// Faults (tests/fakes/common/fault.hpp) act before authentication. Control routes: POST and
// DELETE /_fake/faults.
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace crmsync::fakes {

struct Callback24FakeOptions {
    std::string token = "cb24-token";
    std::size_t worker_threads = 4;
};

struct Callback24Request {
    std::string path;
    std::string query;
    int status = 0; // 0: the connection was reset
};

class Callback24Fake {
public:
    explicit Callback24Fake(Callback24FakeOptions options = {});
    ~Callback24Fake();
    Callback24Fake(const Callback24Fake&) = delete;
    Callback24Fake& operator=(const Callback24Fake&) = delete;

    int start(int port = 0);
    void stop();
    int port() const;
    std::string base_url() const; // http://127.0.0.1:PORT (the API is under /api/v1)

    // Stores a call (replacing one with the same id) and the website getCallInfo returns for
    // it ("" = getCallInfo answers 404).
    void put(nlohmann::json call, const std::string& website);
    void inject(Fault fault);
    std::vector<Callback24Request> requests() const;
    std::size_t count(const std::string& path_prefix) const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// "2026-12-03 10:00:00": how the fake writes addition_time for `epoch_ms`.
std::string callback24_time(std::int64_t epoch_ms);

} // namespace crmsync::fakes
