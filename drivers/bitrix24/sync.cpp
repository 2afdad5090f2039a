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
#include <deque>
#include <exception>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace crmsync::drivers::bitrix24 {
namespace {

// History pages whose deal titles are asked for in one `batch` when pages come one per
// request (at most 500 deals: 10 crm.deal.list sub-calls): 11 requests per 500 rows instead of
// 20, which matters at 2/s. Batched history uses groups of k_requests_per_title_batch history
// batches: 4 requests per 7,500 rows at most.
constexpr std::size_t k_pages_per_title_batch = 10;
constexpr std::size_t k_requests_per_title_batch = 3;
// Deals whose titles one `batch` can ask for (50 crm.deal.list sub-calls of 50 IDs): a group of
// pages ends when it names this many deals not yet known.
constexpr std::size_t k_owners_per_title_batch = k_page_size * k_batch_limit;
// Pages fetched ahead of the writer, at least: the next group is fetched while one is written,
// and memory stays flat (a page is 50 small records).
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
// start=-1), deal titles through `batch` for groups of pages. The first page of a run comes on
// its own (it counts the rows to fetch); after it, up to `pages_per_request` pages come chained
// in one `batch` request, as many as the count says are left. Each page carries the last ID as
// the checkpoint (or the stored one in a --since run that may not move it), so it is committed
// on its own, after its read-back. A batch command that fails ends the batch there: the pages
// before it are handed out (and committed), then the failure is thrown, unless it is one
// Bitrix24 lifts by itself, which is backed off and retried from the last good page.
// Pages fetched for one titles batch, and the deals they name whose titles are not known.
struct Group {
    std::deque<pipeline::Page> pages;
    std::unordered_set<std::int64_t> owners;
};

class HistorySource final : public pipeline::Source {
public:
    HistorySource(ApiClient& api, HistoryQuery query, bool may_checkpoint, std::string mode,
                  std::size_t pages_per_request)
        : m_api(api), m_query(std::move(query)), m_may_checkpoint(may_checkpoint),
          m_mode(std::move(mode)),
          m_pages_per_request(std::clamp<std::size_t>(pages_per_request, 1, k_batch_limit)) {}

    void open(const std::optional<std::string>& checkpoint) override {
        m_stored = checkpoint;
        m_query.count = true;
    }

