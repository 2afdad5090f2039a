#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/json_body.hpp"
#include "lib/http/retry_policy.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::dialfire {

inline constexpr const char* k_default_api_url = "https://api.dialfire.com";
inline constexpr std::size_t k_contacts_per_request = 20; // the API's limit for E3
inline constexpr int k_list_page_size = 1000;

// "2024-01-01T10:00:00.123" (UTC, no zone): the API's from/to parameter format.
std::string format_dialfire_time(SystemTime t);

// The run's clock: the server's Date header when it sent one, else (with a warning in the log)
// the local clock. Checkpoints come from it.
SystemTime server_time(const std::optional<SystemTime>& date_header);

struct ApiConfig {
    std::string base_url = k_default_api_url; // without trailing slash
    std::string campaign;
    std::string token;
    bool verify_tls = true;
};

struct CampaignField {
    std::string name;
    std::string field_type; // "number" -> number column, anything else -> text
};

struct ListedContact {
    std::string id;
    std::string md5;
};

struct ContactListPage {
    std::vector<ListedContact> contacts;
    std::string cursor; // empty on the last page
};

// A record that came back in a form that cannot be stored: kept as a reject, so one hostile
// record never stops the job.
struct RecordReject {
    std::string id; // the record's id, or the ids asked for (comma separated) when unknown
    std::string reason;
    std::string raw; // what is left of the record, for inspection
};

struct SimdjsonContacts; // simdjson_contacts.hpp

struct FetchedContacts {
    std::vector<nlohmann::json> contacts;
    // With keep_simdjson, where simdjson took the answer: the contacts (then not in
    // `contacts`), in its document.
    std::shared_ptr<const SimdjsonContacts> kept;
    std::vector<RecordReject> rejects;
    std::size_t missing = 0; // ids asked for that came back neither as contact nor as reject
};

struct JsonPage {
    std::vector<nlohmann::json> results;
    std::string cursor;
};

// The Dialfire API as reference/dbsync2.md §2 describes it (E1-E5), Bearer token, query values
// URL-encoded, every request retried per the RetryContext, bodies rebuilt on each attempt.
// One client per thread (it owns one keep-alive connection).
class ApiClient {
public:
    ApiClient(ApiConfig config, http::RetryContext retry);

    // E1. Also returns the server's clock (Date header), so windows never rest on ours.
    std::vector<CampaignField> fields(std::optional<SystemTime>* server_now = nullptr);
    // E2. `changed_since` is a date (YYYY-MM-DD) or empty for all contacts.
    ContactListPage list_contacts(const std::string& changed_since, const std::string& cursor);
    // E3, at most k_contacts_per_request ids. A body that does not parse, received twice with
    // the same bytes (so not damaged in transit), is asked for again id by id; an id whose own
    // answer does not parse becomes a reject naming it. Contacts nested deeper than
    // http::k_max_json_depth become rejects too. keep_simdjson: see FetchedContacts::kept.
    FetchedContacts fetch_contacts(const std::vector<std::string>& ids, bool keep_simdjson = false);
    // E5. from/to in the API's format (2006-01-02T15:04:05.999, UTC); `to` may be empty.
    JsonPage inbound_calls(const std::string& from, const std::string& to,
                           const std::string& cursor);
    // E4 result strings "<fired>|<md5>|<contactId>|<pointer>".
    struct TransactionPage {
        std::vector<std::string> events;
        std::string cursor;
    };
    TransactionPage transactions(const std::string& query_without_cursor,
                                 const std::string& cursor);

    // Bytes of invalid UTF-8 replaced in answers so far.
    long repaired_bytes() const noexcept { return m_repaired; }

private:
    nlohmann::json get_json(const std::string& path_and_query, const std::string& what,
                            std::optional<SystemTime>* server_now = nullptr);
    // `unparsable`, when given, accepts a body that fails to parse twice with the same bytes:
    // it is then set and the discarded document returned.
    nlohmann::json send_json(http::HttpRequest request, const std::string& what,
                             std::optional<SystemTime>* server_now,
                             std::vector<std::size_t>* too_deep = nullptr,
                             bool* unparsable = nullptr);
    // send_json's answer as parse_json_body gives it (keep_simdjson: see there).
    http::JsonBody send_for_body(http::HttpRequest request, const std::string& what,
                                 std::optional<SystemTime>* server_now,
                                 std::vector<std::size_t>* too_deep, bool* unparsable,
                                 bool keep_simdjson);

    ApiConfig m_config;
    http::RetryContext m_retry;
    http::HttpClient m_http;
    long m_repaired = 0;
};

} // namespace crmsync::drivers::dialfire
