#pragma once

// The data of a fake Bitrix24 portal: status rows, deal pipelines, deals and their stage
// history. Generated deterministically from the options, and stored as compact rows (24 bytes
// per history row, no JSON) so that a 200,000-row benchmark portal costs a few MB.
//
// Not thread-safe: Bitrix24Fake guards it with a shared mutex.

#include "tests/fakes/bitrix24/fake_portal.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace crmsync::fakes::bitrix24 {

struct HistoryRow {
    std::int64_t created = 0; ///< Epoch seconds.
    std::uint32_t id = 0;
    std::uint32_t owner = 0; ///< Deal ID.
    std::uint16_t stage = 0; ///< Index into the stage references.
    std::uint8_t type = 1;
    char semantic = 'P';
};

/// A STATUS_ID that history rows may point to, also after its stage was deleted.
struct StageRef {
    std::string status_id;
    int category = 0;
};

struct DealRow {
    std::int64_t created = 0;
    std::int64_t modified = 0;
    std::uint32_t opportunity = 0; ///< Whole currency units.
    std::uint16_t stage = 0;
    std::uint8_t assigned_by = 1;
    char semantic = 'P';
};

/// One crm.status.list row. `category` is empty for rows that are not deal stages (the lead
/// statuses the fake also lists, so that clients have to filter by ENTITY_ID).
struct StatusRow {
    std::int64_t id = 0;
    std::string entity_id;
    std::string status_id;
    std::string name;
    std::string name_init;
    int sort = 0;
    bool system = false;
    std::optional<int> category;
    std::string color;
    Bitrix24Semantics semantics = Bitrix24Semantics::process;
};

/// 'P', 'S' or 'F'.
char semantic_char(Bitrix24Semantics semantics);

class Portal {
public:
    /// Throws std::invalid_argument for options that cannot make a portal (a pipeline without
    /// a process or a final stage, duplicate category ids or stage codes, zero rows per deal).
    Portal(const Bitrix24Options& options, std::int64_t history_end);

    /// Ascending by id.
    [[nodiscard]] const std::vector<HistoryRow>& history() const { return m_history; }
    [[nodiscard]] const StageRef& stage_ref(std::uint16_t index) const { return m_refs[index]; }
    /// Ascending by id.
    [[nodiscard]] const std::vector<StatusRow>& statuses() const { return m_statuses; }
    [[nodiscard]] const std::vector<Bitrix24Category>& categories() const { return m_categories; }
    [[nodiscard]] std::size_t deal_count() const { return m_deals.size(); }
    /// Deal IDs are 1..deal_count(); nullptr for others.
    [[nodiscard]] const DealRow* deal(std::int64_t id) const;
    [[nodiscard]] std::string deal_title(std::int64_t id) const;
    [[nodiscard]] int deal_category(const DealRow& deal) const;
    /// True while the deal sits in the first process stage of its pipeline (IS_NEW).
    [[nodiscard]] bool deal_is_new(const DealRow& deal) const;

    [[nodiscard]] Bitrix24HistoryEntry entry(const HistoryRow& row) const;
    [[nodiscard]] Bitrix24Deal deal_info(std::int64_t id) const;
    /// The current deal stages, ascending by id.
    [[nodiscard]] std::vector<Bitrix24Stage> deal_stages() const;
    [[nodiscard]] std::optional<Bitrix24Stage> deal_stage(std::string_view status_id) const;

    /// Moves the next `n` deals (round robin) one step along their pipelines at `now` (or just
    /// after their last move, if later); the new rows get ids above every existing one.
    std::vector<Bitrix24HistoryEntry> add_history(std::size_t n, std::int64_t now);
    /// Moves one deal to a current deal stage. Throws std::invalid_argument for an unknown
    /// deal or stage.
    Bitrix24HistoryEntry move_deal(std::int64_t deal_id, std::string_view status_id,
                                   std::int64_t now);
    /// False if there is no such deal stage.
    bool rename_stage(std::string_view status_id, std::string name);
    bool resort_stage(std::string_view status_id, int sort);
    /// History rows and deals keep the STATUS_ID, as Bitrix24 keeps b_crm_deal_stage_history.
    bool delete_stage(std::string_view status_id);
    /// An empty code gets a generated "UC_XXXXXX". Throws std::invalid_argument for an unknown
    /// category or a STATUS_ID that exists.
    Bitrix24Stage add_stage(int category_id, Bitrix24StageSpec spec);

private:
    struct Pipeline {
        int category = 0;
        std::vector<std::uint16_t> process; ///< By SORT, then ID.
        std::vector<std::uint16_t> success;
        std::vector<std::uint16_t> failure; ///< failure and apology
    };
    struct Move {
        std::uint16_t stage = 0;
        std::uint8_t type = 2;
    };

    void add_status(int category, const Bitrix24StageSpec& spec);
    std::uint16_t intern(const std::string& status_id, int category);
    void rebuild_pipelines();
    [[nodiscard]] const Pipeline* pipeline(int category) const;
    [[nodiscard]] StatusRow* find_deal_status(std::string_view status_id);
    [[nodiscard]] const StatusRow* find_deal_status(std::string_view status_id) const;
    [[nodiscard]] Bitrix24Stage stage_of(const StatusRow& row) const;
    std::optional<Move> next_move(std::uint16_t stage, std::uint64_t seed) const;
    Bitrix24HistoryEntry append(std::size_t deal_index, Move move, std::int64_t now);
    void generate(std::int64_t history_end);

    Bitrix24Options m_options;
    std::vector<Bitrix24Category> m_categories;
    std::vector<StatusRow> m_statuses;
    std::vector<StageRef> m_refs;
    std::unordered_map<std::string, std::uint16_t> m_ref_by_status;
    std::vector<Pipeline> m_pipelines;
    std::vector<DealRow> m_deals;
    std::vector<HistoryRow> m_history;
    std::int64_t m_next_status_id = 101;
    std::uint32_t m_next_history_id = 1;
    std::size_t m_touch_cursor = 0;
    std::uint64_t m_moves_added = 0;
    std::uint64_t m_stages_added = 0;
};

} // namespace crmsync::fakes::bitrix24