    std::optional<pipeline::Page> next_page() override {
        if (m_ready.empty() && !m_last_fetched && !m_failure) {
            fetch_group();
        }
        if (m_ready.empty()) {
            if (m_failure) {
                std::rethrow_exception(std::exchange(m_failure, nullptr));
            }
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
        m_ready.pop_front();
        return page;
    }

    void report(pipeline::RunSummary& /*summary*/) const override {
        log::info("bulk-history: {} API requests, {} history pages in {} batch requests",
                  m_api.requests(), m_batched_pages, m_batches);
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

    // How many pages the next request asks for: 1 for the counted first page and while
    // pages come one at a time, else the pages the count says are left plus one (the page
    // that shows the end, or rows that came since), at most `m_pages_per_request`.
    std::size_t pages_to_ask() const {
        if (m_query.count || m_single_pages > 0 || m_pages_per_request == 1) {
            return 1;
        }
        if (!m_expected) {
            return m_pages_per_request;
        }
        const auto full_pages =
            std::max<std::int64_t>(*m_expected, 0) / static_cast<std::int64_t>(k_page_size);
        return std::min(static_cast<std::size_t>(full_pages) + 1, m_pages_per_request);
    }

    // One page through crm.stagehistory.list itself (the first page, and any page of a batch
    // whose answer could not be read).
    void fetch_single(Group& group) {
        auto history = m_api.stage_history(m_query);
        const bool counted = m_query.count;
        m_query.count = false;
        if (m_single_pages > 0) {
            --m_single_pages;
        }
        std::vector<std::int64_t> ids;
        auto unreadable = nlohmann::json::array();
        if (!history.unreadable.empty()) {
            history = fetch_item_by_item(history.unreadable, ids, unreadable);
        } else {
            m_last_fetched = history.items.size() < k_page_size;
        }
        if (counted && history.total) {
            log::info("{} history rows to fetch after ID {}", *history.total, m_query.after_id);
            m_expected = *history.total;
        }
        add_page(std::move(history), std::move(ids), std::move(unreadable), group);
    }

    // Up to `pages` chained pages in one `batch` request. False when a command failed for
    // good: the pages before it are in the group and the failure is kept for next_page().
    bool fetch_batch(std::size_t pages, Group& group) {
        auto batch = m_api.stage_history_batch(m_query, pages);
        ++m_batches;
        if (!batch.unreadable.empty()) {
            // One hostile item spoils the whole answer: its pages one at a time find it.
            log::warn("Bitrix24 batch of {} crm.stagehistory.list pages after ID {} cannot be "
                      "read ({}); fetching them one page per request",
                      pages, m_query.after_id, batch.unreadable);
            m_single_pages = pages;
            return true;
        }
        m_batched_pages += static_cast<long>(batch.pages.size());
        const bool progressed = !batch.pages.empty();
        for (auto& page : batch.pages) {
            add_page(std::move(page), {}, nlohmann::json::array(), group);
        }
        m_last_fetched = batch.last;
        if (batch.broken_chain) {
            log::warn("Bitrix24 batch: a page asked for after the previous page's last ID sent "
                      "rows before it (the portal did not resolve $result[...]); going on one "
                      "page per request");
            m_pages_per_request = 1;
        }
        if (batch.failure.is_null()) {
            m_transient_attempt = 0;
            return true;
        }
        const std::string code = error_code_of(batch.failure);
        const std::string text = error_text_of(batch.failure);
        if (is_transient_error_code(code)) {
            m_transient_attempt = progressed ? 1 : m_transient_attempt + 1;
            try {
                m_api.backoff_transient(m_transient_attempt, "batch crm.stagehistory.list", text);
            } catch (const Error&) {
                m_failure = std::current_exception();
                return false;
            }
            return true;
        }
        if (is_auth_error_code(code)) {
            m_failure = std::make_exception_ptr(
                Error(ErrorKind::auth, "Bitrix24 refused crm.stagehistory.list: " + text,
                      "the webhook's user must be allowed to read deals and their history"));
        } else {
            m_failure = std::make_exception_ptr(Error(
                ErrorKind::data,
                fmt::format("Bitrix24 crm.stagehistory.list after ID {} failed inside a batch: {}",
                            m_query.after_id, text),
                "the pages before it are committed; the next run retries from the checkpoint"));
        }
        return false;
    }

    // Adds a fetched page to the group: its rows, its last ID as the checkpoint, the deals
    // whose titles are not known yet. `ids` are those of an item-by-item page.
    void add_page(HistoryPage history, std::vector<std::int64_t> ids, nlohmann::json unreadable,
                  Group& group) {
        for (const auto& item : history.items) {
            if (const auto id = integer_field(item, "ID")) {
                ids.push_back(*id);
            }
            const auto owner = integer_field(item, "OWNER_ID");
            if (owner && !m_titles.contains(*owner)) {
                group.owners.insert(*owner);
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
        m_rows += static_cast<long>(history.items.size());
        if (m_expected) {
            *m_expected -= static_cast<std::int64_t>(history.items.size());
        }
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
        group.pages.push_back(std::move(page));
    }

    void fetch_group() {
        Group group;
        // Three history requests' worth of pages (or 10 pages one at a time) share one titles
        // batch, unless they already name as many new deals as one titles batch can take.
        const std::size_t group_pages =
            std::max(k_pages_per_title_batch, k_requests_per_title_batch * m_pages_per_request);
        while (group.pages.size() < group_pages && group.owners.size() < k_owners_per_title_batch &&
               !m_last_fetched) {
            const std::size_t pages = pages_to_ask();
            if (pages == 1) {
                fetch_single(group);
            } else if (!fetch_batch(pages, group)) {
                break;
            }
        }
        add_titles(group.pages);
        m_ready = std::move(group.pages);
    }
    // Deal titles of a group of pages through one `batch` (the titles not remembered yet).
    void add_titles(std::deque<pipeline::Page>& group) {
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
    std::size_t m_pages_per_request;
    std::optional<std::string> m_stored;
    std::optional<std::string> m_checkpoint;
    std::deque<pipeline::Page> m_ready;
    // History rows still to fetch by the first page's count; nullopt when not counted.
    std::optional<std::int64_t> m_expected;
    // Pages still to fetch one per request after a batch answer that could not be read.
    std::size_t m_single_pages = 0;
    // Consecutive batches whose first command failed with a transient code.
    int m_transient_attempt = 0;
    // A batch command's failure, thrown once the pages before it are handed out.
    std::exception_ptr m_failure;
    long m_batches = 0;
    long m_batched_pages = 0;
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
    HistorySource source(api, query, !options.since || !stored, mode, options.pages_per_request);
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
    // More than a group's pages fit in the queue, so the next group is fetched while one is
    // written, even when the writer falls behind for a while.
    runner.pages_ahead =
        std::max(k_pages_ahead, (k_requests_per_title_batch + 1) * options.pages_per_request);
    runner.deadline = options.deadline;
    runner.show_progress = options.show_progress;
    const auto ending = pipeline::Runner(source, transform, sink, summary, runner).run();
    summary.retries += stats.retries.load();
    return ending;
}

} // namespace crmsync::drivers::bitrix24
