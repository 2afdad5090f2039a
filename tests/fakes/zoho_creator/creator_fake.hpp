#pragma once

// An in-process fake of the Zoho Creator v2.1 data API for one application (reference apis.md
// §3.2, zoho-creator.md): a real HTTP server on 127.0.0.1. P = /creator/v2.1/data/{owner}/{app}.
//
//   POST   P/form/{form}  {"data": [records] or one record, "result": {"fields": [...]}}
//          -> 200 {"result": [per record, in order: {"code": 3000, "data": {asked fields...,
//          "ID"}, "message": "Data Added Successfully!"} or {"code": 3001, "error": {field:
//          text}, "message": "Data validation failure"}]}: HTTP 200 also when records fail.
//          More than 200 records: 200 {"code": 3950, ...}, nothing added.
//   GET    P/report/{report}?criteria=C&max_records=N (1-1000, default 200), request header
//          record_cursor: K -> 200 {"code": 3000, "data": [records]} with a `record_cursor`
//          response header when more match; none -> 404 {"code": 3100, "message": "No records
//          found for the given criteria."} (404 is [S]; no_records_status 200 answers the same
//          body with HTTP 200, for clients that must accept both). Order: ID ascending (creation
//          order). Criteria: creator_criteria.hpp. A bad criteria or cursor: 400 {"code": 1000}
//          [U].
//   GET    P/report/{report}/{ID} -> 200 {"code": 3000, "data": {record}}
//   PATCH  P/report/{report}/{ID}  {"data": {fields}} -> 200 {"code": 3000, "data": {changed
//          fields..., "ID"}, "message": "Data Updated Successfully!"}; Modified_Time moves even
//          when nothing changed. A rejected e-mail: 200 {"code": 3070, ...}.
//   DELETE P/report/{report}/{ID} -> 200 {"code": 3000, "data": {"ID"}, "message": "Record
//          Deleted Successfully!"}
//   Unknown ID (get, update, delete): 200 {"code": 3190, "message": "No record with ID <ID>
//   found."} ([U] for get). No body or no "data": 400 {"code": 3020}.
// A record as read: every stored field, Name as {"prefix","first_name","last_name","suffix",
// "zc_display_value"}, "ID" (19 digits), "Added_Time" and "Modified_Time" as "dd-MMM-yyyy
// HH:mm:ss" in the app's time zone (a fixed UTC offset, default UTC), whole seconds.
// Checks, in order: fault, app path (404 1040 owner / 2892 app / 2893 form / 2894 report), auth
// ("Authorization: Zoho-oauthtoken T", else 401 {"code": 1030}), per-minute limit (more than
// per_minute_limit requests by one token in the last 60 s: 429 {"code": 2955}; sliding window
// on the fake clock, refused requests do not fill it; apis.md leaves the window kind [U]).
// An e-mail is rejected when it is in the reject list or has no '@' (Creator's e-mail field).
// Faults: the common shape plus "code" (the body's code; default per status: 429 -> 2955,
// 401 -> 1030, 200 -> 4000 daily limit) and act before everything else.
//
// Control routes (no auth, JSON; a bad request answers 400):
//   POST   /_fake/tokens {"token"}            accept this access token
//   POST   /_fake/records {fields}            -> the record (server-side add)
//   GET    /_fake/records                     -> {"records": [every record, as read]}
//   POST   /_fake/records/{ID} {fields}       -> the edited record (Modified_Time moves)
//   DELETE /_fake/records/{ID}                -> {}
//   POST   /_fake/settings {"per_minute_limit"?: n (0 = off), "time_zone"?: "UTC"|"+05:30",
//                           "reject_emails"?: [e-mails], "no_records_status"?: 404|200}
//                           -> the settings
//   GET    /_fake/stats -> {"requests": n, "throttled": n, "records": n, "paths": {path: n}}
//   POST|DELETE /_fake/faults, POST /_fake/clock?offset_ms=N, POST /_fake/shutdown.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::fakes {

