#pragma once

// An in-process fake of the call-center service's REST contract (an assumption written down in
// the project's reference notes): a real HTTP server on 127.0.0.1.
//
//   GET /api/v1/callcenters/{id}/{contacts|contact-groups|activities|agents|roles|sip-accounts}
//       ?updatedFrom=ms (inclusive) &updatedTo=ms (exclusive) &afterId=X (with updatedFrom=T:
//       skip updatedAt == T && _id <= X) &includeDeleted=true|false &limit=N (max 1000)
//       &page=N (1-based)
//   Order: (updatedAt, _id). Answer 200 {"success": true, "result": [...], "paging": {"page",
//   "limit", "total", "hasMore"}} ("hasMore" left out when options.has_more is false).
//   Errors {"success": false, "message": "..."}: 401 wrong or missing credentials (checked per
//   options.auth: basic, apikey = x-apikey header, bearer), 404 unknown route.
// Faults (tests/fakes/common/fault.hpp) act before authentication. POST /_fake/faults,
// DELETE /_fake/faults, POST /_fake/docs {"callcenter","stream","doc"} are the control routes.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace crmsync::fakes {

struct CallcenterFakeOptions {
    std::string auth = "basic"; // basic | apikey | bearer
    std::string user = "cc-user";
    std::string secret = "cc-secret"; // password, API key or token
    bool has_more = true;             // false: answers carry no paging.hasMore
    std::size_t worker_threads = 4;
};

struct CallcenterRequest {
    std::string path;  // without the query
    std::string query; // raw
    int status = 0;    // 0: the connection was reset
};

class CallcenterFake {
public:
    explicit CallcenterFake(CallcenterFakeOptions options = {});
    ~CallcenterFake();
    CallcenterFake(const CallcenterFake&) = delete;
    CallcenterFake& operator=(const CallcenterFake&) = delete;

    int start(int port = 0);
    void stop();
    int port() const;
    std::string base_url() const; // http://127.0.0.1:PORT/api/v1

    // Adds or replaces (by _id) a document of `stream` ("contacts", "contact_groups", ...).
    // A document without a string _id is stored as it is, appended (for reject tests).
    void put(const std::string& callcenter, const std::string& stream, nlohmann::json doc);
    std::vector<nlohmann::json> docs(const std::string& callcenter,
                                     const std::string& stream) const;
    // Runs before the n-th API request (0-based, control routes not counted) is answered.
    void before_request(std::function<void(std::size_t n)> hook);
    void inject(Fault fault);
    std::vector<CallcenterRequest> requests() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
