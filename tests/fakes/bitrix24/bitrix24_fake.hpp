#pragma once

// An in-process fake of a Bitrix24 portal's REST API (reference apis.md §1): a real HTTP server
// on 127.0.0.1 serving generated deals, deal pipelines and their stage history, with mutators,
// fault injection, the leaky-bucket rate limit and request statistics for tests.
//
// Calls ({U} = user id, {C} = webhook code, {m} = method, ".json" optional, name
// case-insensitive):
//   GET|POST /rest/{U}/{C}/{m}        incoming webhook; a wrong {U} or {C} is 401 NO_AUTH_FOUND
//   GET|POST /rest/{m}?auth=TOKEN     OAuth, only if options.oauth_token is set
// Parameters come from the query string (PHP syntax, `filter[>ID]=5&select[]=ID`) merged with
// a JSON body (Content-Type application/json) or a form body; body keys win.
// Methods: crm.stagehistory.list, crm.status.list, crm.dealcategory.stage.list,
// crm.category.list, crm.deal.list, crm.deal.get, batch (see rest_methods.hpp).
// Success: 200 {"result": ..., "next"?: N, "total"?: N, "time": {start, finish, duration,
// processing, date_start, date_finish, operating_reset_at, operating}}. Failure:
// {"error": CODE, "error_description": TEXT} with the code's HTTP status. An unknown method is
// 404 ERROR_METHOD_NOT_FOUND. Bodies are application/json; charset=utf-8.
// Order of checks per request: fault, authentication, rate limit, method. The fake speaks
// plain HTTP on loopback; a real portal answers http:// with 400 INVALID_REQUEST (§1.1).
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/bitrix24/fake_portal.hpp"
#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

/// The fault kinds of every fake (tests/fakes/common/fault.hpp); `status` answers with a
/// Bitrix24 error body, `malformed` with an HTML error page of a proxy.
using Bitrix24FaultKind = FaultKind;

/// A fault applies to the next `count` API requests (not /_fake/...) whose method matches.
/// Faults act before authentication and are consumed in the order they were injected.
/// A `status` fault that names a method other than "batch" also hits that method inside a
/// batch: the sub-call then lands in result_error (as a per-method OPERATION_TIME_LIMIT
/// would on a real portal, §1.7), and it counts against `count`.
struct Bitrix24Fault {
    std::string rest_method; ///< e.g. "crm.stagehistory.list", "batch"; "" matches every request.
    Bitrix24FaultKind kind = Bitrix24FaultKind::status;
    int status = 503;
    /// "" = the code for `status`: 503 QUERY_LIMIT_EXCEEDED, 429 OPERATION_TIME_LIMIT,
    /// 401 NO_AUTH_FOUND, 403 ACCESS_DENIED, 500 INTERNAL_SERVER_ERROR (§1.7); others
    /// INTERNAL_SERVER_ERROR.
    std::string error;
    std::string error_description; ///< "" = the reference's text for the code.
    /// No Retry-After is documented for Bitrix24 (§1.7); set one to test a client that
    /// honours it anyway.
    std::optional<std::string> retry_after;
    int delay_ms = 0;
    int count = 1;
};

/// Reads {"rest_method","kind","status","error","error_description","retry_after",
/// "delay_ms","count"}; every key is optional. Throws std::invalid_argument on an unknown kind
/// or wrong types.
Bitrix24Fault bitrix24_fault_from_json(const nlohmann::json& json);

struct Bitrix24Request {
    std::string http_method;
    std::string path;        ///< Without the query.
    std::string rest_method; ///< Lower case, without ".json"; "" if the path has none.
    std::string query;       ///< Raw text after '?', "" if none.
    std::string body;        ///< The first 2 KiB.
    int status = 0;          ///< 0 when the connection was reset.
    std::string error;       ///< "error" of the answer, "" on success.
    std::optional<Bitrix24FaultKind> fault;
    std::int64_t at_ms = 0; ///< Fake clock, ms since the epoch.
    int remote_port = 0;    ///< Client side of the connection: equal ports = a reused connection.
};

class Bitrix24Fake {
public:
    /// Generates the portal. Throws std::invalid_argument for inconsistent options.
    explicit Bitrix24Fake(Bitrix24Options options = {});
    ~Bitrix24Fake();
    Bitrix24Fake(const Bitrix24Fake&) = delete;
    Bitrix24Fake& operator=(const Bitrix24Fake&) = delete;

