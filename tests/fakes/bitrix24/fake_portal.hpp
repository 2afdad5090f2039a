#pragma once

// Public description of the portal a Bitrix24Fake serves: its options, deal pipelines
// (categories) with their stages, and the rows tests compare API answers with.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::fakes {

/// EXTRA.SEMANTICS of a crm.status.list row (reference apis.md §1.5). SEMANTICS is null for
/// process stages, "S" for success and "F" for failure and apology; crm.stagehistory.list's
/// STAGE_SEMANTIC_ID is "P", "S" or "F".
enum class Bitrix24Semantics : std::uint8_t { process, success, failure, apology };

struct Bitrix24StageSpec {
    /// STATUS_ID without the "C<category>:" prefix that non-default pipelines add (§1.4),
    /// e.g. "NEW", "WON", "UC_7K2M1Q".
    std::string code;
    std::string name;
    int sort = 10;
    Bitrix24Semantics semantics = Bitrix24Semantics::process;
    std::string color = "#39A8EF";
    /// SYSTEM "Y". NAME_INIT is the original name for system stages and "" for custom ones.
    bool system = true;
};

struct Bitrix24CategorySpec {
    int id = 0; ///< 0 is the default pipeline (ENTITY_ID "DEAL_STAGE", CATEGORY_ID null).
    std::string name;
    int sort = 100;
    /// Needs at least one process stage and one success or failure stage.
    std::vector<Bitrix24StageSpec> stages;
};

/// Pipeline 0 "General" with Bitrix24's eight stock deal stages (NEW ... WON, LOSE, APOLOGY as
/// in the §1.5 example) and pipeline 3 "Enamour Pipeline" (the seed's category #3) with six
/// stages, two of them custom.
const std::vector<Bitrix24CategorySpec>& default_bitrix24_categories();

/// Everything that shapes the portal. Equal options (including `history_end`) give
/// byte-identical answers, apart from the `time` block of the envelope.
struct Bitrix24Options {
    int user_id = 1;
    /// Real webhook codes are 16 lower-case letters and digits.
    std::string webhook_code = "fake0b24webhook0";
    /// Non-empty: /rest/{method} with the parameter auth=<token> is accepted as an OAuth call.
    std::string oauth_token;
    std::size_t deals = 100;
    /// Exactly this many stage-history rows per deal (>= 1): a creation row (TYPE_ID 1), then
    /// moves (2 intermediate, 3 final, 5 pipeline change). 20,000 x 10 builds in well under a
    /// second and costs about 24 bytes per row.
    std::size_t history_per_deal = 5;
    /// Empty means default_bitrix24_categories().
    std::vector<Bitrix24CategorySpec> categories;
    std::uint64_t seed = 42;
    /// The generated history lies in [history_end - history_span, history_end]. Unset means
    /// the wall clock at construction, floored to the second.
    std::optional<std::chrono::system_clock::time_point> history_end;
    std::chrono::hours history_span{24 * 365};
    /// The portal's time zone: every date the API sends carries this offset (§1.2).
    int utc_offset_minutes = 180;
    /// crm.stagehistory.list sends ID, TYPE_ID, OWNER_ID and CATEGORY_ID as JSON integers, as
    /// the documented example does; true sends them as strings, which reference §1.4 says
    /// real portals may do. crm.status.list and crm.deal.* always send strings.
    bool history_numbers_as_strings = false;
    /// The leaky bucket of §1.7: every API request adds 1, the level drains
    /// `rate_limit_per_second`, and a request that would lift it above `rate_limit_burst` gets
    /// 503 QUERY_LIMIT_EXCEEDED. Defaults are the non-Enterprise plans' 2/s and 50.
    bool rate_limit = false;
    double rate_limit_burst = 50;
    double rate_limit_per_second = 2;
    /// Connections are served one per thread (keep-alive), so this bounds parallel clients.
    std::size_t worker_threads = 16;
    /// Registers the unauthenticated /_fake/... control endpoints (the executable turns them
    /// on; in-process tests call the C++ methods instead).
    bool control_endpoints = false;
};

/// One deal-stage row of crm.status.list.
struct Bitrix24Stage {
    std::int64_t id = 0;   ///< "ID"
    std::string entity_id; ///< "DEAL_STAGE" or "DEAL_STAGE_<category>"
    std::string status_id; ///< "NEW" or "C3:NEW"
    std::string name;
    std::string name_init;
    int sort = 0;
    bool system = false;
    int category_id = 0;
    std::string color;
    Bitrix24Semantics semantics = Bitrix24Semantics::process;
};

struct Bitrix24Category {
    int id = 0;
    std::string name;
    int sort = 0;
};

/// One crm.stagehistory.list item (entityTypeId 2).
struct Bitrix24HistoryEntry {
    std::int64_t id = 0;
    int type_id = 1; ///< 1 created, 2 intermediate stage, 3 final stage, 5 pipeline change
    std::int64_t owner_id = 0; ///< Deal ID.
    std::int64_t created = 0;  ///< CREATED_TIME, epoch seconds.
    int category_id = 0;
    char semantic_id = 'P'; ///< STAGE_SEMANTIC_ID
    std::string stage_id;   ///< STATUS_ID of the stage, kept when the stage is deleted.
};

struct Bitrix24Deal {
    std::int64_t id = 0;
    std::string title;
    int category_id = 0;
    std::string stage_id;
    char semantic_id = 'P';
    std::int64_t created = 0;  ///< DATE_CREATE, epoch seconds
    std::int64_t modified = 0; ///< DATE_MODIFY: the last stage move
    std::int64_t assigned_by_id = 1;
};

} // namespace crmsync::fakes
