#pragma once

// An in-process fake of the Dialfire API (reference dbsync2.md §2): a real HTTP server on
// 127.0.0.1 that serves one generated campaign through E1-E5, with mutators, fault injection
// and request statistics for tests.
//
// Endpoints ({C} = campaign id; every call needs "Authorization: Bearer <token>"):
//   E1 GET  /api/campaigns/{C}/fields/list
//   E2 GET  /api/campaigns/{C}/contacts/list?limit=&changedSince=YYYY-MM-DD&cursor=
//   E3 POST /api/campaigns/{C}/contacts/?include_md5=true      body: JSON array of <= 20 ids
//   E4 GET  /api/campaigns/{C}/contacts/transactions/?type=&hi=&tasks=&from=&to=&cursor=&limit=
//   E5 GET  /api/campaigns/{C}/inbound/calls/?from=&to=&cursor=&limit=
// Answers: unknown campaign 404, bad or missing token 403, bad parameter 400 (JSON error
// bodies). Every response has a Date header from the fake's clock and Content-Type
// application/json. Pages hold at most `limit` (default and maximum 1000) results; `count` is
// the number of results in the page; `cursor` is present and non-empty exactly when another
// page with results follows (E2 and E5 send "" on the last page, E4 omits the key).
// E4 results look like "<fired>NNNN|<md5>|<contactId>|<taskLogIdx>,<txIdx>" where NNNN is a
// 4-digit suffix after the 'Z', as in the real example of the reference.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include "tests/fakes/common/fault.hpp"
#include "tests/fakes/dialfire/fake_campaign.hpp"

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

struct RecordedRequest {
    std::string method;
    std::string path;  ///< Without the query.
    std::string query; ///< Raw text after '?', "" if none.
    int status = 0;    ///< 0 when the connection was reset.
    std::optional<FaultKind> fault;
    std::int64_t at_ms = 0; ///< Fake clock, ms since the epoch.
    int remote_port = 0;    ///< Client side of the connection: equal ports = a reused connection.
};

class DialfireFake {
public:
    /// Generates the campaign (eagerly computes every contact's md5 and the E4 index).
    /// Throws std::invalid_argument for inconsistent options.
    explicit DialfireFake(FakeCampaignOptions options = {});
    ~DialfireFake();
    DialfireFake(const DialfireFake&) = delete;
    DialfireFake& operator=(const DialfireFake&) = delete;

    /// Binds 127.0.0.1:`port` (0 = any free port), serves on background threads and returns
    /// the bound port. Call once; throws std::runtime_error if binding fails.
    int start(int port = 0);
    /// Stops serving and joins the threads; idempotent. Requests in a `slow` fault are cut short.
    void stop();
    [[nodiscard]] int port() const;
    /// "http://127.0.0.1:PORT"
    [[nodiscard]] std::string base_url() const;
    [[nodiscard]] const FakeCampaignOptions& options() const;

    // ---- Data -------------------------------------------------------------------------------
    /// Every contact id in E2 order.
    [[nodiscard]] std::vector<std::string> contact_ids() const;
    /// The md5 E2 lists for the contact, nullopt if unknown.
    [[nodiscard]] std::optional<std::string> contact_md5(const std::string& id) const;
    /// The exact E3 object text for the contact (include_md5=true), nullopt if unknown.
    [[nodiscard]] std::optional<std::string> contact_text(const std::string& id) const;
    /// Current E1 entries.
    [[nodiscard]] std::vector<FieldDef> fields() const;
    /// Number of E4 events (transactions with a parseable `fired`).
    [[nodiscard]] std::size_t event_count() const;
    /// Hostile data in this campaign (empty unless options.hostile).
    [[nodiscard]] std::vector<HostileItem> hostile_items() const;

    /// Changes the next `n` generated contacts (round robin): appends a transaction fired at
    /// the fake's now (with its own calls), rewrites one custom field, bumps $version, and so
    /// changes the md5 and the E2 change date. Injected raw contacts are skipped. Returns the
    /// ids touched.
    std::vector<std::string> touch_contacts(std::size_t n);
    /// Appends an E1 field. Contacts carry values for it once they are touched.
    void add_custom_field(std::string name, std::string field_type = "text");
    /// Makes E3 answer `id` with this JSON (dumped; throws nlohmann's type_error on invalid
    /// UTF-8). Adds the contact to E2 if new. Its E2 md5 is its "$md5" string if present, else
    /// the md5 of the text; its change time is now; its $task_log transactions feed E4.
    void set_contact_json(const std::string& id, const nlohmann::json& contact);
    /// As set_contact_json with byte-exact text (which need not even be valid JSON).
    void set_contact_text(const std::string& id, std::string text);
    /// Adds a contact under its "$id", or under a fresh generated id if it has none (E3 then
    /// sends it without $id, exactly as given). Returns the id listed by E2.
    std::string add_raw_contact(const nlohmann::json& contact);
    /// Adds the hostile records that once stopped a job for good (the HostileCase values from
    /// lone_surrogate on): one raw contact each, plus the field "x VALUES (y)", which every
    /// generated contact then carries (they are touched). Returns what it added.
    std::vector<HostileItem> add_hardening_cases();

    // ---- Paging quirks -----------------------------------------------------------------------
    /// E2 paging as the API may answer it, and clients must survive.
    struct ListPaging {
        std::size_t max_page = 0;   ///< results per E2 page at most (0: as many as `limit` asks)
        bool empty_pages = false;   ///< a page without results but with a cursor before each page
        bool repeat_cursor = false; ///< pages asked with a cursor answer that same cursor
    };
    void set_list_paging(ListPaging paging);
    /// E3 leaves these ids out (as if deleted after E2 listed them), until called again.
    void withhold_contacts(std::vector<std::string> ids);

    // ---- Faults -----------------------------------------------------------------------------
    void inject(Fault fault);
    void clear_faults();
    /// Sum of the remaining counts of all injected faults.
    [[nodiscard]] std::size_t pending_faults() const;

    // ---- Statistics -------------------------------------------------------------------------
    /// API requests (not /_fake/...) whose path starts with `path_prefix`.
    [[nodiscard]] std::size_t request_count(std::string_view path_prefix = "") const;
    /// The most recent API requests (at most 100,000), oldest first.
    [[nodiscard]] std::vector<RecordedRequest> requests() const;
    void reset_stats();

    // ---- Clock ------------------------------------------------------------------------------
    /// The fake's clock = system clock + offset; drives Date headers and touch times.
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