    /// Binds 127.0.0.1:`port` (0 = any free port), serves on background threads and returns
    /// the bound port. Call once; throws std::runtime_error if binding fails.
    int start(int port = 0);
    /// Stops serving and joins the threads; idempotent. Requests in a `slow` fault are cut short.
    void stop();
    [[nodiscard]] int port() const;
    /// The webhook base "http://127.0.0.1:PORT/rest/<user_id>/<webhook_code>/"; append a
    /// method name.
    [[nodiscard]] std::string base_url() const;
    /// "http://127.0.0.1:PORT"
    [[nodiscard]] std::string host_url() const;
    [[nodiscard]] const Bitrix24Options& options() const;

    // ---- Data -------------------------------------------------------------------------------
    [[nodiscard]] std::vector<Bitrix24Category> categories() const;
    /// Current deal stages (crm.status.list rows of every DEAL_STAGE* entity), by ID.
    [[nodiscard]] std::vector<Bitrix24Stage> stages() const;
    [[nodiscard]] std::optional<Bitrix24Stage> stage(const std::string& status_id) const;
    /// Every history row in ID order (a copy: about 80 bytes a row).
    [[nodiscard]] std::vector<Bitrix24HistoryEntry> history() const;
    [[nodiscard]] std::size_t history_size() const;
    /// 0 when there is no history.
    [[nodiscard]] std::int64_t last_history_id() const;
    /// Deal IDs are 1..deal_count().
    [[nodiscard]] std::size_t deal_count() const;
    /// nullopt for an unknown ID.
    [[nodiscard]] std::optional<Bitrix24Deal> deal(std::int64_t id) const;

    /// Moves the next `n` deals (round robin) one step along their pipelines, at the fake's
    /// now; the new rows get IDs above every existing one. Returns them.
    std::vector<Bitrix24HistoryEntry> add_history(std::size_t n);
    /// From now on every answer that lists history row `history_id` sends `json` verbatim as
    /// the value of `field` ("ID", "TYPE_ID", "STAGE_ID"...): hostile content such as bytes
    /// that are not JSON, 1e30 or values nested 200 levels deep, in that row alone.
    void send_history_field_raw(std::int64_t history_id, std::string field, std::string json);
    /// Moves a deal to a current stage (TYPE_ID 5 if its pipeline changes, 3 for a final
    /// stage, else 2). Throws std::invalid_argument for an unknown deal or stage.
    Bitrix24HistoryEntry move_deal(std::int64_t deal_id, const std::string& status_id);
    /// Changes NAME (NAME_INIT stays). False if there is no such deal stage.
    bool rename_stage(const std::string& status_id, std::string name);
    bool resort_stage(const std::string& status_id, int sort);
    /// Removes the stage from the lists; history rows and deals keep its STATUS_ID.
    bool delete_stage(const std::string& status_id);
    /// Adds a stage to a pipeline (an empty code gets a generated "UC_XXXXXX"). Throws
    /// std::invalid_argument for an unknown category or an existing STATUS_ID.
    Bitrix24Stage add_stage(int category_id, Bitrix24StageSpec spec);

    // ---- Rate limit and faults --------------------------------------------------------------
    /// Turns the leaky bucket on or off; turning it on starts with an empty bucket.
    void set_rate_limit(bool on);
    void inject(Bitrix24Fault fault);
    /// The next `fault.count` crm.stagehistory.list calls whose filter >ID is `after_id`
    /// (one page of the bulk pattern, §1.3) fail with the fault's status and error: on their
    /// own with that HTTP status, inside a batch in result_error. Only `status`, `error`,
    /// `error_description` and `count` are used. Cleared by clear_faults().
    void fail_history_after(std::int64_t after_id, Bitrix24Fault fault);
    void clear_faults();
    /// Sum of the remaining counts of all injected faults (fail_history_after's too).
    [[nodiscard]] std::size_t pending_faults() const;

    // ---- Statistics -------------------------------------------------------------------------
    /// API HTTP requests (not /_fake/...) for `rest_method` ("" = all), answered or not. A batch
    /// counts once, as "batch".
    [[nodiscard]] std::size_t request_count(std::string_view rest_method = "") const;
    /// Executed method calls, batch sub-calls included ("" = all; "batch" counts the batches).
    [[nodiscard]] std::size_t call_count(std::string_view rest_method = "") const;
    /// The most recent API requests (at most 20,000), oldest first.
    [[nodiscard]] std::vector<Bitrix24Request> requests() const;
    void reset_stats();

    // ---- Clock ------------------------------------------------------------------------------
    /// The fake's clock = system clock + offset; drives `time`, the rate limit's drain and the
    /// CREATED_TIME of added history.
    void set_clock_offset(std::chrono::milliseconds offset);
    [[nodiscard]] std::chrono::system_clock::time_point now() const;

    /// Called (on a server thread) when POST /_fake/shutdown arrives; it must not call stop()
    /// itself, only signal the owner.
    void set_shutdown_handler(std::function<void()> handler);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
