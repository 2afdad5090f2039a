#include "drivers/bitrix24/sync.hpp"

#include "drivers/bitrix24/transform.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/batch_writer.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <unordered_map>
#include <unordered_set>

namespace crmsync::drivers::bitrix24 {
namespace {

// History pages whose deal titles are asked for in one `batch` (at most 500 deals: 10
// crm.deal.list sub-calls): 11 requests per 500 rows instead of 20, which matters at 2/s.
constexpr std::size_t k_pages_per_title_batch = 10;
// Pages fetched ahead of the writer: the next group is fetched while one is written, and
// memory stays flat (a page is 50 small records).
constexpr std::size_t k_pages_ahead = 2 * k_pages_per_title_batch;
// Deal titles remembered across pages (a deal's history spreads over many pages); cleared
// when full so memory stays bounded.
constexpr std::size_t k_title_cache_limit = 100'000;

// "2024-01-01T00:00:00+00:00": the date form §1.2 documents for the API.
std::string bitrix_time(SystemTime t) {
    const std::time_t seconds =
        std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// History pages after the checkpoint with the bulk pattern (order ID ASC, filter >ID,
// start=-1), deal titles through `batch` for groups of pages. Each page carries the last ID
// as the checkpoint (or the stored one in a --since run that may not move it), so it is
// committed on its own, after its read-back.
class HistorySource final : public pipeline::Source {
public:
    HistorySource(ApiClient& api, HistoryQuery query, bool may_checkpoint, std::string mode)
        : m_api(api), m_query(std::move(query)), m_may_checkpoint(may_checkpoint),
          m_mode(std::move(mode)) {}

    void open(const std::optional<std::string>& checkpoint) override {
        m_stored = checkpoint;
        m_query.count = true;
    }

    std::optional<pipeline::Page> next_page() override {
        if (m_ready.empty() && !m_last_fetched) {
            fetch_group();
        }
        if (m_ready.empty()) {
            if (m_done_sent) {
                return std::nullopt;
            }
            m_done_sent = true;
            pipeline::Page last;
            last.progress = progress_json("done", m_query.after_id);
            last.checkpoint = m_checkpoint;
            return last;
        }
        auto page = std::move(m_ready.front());
        m_ready.erase(m_ready.begin());
        return page;
    }

    void report(pipeline::RunSummary& /*summary*/) const override {
        log::info("bulk-history: {} API requests", m_api.requests());
    }

private:
    std::string progress_json(const char* phase, std::int64_t last_id) const {
        return nlohmann::json{
            {"phase", phase}, {"mode", m_mode}, {"last_id", last_id}, {"history_rows", m_rows}}
            .dump();
    }

    // A page whose content cannot be read, fetched again item by item: its IDs alone first,
    // then each item on its own, so that only the hostile items are left out (listed in
    // `unreadable` with why) and the job moves past them. Throws Error(data) when even the
    // IDs cannot be read: the items cannot be named, and skipping blindly could lose rows.
    HistoryPage fetch_item_by_item(const std::string& why, std::vector<std::int64_t>& ids,
                                   nlohmann::json& unreadable) {
        log::warn("Bitrix24 crm.stagehistory.list after ID {} cannot be read ({}); fetching "
                  "its items one by one",
                  m_query.after_id, why);
        HistoryQuery ids_query = m_query;
        ids_query.count = false;
        ids_query.ids_only = true;
        auto listed = m_api.stage_history(ids_query);
        if (!listed.unreadable.empty()) {
            throw Error(ErrorKind::data,
                        fmt::format("Bitrix24 crm.stagehistory.list after ID {} cannot be read "
                                    "({}), not even the IDs of its items",
                                    m_query.after_id, listed.unreadable),
                        "the portal or a proxy in front of it answers with a broken page; the "
                        "next run retries from the checkpoint");
        }
        HistoryPage page;
        for (const auto& item : listed.items) {
            const auto id = integer_field(item, "ID");
            if (!id) {
                continue; // the full page had it too: it cannot be asked for, nor stored
            }
            ids.push_back(*id);
            HistoryQuery one;
            one.only_id = *id;
            auto alone = m_api.stage_history(one);
            if (!alone.unreadable.empty()) {
                unreadable.push_back({{"id", *id}, {"why", alone.unreadable}});
                continue;
            }
            for (auto& full : alone.items) {
                page.items.push_back(std::move(full));
            }
        }
        m_last_fetched = listed.items.size() < k_page_size;
        return page;
    }

    void fetch_group() {
        std::vector<pipeline::Page> group;
        while (group.size() < k_pages_per_title_batch && !m_last_fetched) {
            auto history = m_api.stage_history(m_query);
            m_query.count = false;
            std::vector<std::int64_t> ids;
            auto unreadable = nlohmann::json::array();
            if (!history.unreadable.empty()) {
                history = fetch_item_by_item(history.unreadable, ids, unreadable);
            } else {
                m_last_fetched = history.items.size() < k_page_size;
            }
            for (const auto& item : history.items) {
                if (const auto id = integer_field(item, "ID")) {
                    ids.push_back(*id);
                }
            }
            std::int64_t last_id = m_query.after_id;
            for (const auto id : ids) {
                last_id = std::max(last_id, id);
            }
            if (!ids.empty() && last_id <= m_query.after_id) {
                throw Error(ErrorKind::data,
                            fmt::format("Bitrix24 crm.stagehistory.list sent no item with an "
                                        "ID above {} for filter >ID {}",
                                        m_query.after_id, m_query.after_id),
                            "the portal ignores the documented filter; report this");
            }
            if (history.total) {
                log::info("{} history rows to fetch after ID {}", *history.total, m_query.after_id);
            }
            m_rows += static_cast<long>(history.items.size());
            pipeline::Page page;
            page.stream = "history";
            page.total = history.total;
            page.context = {{"after_id", m_query.after_id},
                            {"titles", nlohmann::json::object()},
                            {"unreadable", std::move(unreadable)}};
            page.records = std::move(history.items);
            m_query.after_id = last_id;
            if (m_may_checkpoint) {
                m_checkpoint = std::to_string(last_id);
            } else {
                m_checkpoint = m_stored;
            }
            page.checkpoint = m_checkpoint;
            page.progress = progress_json(m_mode.c_str(), last_id);
            group.push_back(std::move(page));
        }
        add_titles(group);
        m_ready = std::move(group);
    }

    // Deal titles of a group of pages through one `batch` (the titles not remembered yet).
    void add_titles(std::vector<pipeline::Page>& group) {
        std::vector<std::int64_t> missing;
        std::unordered_set<std::int64_t> seen;
        for (const auto& page : group) {
            for (const auto& item : page.records) {
                const auto owner = integer_field(item, "OWNER_ID");
                if (owner && !m_titles.contains(*owner) && seen.insert(*owner).second) {
                    missing.push_back(*owner);
                }
            }
        }
        if (!missing.empty()) {
            if (m_titles.size() + missing.size() > k_title_cache_limit) {
                m_titles.clear();
            }
            for (auto& [id, title] : m_api.deal_titles(missing)) {
                m_titles[id] = std::move(title);
            }
        }
        for (auto& page : group) {
            auto& titles = page.context["titles"];
            for (const auto& item : page.records) {
                if (const auto owner = integer_field(item, "OWNER_ID")) {
                    const auto it = m_titles.find(*owner);
                    titles[std::to_string(*owner)] = it == m_titles.end() || !it->second
                                                         ? nlohmann::json()
                                                         : nlohmann::json(*it->second);
                }
            }
        }
    }

    ApiClient& m_api;
    HistoryQuery m_query;
    bool m_may_checkpoint;
    std::string m_mode;
    std::optional<std::string> m_stored;
    std::optional<std::string> m_checkpoint;
    std::vector<pipeline::Page> m_ready;
    std::unordered_map<std::int64_t, std::optional<std::string>> m_titles;
    long m_rows = 0;
    bool m_last_fetched = false;
    bool m_done_sent = false;
};

// CRM_STAGE_LIST brought in step in one transaction: new stages inserted, changed ones updated
// with DATE_UPDATE, stages gone from the portal set ACTIVE = 'N'. Stages that cannot be
// stored become rejects (committed right after).
void sync_stage_list(const std::vector<nlohmann::json>& stages, const sql::TableSpec& spec,
                     std::optional<int> category, sql::Database& db, pipeline::TargetWriter& sink,
                     pipeline::RunSummary& summary) {
    const auto& table = spec.table;
    const auto& dialect = db.dialect();
    std::vector<sql::Row> portal;
    for (const auto& stage : stages) {
        sql::Row row;
        std::string problem;
        if (stage_row(spec, stage, row, problem)) {
            portal.push_back(std::move(row));
        } else {
            const auto id = integer_field(stage, "ID");
            sink.reject(table.name, id ? std::to_string(*id) : "", problem,
                        stage.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        }
    }
    const std::string now = util::format_sql_timestamp(Clock::real().wall_now());
    const std::size_t key = table.position(table.key());
    std::vector<sql::RejectedRow> refused;
    sql::WriteCounts counts;
    StageChanges changes;
    {
        sql::Transaction transaction(db);
        std::vector<std::string> names;
        for (const auto& c : table.columns) {
            names.push_back(c.name);
        }
        const auto stored = db.query(dialect.select_all(table, names));
        changes = diff_stages(table, portal, stored, category);

        const std::size_t inserted_at = table.position(k_inserted_at);
        for (auto& row : changes.inserts) {
            row[inserted_at] = now;
        }
        sql::BatchWriter writer(db);
        counts = writer.upsert({&table, changes.inserts}, now, refused);

        const auto columns = stage_update_columns(table);
        const std::string update = dialect.update_by_key(table, columns);
        for (const auto& row : changes.updates) {
            std::vector<sql::Value> params;
            std::optional<std::string> problem;
            for (const auto* c : columns) {
                const auto value = c->name == table.changed_at_column
                                       ? sql::Value{now}
                                       : row[table.position(c->name)];
                if (value && !problem) {
                    problem = dialect.value_problem(*c, *value);
                }
                params.push_back(value);
            }
            if (problem) {
                refused.push_back({table.name, *row[key], *problem});
                continue;
            }
            params.push_back(row[key]);
            db.execute(update, params);
            ++counts.updated;
            log::info("stage {} changed on the portal", *row[key]);
        }
        const std::string deactivate = dialect.update_by_key(
            table, {table.find("ACTIVE"), table.find(table.changed_at_column)});
        for (const auto& id : changes.deactivate) {
            db.execute(deactivate, {sql::Value{"N"}, sql::Value{now}, sql::Value{id}});
            log::info("stage {} was deleted on the portal: ACTIVE = N", id);
        }
        transaction.commit();
    }
    counts.updated += static_cast<long>(changes.deactivate.size());
    counts.unchanged += changes.unchanged;
    for (const auto& r : refused) {
        sink.reject(r.table, r.key, r.reason, "");
    }
    summary.tables[table.name] += counts;
    summary.counters.emplace_back("stages deactivated",
                                  static_cast<long>(changes.deactivate.size()));
}

} // namespace

std::string job_key(const SyncOptions& options) {
    std::string key = "bulk_history:" + options.api.webhook.host + ":" + options.env;
    if (options.category) {
        key += ":C" + std::to_string(*options.category);
    }
    if (!options.table_prefix.empty()) {
        key += ":" + options.table_prefix;
    }
    return key;
}

pipeline::Ending run_sync(const SyncOptions& options, sql::Database& db,
                          pipeline::TargetWriter& sink, pipeline::RunSummary& summary) {
    http::RetryStats stats;
    ApiClient api(options.api,
                  http::RetryContext{options.retry, stats, Clock::real(), options.deadline, ""});
    const auto schema = Bitrix24Schema::load(options.table_prefix, options.env);
    // The first request: a refused webhook fails here, before any table exists.
    const auto stages = api.deal_stages(options.category);
    if (options.category && stages.empty()) {
        throw Error(ErrorKind::usage,
                    fmt::format("the portal lists no stages for deal pipeline {} "
                                "(crm.status.list ENTITY_ID {})",
                                *options.category, stage_entity_id(*options.category)),
                    "check --category: it is the pipeline's ID (CATEGORY_ID), 0 for the "
                    "default pipeline");
    }
    sink.prepare({&schema.list().table, &schema.history().table});
    const auto state = sink.load_state();
    std::optional<std::int64_t> stored;
    if (state.checkpoint) {
        std::int64_t id = 0;
        const auto& text = *state.checkpoint;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
        if (ec == std::errc{} && end == text.data() + text.size() && id >= 0) {
            stored = id;
            summary.checkpoint = text;
        } else {
            log::warn("stored checkpoint '{}' is not a history ID; loading the whole history",
                      text);
        }
    }
    const std::string mode = stored ? "actualize" : "upload";
    log::info("bulk-history {} ({}): checkpoint {}, {} deal stages on the portal", job_key(options),
              mode, stored ? std::to_string(*stored) : "none", stages.size());

    sync_stage_list(stages, schema.list(), options.category, db, sink, summary);
    sink.commit(std::nullopt, nlohmann::json{{"phase", "stages"}, {"mode", mode}}.dump());

    HistoryQuery query;
    query.after_id = options.since ? 0 : stored.value_or(0);
    query.category = options.category;
    if (options.since) {
        query.since = bitrix_time(*options.since);
    }
    // A --since run skips history older than the date, so it may only set a checkpoint where
    // there was none: moving an existing one could jump over rows it left out.
    HistorySource source(api, query, !options.since || !stored, mode);
    const auto& history = schema.history();
    std::int64_t page_after = 0;
    sink.verify_read_back(history.table, [&page_after] {
        return fmt::format("history rows after ID {}", page_after);
    });
    const auto transform = [&](const pipeline::Page& page, pipeline::Emitter& out,
                               pipeline::RunSummary& /*summary*/) {
        const auto unreadable =
            page.context.is_object() ? page.context.find("unreadable") : page.context.end();
        for (const auto& item :
             unreadable == page.context.end() ? nlohmann::json::array() : *unreadable) {
            out.reject(history.table.name, std::to_string(item.at("id").get<std::int64_t>()),
                       "crm.stagehistory.list cannot read this item: " +
                           item.at("why").get<std::string>(),
                       "");
        }
        if (page.records.empty()) {
            return;
        }
        page_after = page.context.value("after_id", std::int64_t{0});
        const auto& titles = page.context.at("titles");
        for (const auto& item : page.records) {
            const auto owner = integer_field(item, "OWNER_ID");
            std::optional<std::string> title;
            if (owner) {
                const auto it = titles.find(std::to_string(*owner));
                if (it != titles.end() && it->is_string()) {
                    title = it->get<std::string>();
                }
            }
            sql::Row row;
            std::string problem;
            if (history_row(history, item, title, row, problem)) {
                out.add(history.table, std::move(row));
            } else {
                const auto id = integer_field(item, "ID");
                out.reject(history.table.name, id ? std::to_string(*id) : "", problem,
                           item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            }
        }
    };
    pipeline::RunnerOptions runner;
    runner.label = "rows";
    runner.pages_ahead = k_pages_ahead;
    runner.deadline = options.deadline;
    runner.show_progress = options.show_progress;
    const auto ending = pipeline::Runner(source, transform, sink, summary, runner).run();
    summary.retries += stats.retries.load();
    return ending;
}

} // namespace crmsync::drivers::bitrix24
