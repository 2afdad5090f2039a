#include "tests/fakes/bitrix24/portal.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <set>
#include <stdexcept>
#include <tuple>

namespace crmsync::fakes::bitrix24 {
namespace {

constexpr std::int64_t k_seconds_per_hour = 3600;
constexpr std::int64_t k_min_move_gap = 60;
constexpr std::int64_t k_first_status_id = 101; // The §1.5 example's first deal stage.
constexpr std::int64_t k_status_id_step = 2;    // 101, 103, ... as in that example.
constexpr int k_percent_pipeline_change = 3;
constexpr int k_percent_early_close = 12;
constexpr int k_percent_won = 55;
constexpr std::uint64_t k_assignees = 12;
constexpr std::uint64_t k_salt_deal = 0x6465616cULL;
constexpr std::uint64_t k_salt_ids = 0x69647321ULL;
constexpr std::uint64_t k_salt_title = 0x7469746cULL;
constexpr std::uint64_t k_salt_added = 0x61646465ULL;
constexpr std::uint64_t k_salt_stage = 0x73746167ULL;

// SplitMix64: tiny, fast and good enough for test data.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

class Rng {
public:
    explicit Rng(std::uint64_t seed) : m_state(seed) {}
    std::uint64_t next() {
        m_state += 0x9E3779B97F4A7C15ULL;
        return mix(m_state);
    }
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
    bool percent(int p) { return below(100) < static_cast<std::uint64_t>(p); }

private:
    std::uint64_t m_state;
};

std::uint64_t seed_of(std::uint64_t seed, std::uint64_t salt, std::uint64_t index) {
    return mix(seed ^ mix(salt ^ mix(index)));
}

std::string status_id_of(int category, const std::string& code) {
    return category == 0 ? code : "C" + std::to_string(category) + ":" + code;
}

std::string entity_id_of(int category) {
    return category == 0 ? "DEAL_STAGE" : "DEAL_STAGE_" + std::to_string(category);
}

Bitrix24StageSpec stage(std::string code, std::string name, int sort, Bitrix24Semantics semantics,
                        std::string color, bool system = true) {
    return {std::move(code), std::move(name), sort, semantics, std::move(color), system};
}

// Lead statuses (ENTITY_ID "STATUS"): listed by an unfiltered crm.status.list, as on a real
// portal, so that a client must filter by ENTITY_ID. Their STATUS_IDs collide with deal stages.
const std::vector<Bitrix24StageSpec>& lead_statuses() {
    using S = Bitrix24Semantics;
    static const std::vector<Bitrix24StageSpec> k_statuses{
        stage("NEW", "Unassigned", 10, S::process, "#2FC6F6"),
        stage("IN_PROCESS", "In progress", 20, S::process, "#55D0E0"),
        stage("PROCESSED", "Processed", 30, S::process, "#FFA900"),
        stage("CONVERTED", "Good lead", 40, S::success, "#7BD500"),
        stage("JUNK", "Junk lead", 50, S::failure, "#FF5752"),
    };
    return k_statuses;
}

} // namespace

char semantic_char(Bitrix24Semantics semantics) {
    switch (semantics) {
    case Bitrix24Semantics::process:
        return 'P';
    case Bitrix24Semantics::success:
        return 'S';
    case Bitrix24Semantics::failure:
    case Bitrix24Semantics::apology:
        return 'F';
    }
    return 'P';
}

} // namespace crmsync::fakes::bitrix24

