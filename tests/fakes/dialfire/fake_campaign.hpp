#pragma once

// Public description of the campaign a DialfireFake serves: its options, its field list entries
// and, for the hostile campaign, the catalogue of nasty data tests can assert on.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::fakes {

/// Everything that shapes the generated campaign. The same options (including `history_end`)
/// always produce byte-identical API answers.
struct FakeCampaignOptions {
    std::string campaign_id = "DEMO0000CAMPAIGN";
    std::string token = "demo-token";
    std::size_t contacts = 100;
    /// Active custom fields (E1 type "field", not deleted). Every third one is a "number".
    /// E1 additionally lists one deleted field and one non-field entry.
    std::size_t custom_fields = 8;
    std::size_t transactions_per_contact = 3;
    /// Typical number of calls per transaction. About a quarter of transactions (assignments, API
    /// updates, manual edits) have none; about 10 % of calls get a following `technology:
    /// "transfer"` connection and about 10 % a nested `third_party_connections` child.
    std::size_t connections_per_transaction = 1;
    /// Each answered call carries 0..max recordings (uniform).
    std::size_t max_recordings_per_connection = 1;
    std::size_t inbound_calls = 20;
    std::uint64_t seed = 42;
    /// Adds the data listed by hostile_items() (needs at least 8 contacts).
    bool hostile = false;
    /// The generated history covers [history_end - history_span, history_end]. Unset means the
    /// wall clock at construction, floored to the second; set it for reproducible md5s.
    std::optional<std::chrono::system_clock::time_point> history_end;
    std::chrono::hours history_span{24 * 30};
    /// Each connection holds a worker thread while open (an idle keep-alive connection for up to
    /// 5 s); connections beyond this many wait for a free worker.
    std::size_t worker_threads = 32;
    /// Registers the unauthenticated /_fake/... control endpoints (the executable turns them
    /// on; in-process tests call the C++ methods instead).
    bool control_endpoints = false;
};

/// One E1 entry.
struct FieldDef {
    std::string name;
    std::string field_type = "text"; ///< "text", "number", ...
    std::string type = "field";      ///< Only "field" entries are data columns.
    std::string state = "active";
    bool deleted = false;
};

enum class HostileCase {
    field_name_double_quote,
    field_name_single_quote,
    field_name_backtick,
    field_name_bracket,
    field_name_sql_comment,
    field_name_space,
    field_name_non_ascii,
    field_name_100_chars,
    field_name_case_twin, ///< Two entries: the names differ only in letter case.
    field_name_reserved_id,
    field_name_raw,
    value_1mb,
    value_invalid_utf8, ///< Raw bytes 0xC3 0x28 and 0xFF inside a JSON string.
    value_nul,          ///< "\u0000" inside a JSON string.
    contact_without_id, ///< No "$id" in the E3 object; the E2 entry has the id.
    pause_time_not_number,
    transaction_without_fired,
    duplicate_fired, ///< Two transactions of one contact with the same `fired` millisecond.
    // Added by DialfireFake::add_hardening_cases(), never by the generator:
    lone_surrogate,     ///< "\ud800" (legal JSON text, no Unicode character) in a value.
    number_1e30,        ///< 1e30 in a number field.
    year_past_9999,     ///< A time whose zone offset carries it into the year 10000.
    nul_in_id,          ///< A NUL byte inside "$id" (E2 lists it the same way).
    deep_nesting,       ///< A value nested 200,000 levels deep.
    unparsable_contact, ///< E3 text that is no JSON: every E3 body holding it fails to parse.
    field_name_values,  ///< A custom field named "x VALUES (y)", with a value in every contact.
};

/// One piece of hostile data. Field cases name the field; contact cases name the contact
/// (as listed by E2) and the custom field carrying the value, if any.
struct HostileItem {
    HostileCase what;
    std::string contact_id;
    std::string field_name;
    std::string description;
};

/// Size of the HostileCase::value_1mb string in bytes.
constexpr std::size_t k_hostile_huge_value_size = std::size_t{1024} * 1024;

/// The extra E1 fields of the hostile campaign, in E1 order (after the normal fields).
/// Contacts carry values for all of them except "$id", which would duplicate the key.
const std::vector<FieldDef>& hostile_fields();

} // namespace crmsync::fakes
