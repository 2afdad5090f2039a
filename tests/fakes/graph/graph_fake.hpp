#pragma once

// An in-process fake of the Graph API's Lead Ads retrieval (reference apis.md §5): a real HTTP
// server on 127.0.0.1.
//
//   GET /{version}/{form-id}/leads?access_token=T (or "Authorization: Bearer T")
//       &fields=a,b,c (id and created_time always; the rest of a lead only when asked)
//       &limit=N (default 25, max 500) &after=CURSOR
//       &filtering=[{"field":"time_created","operator":"GREATER_THAN"|"LESS_THAN","value":S}]
//   Leads newest first (created_time, then id). Answer 200 {"data": [...], "paging":
//   {"cursors": {"before", "after"}, "next": <absolute URL with the token>}}; "next" only when
//   more leads follow; no "paging" at all when nothing matched. Cursors are opaque (base64 of
//   the last lead's position), so leads added while paging shift nothing.
//   Errors {"error": {"message", "type", "code", "error_subcode", "is_transient",
//   "fbtrace_id"}} with HTTP 400: code 190 for a wrong token (no subcode, "Invalid OAuth access
//   token - Cannot parse access token", www-authenticate header) and after expire_token()
//   (subcode 463, "Error validating access token: Session has expired ..."); code 100 subcode
//   33 for an unknown form; code 100 for a malformed `filtering`.
// Faults act before authentication, in injection order: GraphFault (the common fault shape
// plus `graph_code`: a status fault then carries a Graph error body with that code, e.g. code
// 4 "Application request limit reached" with is_transient as HTTP 400; without it, 5xx answer
// code 2 "Service temporarily unavailable", is_transient true). `empty_page`: the answer holds
// no leads but a `next` that continues where the request started (Graph does this).
// `repeat_next`: the answer's `next` repeats the URL of the request. POST/DELETE /_fake/faults
// are the control routes.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace crmsync::fakes {

struct GraphFakeOptions {
    std::string version = "v21.0";
    std::string access_token = "page-token-1";
    std::size_t worker_threads = 4;
};

enum class GraphFaultKind {
    common,      ///< as `action` says (status, reset, truncate, malformed, slow)
    empty_page,  ///< 200 with "data": [] and a next link to the same position
    repeat_next, ///< the normal answer, with "next" repeating the request's own URL
    raw_body,    ///< 200 with `raw_body` as it is (hostile or odd answers)
};

struct GraphFault {
    std::string method;
    std::string path_prefix;
    GraphFaultKind graph_kind = GraphFaultKind::common;
    FaultKind kind = FaultKind::status;
    int status = 400;
    std::optional<std::string> retry_after;
    int delay_ms = 0;
    int count = 1;
    int graph_code = 0; ///< 0: the generic body for `status`
    int graph_subcode = 0;
    bool is_transient = true;
    /// > 0: the answer carries X-Business-Use-Case-Usage with this
    /// estimated_time_to_regain_access (minutes), as Graph sends with BUC throttling.
    int regain_minutes = 0;
    std::string raw_body; ///< for GraphFaultKind::raw_body

    [[nodiscard]] bool matches(std::string_view request_method, std::string_view path) const {
        return (method.empty() || method == request_method) && path.starts_with(path_prefix);
    }
};

/// The common fault keys plus "graph_kind" ("common", "empty_page", "repeat_next",
/// "raw_body"), "graph_code", "graph_subcode", "is_transient", "regain_minutes", "raw_body". Throws
/// std::invalid_argument.
GraphFault graph_fault_from_json(const nlohmann::json& json);

struct GraphRequest {
    std::string path;
    std::string query; // raw, as sent (holds the token)
    int status = 0;    // 0: the connection was reset
};

class GraphFake {
public:
    explicit GraphFake(GraphFakeOptions options = {});
    ~GraphFake();
    GraphFake(const GraphFake&) = delete;
    GraphFake& operator=(const GraphFake&) = delete;

    int start(int port = 0);
    void stop();
    int port() const;
    std::string base_url() const; // http://127.0.0.1:PORT/v21.0

    /// Adds or replaces (by id) a lead of `form`: {"id", "created_time": "2025-02-03T01:24:53
    /// +0000" or epoch seconds, "field_data", "ad_id", ...}. The form exists from then on.
    void put_lead(const std::string& form, nlohmann::json lead);
    /// A form with no leads yet (its endpoint answers {"data": []}).
    void add_form(const std::string& form);
    /// The token stops working: code 190 subcode 463 until set_access_token().
    void expire_token();
    void set_access_token(const std::string& token);
    void inject(GraphFault fault);
    std::vector<GraphRequest> requests() const;

    /// A lead in Graph's JSON shape, for tests: created_time written as Graph writes it.
    static nlohmann::json lead(const std::string& id, std::int64_t created_epoch_seconds,
                               const std::vector<std::pair<std::string, std::string>>& fields);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