namespace crmsync::fakes {

const std::vector<Bitrix24CategorySpec>& default_bitrix24_categories() {
    using bitrix24::stage;
    using S = Bitrix24Semantics;
    static const std::vector<Bitrix24CategorySpec> k_categories{
        {0,
         "General",
         100,
         {stage("NEW", "New", 10, S::process, "#39A8EF"),
          stage("PREPARATION", "Document preparation", 20, S::process, "#2FC6F6"),
          stage("PREPAYMENT_INVOICE", "Invoice", 30, S::process, "#55D0E0"),
          stage("EXECUTING", "In progress", 40, S::process, "#47E4C2"),
          stage("FINAL_INVOICE", "Final invoice", 50, S::process, "#FFA900"),
          stage("WON", "Deal won", 60, S::success, "#7BD500"),
          stage("LOSE", "Deal lost", 70, S::failure, "#FF5752"),
          // The §1.5 example: APOLOGY is not a system stage and has an empty NAME_INIT.
          stage("APOLOGY", "Analyze failure", 80, S::apology, "#FF5752", false)}},
        {3,
         "Enamour Pipeline",
         200,
         {stage("NEW", "New match", 10, S::process, "#39A8EF"),
          stage("PREPARATION", "First date", 20, S::process, "#2FC6F6"),
          stage("UC_DATE2X", "Second date", 30, S::process, "#55D0E0", false),
          stage("EXECUTING", "Relationship", 40, S::process, "#47E4C2"),
          stage("WON", "Engaged", 50, S::success, "#7BD500"),
          stage("LOSE", "No match", 60, S::failure, "#FF5752"),
          stage("UC_GHOST1", "Ghosted", 70, S::apology, "#FF5752", false)}},
    };
    return k_categories;
}

} // namespace crmsync::fakes