struct CreatorFakeOptions {
    std::string owner = "jsmith";
    std::string app = "crm";
    std::string form = "Contacts";
    std::string report = "All_Contacts";
    /// Requests per token per 60 s before 429 code 2955; 0 = no limit (zoho-creator.md §7).
    int per_minute_limit = 50;
    /// The app's time zone as minutes east of UTC.
    int utc_offset_minutes = 0;
    /// HTTP status of the code-3100 "no records" answer: 404 ([S]) or 200.
    int no_records_status = 404;
    std::size_t worker_threads = 4;
};

struct CreatorFault {
    std::string method;
    std::string path_prefix;
    FaultKind kind = FaultKind::status;
    int status = 429;
    std::optional<std::string> retry_after;
    int delay_ms = 0;
    int count = 1;
    int code = 0; ///< The body's "code"; 0 = the status's usual one.

    [[nodiscard]] bool matches(std::string_view request_method, std::string_view path) const {
        return (method.empty() || method == request_method) && path.starts_with(path_prefix);
    }
};

/// The common fault keys plus "code". Throws std::invalid_argument.
CreatorFault creator_fault_from_json(const nlohmann::json& json);

struct CreatorRequest {
    std::string method;
    std::string path;  ///< Without the query.
    std::string query; ///< Raw.
    std::string record_cursor;
    std::string body;
    int status = 0; ///< 0: the connection was reset.
    int code = 0;   ///< The answer's top-level "code", 0 if none.
};

class CreatorFake {
public:
    /// true when `access_token` is valid (e.g. ZohoAccountsFake::validate); asked for tokens
    /// not added with add_token().
    using TokenValidator = std::function<bool(const std::string& access_token)>;

    explicit CreatorFake(CreatorFakeOptions options = {});
    ~CreatorFake();
    CreatorFake(const CreatorFake&) = delete;
    CreatorFake& operator=(const CreatorFake&) = delete;

    int start(int port = 0);
    void stop();
    [[nodiscard]] int port() const;
    /// "http://127.0.0.1:PORT": the api_domain a client uses.
    [[nodiscard]] std::string base_url() const;
    /// "/creator/v2.1/data/{owner}/{app}/form/{form}" and ".../report/{report}".
    [[nodiscard]] std::string form_path() const;
    [[nodiscard]] std::string report_path() const;

    void add_token(const std::string& access_token);
    void set_token_validator(TokenValidator validator);

    // ---- Records, server side ---------------------------------------------------------------
    /// Adds a record (Added_Time = Modified_Time = now); returns it as read.
    nlohmann::json add_record(const nlohmann::json& fields);
    /// Replaces the given fields and moves Modified_Time; returns the record. Throws
    /// std::out_of_range for an unknown ID.
    nlohmann::json edit_record(const std::string& id, const nlohmann::json& fields);
    /// Throws std::out_of_range for an unknown ID.
    void delete_record(const std::string& id);
    /// Every record as read, in ID order.
    [[nodiscard]] std::vector<nlohmann::json> records() const;

    // ---- Settings, faults, statistics ------------------------------------------------------
    void set_per_minute_limit(int limit);
    /// "UTC", "+05:30", "-08:00"; throws std::invalid_argument otherwise.
    void set_time_zone(const std::string& zone);
    /// 404 or 200; throws std::invalid_argument otherwise.
    void set_no_records_status(int status);
    /// Records with this e-mail fail validation (add: code 3001, update: 3070).
    void reject_email(const std::string& email);
    void inject(CreatorFault fault);
    void clear_faults();
    /// Faults injected and not yet taken by a request: 0 once the last one has arrived.
    [[nodiscard]] std::size_t pending_faults() const;
    /// Authenticated API requests (not /_fake/...), and those of them the per-minute limit
    /// refused.
    [[nodiscard]] std::size_t request_count() const;
    [[nodiscard]] std::size_t throttled_count() const;
    /// The most recent requests (at most 100,000), oldest first.
    [[nodiscard]] std::vector<CreatorRequest> requests() const;
    void set_clock_offset(std::chrono::milliseconds offset);
    /// The fake's clock, ms since the epoch.
    [[nodiscard]] std::int64_t now_ms() const;
    void set_shutdown_handler(std::function<void()> handler);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