namespace crmsync::fakes::bitrix24 {

Portal::Portal(const Bitrix24Options& options, std::int64_t history_end) : m_options(options) {
    if (m_options.categories.empty()) {
        m_options.categories = default_bitrix24_categories();
    }
    if (m_options.history_per_deal == 0) {
        throw std::invalid_argument("history_per_deal must be at least 1");
    }
    if (m_options.deals > std::numeric_limits<std::uint32_t>::max() / 4 ||
        m_options.history_per_deal > 10'000 ||
        m_options.deals * m_options.history_per_deal >
            std::numeric_limits<std::uint32_t>::max() / 4) {
        throw std::invalid_argument("too many deals or history rows");
    }
    std::int64_t lead_id = 1;
    for (const auto& spec : lead_statuses()) {
        StatusRow row;
        row.id = lead_id;
        lead_id += k_status_id_step;
        row.entity_id = "STATUS";
        row.status_id = spec.code;
        row.name = spec.name;
        row.name_init = spec.name;
        row.sort = spec.sort;
        row.system = true;
        row.color = spec.color;
        row.semantics = spec.semantics;
        m_statuses.push_back(std::move(row));
    }
    std::set<int> ids;
    for (const auto& category : m_options.categories) {
        if (category.id < 0 || !ids.insert(category.id).second) {
            throw std::invalid_argument("duplicate or negative category id " +
                                        std::to_string(category.id));
        }
        bool has_process = false;
        bool has_final = false;
        std::set<std::string> codes;
        for (const auto& spec : category.stages) {
            if (spec.code.empty() || !codes.insert(spec.code).second) {
                throw std::invalid_argument("empty or duplicate stage code in category " +
                                            std::to_string(category.id));
            }
            has_process = has_process || spec.semantics == Bitrix24Semantics::process;
            has_final = has_final || spec.semantics != Bitrix24Semantics::process;
        }
        if (!has_process || !has_final) {
            throw std::invalid_argument("category " + std::to_string(category.id) +
                                        " needs a process stage and a final stage");
        }
        m_categories.push_back({category.id, category.name, category.sort});
        for (const auto& spec : category.stages) {
            add_status(category.id, spec);
        }
    }
    rebuild_pipelines();
    generate(history_end);
}

void Portal::add_status(int category, const Bitrix24StageSpec& spec) {
    StatusRow row;
    row.id = m_next_status_id;
    m_next_status_id += k_status_id_step;
    row.entity_id = entity_id_of(category);
    row.status_id = status_id_of(category, spec.code);
    row.name = spec.name;
    row.name_init = spec.system ? spec.name : "";
    row.sort = spec.sort;
    row.system = spec.system;
    row.category = category;
    row.color = spec.color;
    row.semantics = spec.semantics;
    intern(row.status_id, category);
    m_statuses.push_back(std::move(row));
}

std::uint16_t Portal::intern(const std::string& status_id, int category) {
    if (const auto it = m_ref_by_status.find(status_id); it != m_ref_by_status.end()) {
        return it->second;
    }
    if (m_refs.size() >= std::numeric_limits<std::uint16_t>::max()) {
        throw std::invalid_argument("too many distinct stages");
    }
    const auto index = static_cast<std::uint16_t>(m_refs.size());
    m_refs.push_back({status_id, category});
    m_ref_by_status.emplace(status_id, index);
    return index;
}

void Portal::rebuild_pipelines() {
    m_pipelines.clear();
    for (const auto& category : m_categories) {
        Pipeline p;
        p.category = category.id;
        std::vector<const StatusRow*> rows;
        for (const auto& row : m_statuses) {
            if (row.category == category.id) {
                rows.push_back(&row);
            }
        }
        std::sort(rows.begin(), rows.end(), [](const StatusRow* a, const StatusRow* b) {
            return std::tie(a->sort, a->id) < std::tie(b->sort, b->id);
        });
        for (const auto* row : rows) {
            const auto ref = m_ref_by_status.at(row->status_id);
            switch (row->semantics) {
            case Bitrix24Semantics::process:
                p.process.push_back(ref);
                break;
            case Bitrix24Semantics::success:
                p.success.push_back(ref);
                break;
            default:
                p.failure.push_back(ref);
            }
        }
        m_pipelines.push_back(std::move(p));
    }
}

const Portal::Pipeline* Portal::pipeline(int category) const {
    for (const auto& p : m_pipelines) {
        if (p.category == category) {
            return &p;
        }
    }
    return nullptr;
}

StatusRow* Portal::find_deal_status(std::string_view status_id) {
    for (auto& row : m_statuses) {
        if (row.category && row.status_id == status_id) {
            return &row;
        }
    }
    return nullptr;
}

const StatusRow* Portal::find_deal_status(std::string_view status_id) const {
    return const_cast<Portal*>(this)->find_deal_status(status_id);
}

// One step along a pipeline: mostly to the next process stage, sometimes straight to a final
// stage, rarely into another pipeline; deals in a final (or deleted) stage are reopened.
std::optional<Portal::Move> Portal::next_move(std::uint16_t stage, std::uint64_t seed) const {
    Rng rng(seed);
    const auto category = m_refs[stage].category;
    if (m_pipelines.size() > 1 && rng.percent(k_percent_pipeline_change)) {
        std::size_t current = 0;
        while (current < m_pipelines.size() && m_pipelines[current].category != category) {
            ++current;
        }
        const auto other = (current + 1 + rng.below(m_pipelines.size() - 1)) % m_pipelines.size();
        if (!m_pipelines[other].process.empty() && other != current) {
            return Move{m_pipelines[other].process.front(), 5};
        }
    }
    const auto* p = pipeline(category);
    if (p == nullptr || p->process.empty()) {
        return std::nullopt;
    }
    const auto it = std::find(p->process.begin(), p->process.end(), stage);
    if (it == p->process.end()) {
        return Move{p->process.front(), 2};
    }
    const bool last = it + 1 == p->process.end();
    if (last || rng.percent(k_percent_early_close)) {
        if (!p->success.empty() && (p->failure.empty() || rng.percent(k_percent_won))) {
            return Move{p->success.front(), 3};
        }
        if (!p->failure.empty()) {
            return Move{p->failure[rng.below(p->failure.size())], 3};
        }
        if (last) {
            return std::nullopt;
        }
    }
    return Move{*(it + 1), 2};
}

void Portal::generate(std::int64_t history_end) {
    const auto per_deal = m_options.history_per_deal;
    const auto span = std::max<std::int64_t>(
        static_cast<std::int64_t>(m_options.history_span.count()) * k_seconds_per_hour,
        k_seconds_per_hour);
    std::vector<char> ref_semantic(m_refs.size(), 'P');
    for (const auto& row : m_statuses) {
        if (row.category) {
            ref_semantic[m_ref_by_status.at(row.status_id)] = semantic_char(row.semantics);
        }
    }
    m_deals.resize(m_options.deals);
    m_history.reserve(m_options.deals * per_deal);
    for (std::size_t i = 0; i < m_deals.size(); ++i) {
        const auto deal_seed = seed_of(m_options.seed, k_salt_deal, i);
        Rng rng(deal_seed);
        const auto& p = m_pipelines[rng.below(m_pipelines.size())];
        const auto created =
            history_end - span +
            static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(span) * 3 / 4));
        const auto max_gap = std::max<std::int64_t>(
            k_min_move_gap + 1, (history_end - created) / static_cast<std::int64_t>(per_deal));
        auto stage = p.process.front();
        auto at = created;
        const auto owner = static_cast<std::uint32_t>(i + 1);
        const auto semantic = [&ref_semantic](std::uint16_t ref) { return ref_semantic[ref]; };
        m_history.push_back({at, 0, owner, stage, 1, semantic(stage)});
        for (std::size_t k = 1; k < per_deal; ++k) {
            at += k_min_move_gap + static_cast<std::int64_t>(rng.below(
                                       static_cast<std::uint64_t>(max_gap - k_min_move_gap)));
            const auto move = next_move(stage, rng.next());
            if (!move) {
                break; // Only for hand-made pipelines without final stages; validated against.
            }
            stage = move->stage;
            m_history.push_back({at, 0, owner, stage, move->type, semantic(stage)});
        }
        auto& deal = m_deals[i];
        deal.created = created;
        deal.modified = at;
        deal.stage = stage;
        deal.semantic = semantic(stage);
        deal.assigned_by = static_cast<std::uint8_t>(1 + rng.below(k_assignees));
        deal.opportunity = static_cast<std::uint32_t>(100 * (1 + rng.below(5'000)));
    }
    // Bitrix24 numbers rows as they are written, so ids follow CREATED_TIME; a few gaps stand
    // for rows of deleted deals.
    std::sort(m_history.begin(), m_history.end(), [](const HistoryRow& a, const HistoryRow& b) {
        return std::tie(a.created, a.owner) < std::tie(b.created, b.owner);
    });
    Rng ids(seed_of(m_options.seed, k_salt_ids, 0));
    std::uint32_t next = 1;
    for (auto& row : m_history) {
        row.id = next;
        next += 1 + (ids.below(20) == 0 ? static_cast<std::uint32_t>(1 + ids.below(3)) : 0U);
    }
    m_next_history_id = next;
}

const DealRow* Portal::deal(std::int64_t id) const {
    if (id < 1 || static_cast<std::uint64_t>(id) > m_deals.size()) {
        return nullptr;
    }
    return &m_deals[static_cast<std::size_t>(id - 1)];
}

std::string Portal::deal_title(std::int64_t id) const {
    // Some names carry non-ASCII letters or an apostrophe, to exercise encoding and quoting.
    static constexpr std::array<std::string_view, 16> k_names{
        "Anna",  "Maria", "Olga",  "Sofia", "Elena",   "Ivan",  "Dmitry", "Alexei",
        "Pavel", "Zoë",   "Søren", "Анна",  "Дмитрий", "Ольга", "O'Neil", "Jean-Luc"};
    Rng rng(seed_of(m_options.seed, k_salt_title, static_cast<std::uint64_t>(id)));
    const auto a = k_names[rng.below(k_names.size())];
    const auto b = k_names[rng.below(k_names.size())];
    return "Match #" + std::to_string(id) + ": " + std::string(a) + " & " + std::string(b);
}

int Portal::deal_category(const DealRow& deal) const { return m_refs[deal.stage].category; }

bool Portal::deal_is_new(const DealRow& deal) const {
    const auto* p = pipeline(deal_category(deal));
    return p != nullptr && !p->process.empty() && p->process.front() == deal.stage;
}

Bitrix24HistoryEntry Portal::entry(const HistoryRow& row) const {
    const auto& ref = m_refs[row.stage];
    return {row.id, row.type, row.owner, row.created, ref.category, row.semantic, ref.status_id};
}

Bitrix24Deal Portal::deal_info(std::int64_t id) const {
    const auto* d = deal(id);
    if (d == nullptr) {
        throw std::invalid_argument("no deal " + std::to_string(id));
    }
    return {id,          deal_title(id), deal_category(*d), m_refs[d->stage].status_id,
            d->semantic, d->created,     d->modified,       d->assigned_by};
}

Bitrix24Stage Portal::stage_of(const StatusRow& row) const {
    return {row.id,        row.entity_id, row.status_id, row.name,
            row.name_init, row.sort,      row.system,    row.category.value_or(0),
            row.color,     row.semantics};
}

std::vector<Bitrix24Stage> Portal::deal_stages() const {
    std::vector<Bitrix24Stage> out;
    for (const auto& row : m_statuses) {
        if (row.category) {
            out.push_back(stage_of(row));
        }
    }
    return out;
}

std::optional<Bitrix24Stage> Portal::deal_stage(std::string_view status_id) const {
    const auto* row = find_deal_status(status_id);
    if (row == nullptr) {
        return std::nullopt;
    }
    return stage_of(*row);
}

Bitrix24HistoryEntry Portal::append(std::size_t deal_index, Move move, std::int64_t now) {
    auto& deal = m_deals[deal_index];
    const auto* status = find_deal_status(m_refs[move.stage].status_id);
    HistoryRow row;
    row.created = std::max(now, deal.modified);
    row.id = m_next_history_id++;
    row.owner = static_cast<std::uint32_t>(deal_index + 1);
    row.stage = move.stage;
    row.type = move.type;
    row.semantic = status != nullptr ? semantic_char(status->semantics) : 'P';
    m_history.push_back(row);
    deal.stage = row.stage;
    deal.semantic = row.semantic;
    deal.modified = row.created;
    return entry(row);
}

std::vector<Bitrix24HistoryEntry> Portal::add_history(std::size_t n, std::int64_t now) {
    std::vector<Bitrix24HistoryEntry> added;
    const auto deals = m_deals.size();
    for (std::size_t attempts = 0; deals > 0 && added.size() < n && attempts < n + deals;
         ++attempts) {
        const auto index = m_touch_cursor++ % deals;
        const auto move =
            next_move(m_deals[index].stage, seed_of(m_options.seed, k_salt_added, m_moves_added++));
        if (move) {
            added.push_back(append(index, *move, now));
        }
    }
    return added;
}

Bitrix24HistoryEntry Portal::move_deal(std::int64_t deal_id, std::string_view status_id,
                                       std::int64_t now) {
    const auto* d = deal(deal_id);
    if (d == nullptr) {
        throw std::invalid_argument("no deal " + std::to_string(deal_id));
    }
    const auto* status = find_deal_status(status_id);
    if (status == nullptr) {
        throw std::invalid_argument("no deal stage " + std::string(status_id));
    }
    Move move;
    move.stage = m_ref_by_status.at(status->status_id);
    if (*status->category != deal_category(*d)) {
        move.type = 5;
    } else {
        move.type = status->semantics == Bitrix24Semantics::process ? 2 : 3;
    }
    return append(static_cast<std::size_t>(deal_id - 1), move, now);
}

bool Portal::rename_stage(std::string_view status_id, std::string name) {
    auto* row = find_deal_status(status_id);
    if (row == nullptr) {
        return false;
    }
    row->name = std::move(name);
    return true;
}

bool Portal::resort_stage(std::string_view status_id, int sort) {
    auto* row = find_deal_status(status_id);
    if (row == nullptr) {
        return false;
    }
    row->sort = sort;
    rebuild_pipelines();
    return true;
}

bool Portal::delete_stage(std::string_view status_id) {
    const auto it = std::find_if(m_statuses.begin(), m_statuses.end(), [&](const StatusRow& row) {
        return row.category && row.status_id == status_id;
    });
    if (it == m_statuses.end()) {
        return false;
    }
    m_statuses.erase(it);
    rebuild_pipelines();
    return true;
}

Bitrix24Stage Portal::add_stage(int category_id, Bitrix24StageSpec spec) {
    if (pipeline(category_id) == nullptr) {
        throw std::invalid_argument("no category " + std::to_string(category_id));
    }
    if (spec.code.empty()) {
        static constexpr std::string_view k_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        do {
            Rng rng(seed_of(m_options.seed, k_salt_stage, m_stages_added++));
            spec.code = "UC_";
            for (int i = 0; i < 6; ++i) {
                spec.code += k_alphabet[rng.below(k_alphabet.size())];
            }
        } while (find_deal_status(status_id_of(category_id, spec.code)) != nullptr);
    }
    const auto status_id = status_id_of(category_id, spec.code);
    if (find_deal_status(status_id) != nullptr) {
        throw std::invalid_argument("stage " + status_id + " exists");
    }
    add_status(category_id, spec);
    rebuild_pipelines();
    return stage_of(m_statuses.back());
}

} // namespace crmsync::fakes::bitrix24
