#include "drivers/bitrix24/sync.hpp"

#include "drivers/bitrix24/transform.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/pipeline/bounded_queue.hpp"
#include "lib/pipeline/progress.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/sql/batch_writer.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <exception>
#include <thread>
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
// Keys named in a verification error.
constexpr std::size_t k_keys_in_error = 5;

// "2024-01-01T00:00:00+00:00": the date form §1.2 documents for the API.
std::string bitrix_time(SystemTime t) {
    const std::time_t seconds =
        std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string duration_text(double seconds) {
    const auto s = static_cast<long>(seconds + 0.5);
    if (s >= 3600) {
        return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
    }
    if (s >= 60) {
        return fmt::format("{}m{:02}s", s / 60, s % 60);
    }
    return fmt::format("{}s", s);
}

struct FetchedPage {
    std::vector<nlohmann::json> items;
    std::unordered_map<std::int64_t, std::optional<std::string>> titles; // of its deals
    std::optional<std::int64_t> total;                                   // the first page only
    std::int64_t last_id = 0;                                            // highest ID of the page
};

// Fetches history pages and their deal titles on its own thread, ahead of the writer. Owns
// the ApiClient while it runs. stop() (also in the destructor) closes the queue and joins.
class HistoryFetcher {
public:
    HistoryFetcher(ApiClient& api, const SyncOptions& options, HistoryQuery query)
        : m_api(api), m_options(options), m_query(std::move(query)), m_queue(k_pages_ahead) {
        m_thread = std::thread([this] { run(); });
    }
    HistoryFetcher(const HistoryFetcher&) = delete;
    HistoryFetcher& operator=(const HistoryFetcher&) = delete;
    ~HistoryFetcher() { stop(); }

    std::optional<FetchedPage> next() { return m_queue.pop(); }

    void stop() {
        m_queue.close();
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    // Valid after stop().
    std::exception_ptr error() const { return m_error; }
    bool out_of_time() const { return m_out_of_time; }

private:
    void run() {
        try {
            fetch_all();
        } catch (...) {
            m_error = std::current_exception();
        }
        // Wakes the writer; what is queued is still drained.
        m_queue.close();
    }

    void fetch_all() {
        m_query.count = true;
        std::vector<FetchedPage> group;
        for (;;) {
            if (stop_requested()) {
                return;
            }
            if (m_options.deadline && std::chrono::steady_clock::now() > *m_options.deadline) {
                m_out_of_time = true;
                return;
            }
            auto history = m_api.stage_history(m_query);
            m_query.count = false;
            FetchedPage page;
            page.total = history.total;
            page.items = std::move(history.items);
            page.last_id = m_query.after_id;
            for (const auto& item : page.items) {
                if (const auto id = integer_field(item, "ID")) {
                    page.last_id = std::max(page.last_id, *id);
                }
            }
            if (!page.items.empty() && page.last_id <= m_query.after_id) {
                throw Error(ErrorKind::data,
                            fmt::format("Bitrix24 crm.stagehistory.list sent no item with an "
                                        "ID above {} for filter >ID {}",
                                        m_query.after_id, m_query.after_id),
                            "the portal ignores the documented filter; report this");
            }
            const bool last = page.items.size() < k_page_size;
            m_query.after_id = page.last_id;
            group.push_back(std::move(page));
            if (group.size() < k_pages_per_title_batch && !last) {
                continue;
            }
            add_titles(group);
            for (auto& ready : group) {
                if (!m_queue.push(std::move(ready))) {
                    return;
                }
            }
            group.clear();
            if (last) {
                return;
            }
        }
    }

    // Deal titles of a group of pages through one `batch` (the titles not remembered yet).
    void add_titles(std::vector<FetchedPage>& group) {
        std::vector<std::int64_t> missing;
        std::unordered_set<std::int64_t> seen;
        for (const auto& page : group) {
            for (const auto& item : page.items) {
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
            for (const auto& item : page.items) {
                if (const auto owner = integer_field(item, "OWNER_ID")) {
                    const auto it = m_titles.find(*owner);
                    page.titles[*owner] = it == m_titles.end() ? std::nullopt : it->second;
                }
            }
        }
    }

    ApiClient& m_api;
    const SyncOptions& m_options;
    HistoryQuery m_query;
    pipeline::BoundedQueue<FetchedPage> m_queue;
    std::unordered_map<std::int64_t, std::optional<std::string>> m_titles;
    std::exception_ptr m_error;
    bool m_out_of_time = false;
    std::thread m_thread;
};

class SyncRun {
public:
    SyncRun(const SyncOptions& options, sql::Database& db, pipeline::RunSummary& summary)
        : m_options(options), m_db(db), m_summary(summary), m_job(job_key(options)),
          m_schema(Bitrix24Schema::load(options.table_prefix, options.env)),
          m_own(sql::load_schema("crmsync.json", "")), m_writer(db, m_job, summary),
          m_progress(options.show_progress) {}

    void run() {
        ApiClient api(m_options.api, http::RetryContext{m_options.retry, m_stats, Clock::real(),
                                                        m_options.deadline, ""});
        // The first request: a refused webhook fails here, before any table exists.
        const auto stages = api.deal_stages(m_options.category);
        if (m_options.category && stages.empty()) {
            throw Error(ErrorKind::usage,
                        fmt::format("the portal lists no stages for deal pipeline {} "
                                    "(crm.status.list ENTITY_ID {})",
                                    *m_options.category, stage_entity_id(*m_options.category)),
                        "check --category: it is the pipeline's ID (CATEGORY_ID), 0 for the "
                        "default pipeline");
        }
        m_writer.prepare({&m_schema.list().table, &m_schema.history().table});
        const auto state = m_writer.load_state();
        std::optional<std::int64_t> stored;
        if (state.checkpoint) {
            std::int64_t id = 0;
            const auto& text = *state.checkpoint;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
            if (ec == std::errc{} && end == text.data() + text.size() && id >= 0) {
                stored = id;
                m_summary.checkpoint = text;
            } else {
                log::warn("stored checkpoint '{}' is not a history ID; loading the whole history",
                          text);
            }
        }
        m_mode = stored ? "actualize" : "upload";
        // A --since run skips history older than the date, so it may only set a checkpoint
        // where there was none: moving an existing one could jump over rows it left out.
        m_may_checkpoint = !m_options.since || !stored;
        m_checkpoint = stored;
        log::info("bulk-history {} ({}): checkpoint {}, {} deal stages on the portal", m_job,
                  m_mode, stored ? std::to_string(*stored) : "none", stages.size());

        sync_stage_list(stages);

        HistoryQuery query;
        query.after_id = m_options.since ? 0 : stored.value_or(0);
        query.category = m_options.category;
        if (m_options.since) {
            query.since = bitrix_time(*m_options.since);
        }
        sync_history(api, query);
        m_progress.finish();
        m_summary.retries = m_stats.retries.load();
        commit_page({}, {}, progress_json("done"));
        log::info("bulk-history {}: {} API requests", m_job, api.requests());
        if (m_interrupted) {
            throw Error(ErrorKind::interrupted,
                        "interrupted; every page fetched so far was committed",
                        "run again to continue from the checkpoint");
        }
        if (m_out_of_time) {
            m_summary.status = "partial";
            log::warn("time budget (--max-runtime) reached; the next run continues");
        }
    }

private:
    struct Reject {
        std::string table;
        std::string key;
        std::string reason;
        std::string raw;
    };

    std::string progress_json(const char* phase) const {
        return nlohmann::json{{"phase", phase},
                              {"mode", m_mode},
                              {"last_id", m_last_id},
                              {"history_rows", m_summary.fetched}}
            .dump();
    }

    std::string now_text() const { return util::format_sql_timestamp(Clock::real().wall_now()); }

    // Rows of crmsync_rejects, inside the caller's transaction.
    void write_rejects(const std::vector<Reject>& rejects, const std::string& now) {
        if (rejects.empty()) {
            return;
        }
        const auto& table = sql::find_spec(m_own, "crmsync_rejects", "").table;
        sql::TableRows rows{&table, {}};
        for (const auto& r : rejects) {
            sql::Row row(table.columns.size());
            const auto set = [&](const char* column, sql::Value value) {
                if (const auto pos = table.position(column); pos != std::string::npos) {
                    row[pos] = std::move(value);
                }
            };
            set("id", util::md5_hex(m_job + "\x1f" + r.table + "\x1f" + r.key + "\x1f" + r.reason));
            set("job", m_job);
            set("table_name", r.table);
            set("record_key", r.key);
            set("reason", r.reason);
            set("raw", r.raw);
            rows.rows.push_back(std::move(row));
            log::warn("rejected {} {}: {}", r.table, r.key.empty() ? "(no key)" : r.key, r.reason);
        }
        std::vector<sql::RejectedRow> ignored;
        sql::BatchWriter(m_db).upsert(rows, now, ignored);
        m_summary.rejected += static_cast<long>(rejects.size());
    }

    void sync_stage_list(const std::vector<nlohmann::json>& stages) {
        const auto& spec = m_schema.list();
        const auto& table = spec.table;
        const auto& dialect = m_db.dialect();
        std::vector<Reject> rejects;
        std::vector<sql::Row> portal;
        for (const auto& stage : stages) {
            sql::Row row;
            std::string problem;
            if (stage_row(spec, stage, row, problem)) {
                portal.push_back(std::move(row));
            } else {
                const auto id = integer_field(stage, "ID");
                rejects.push_back(
                    {table.name, id ? std::to_string(*id) : "", problem,
                     stage.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
            }
        }
        const std::string now = now_text();
        const std::size_t key = table.position(table.key());
        sql::Transaction transaction(m_db);
        std::string select = "SELECT ";
        for (std::size_t i = 0; i < table.columns.size(); ++i) {
            select += (i ? ", " : "") + dialect.quote(table.columns[i].name);
        }
        const auto stored = m_db.query(select + " FROM " + dialect.quote(table.name));
        auto changes = diff_stages(table, portal, stored, m_options.category);

        const std::size_t inserted_at = table.position(k_inserted_at);
        for (auto& row : changes.inserts) {
            row[inserted_at] = now;
        }
        std::vector<sql::RejectedRow> refused;
        sql::BatchWriter writer(m_db);
        auto counts = writer.upsert({&table, changes.inserts}, now, refused);

        const auto columns = stage_update_columns(table);
        const std::string update = update_by_key_sql(dialect, table, columns);
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
            m_db.execute(update, params);
            ++counts.updated;
            log::info("stage {} changed on the portal", *row[key]);
        }
        const std::string deactivate = update_by_key_sql(
            dialect, table, {table.find("ACTIVE"), table.find(table.changed_at_column)});
        for (const auto& id : changes.deactivate) {
            m_db.execute(deactivate, {sql::Value{"N"}, sql::Value{now}, sql::Value{id}});
            log::info("stage {} was deleted on the portal: ACTIVE = N", id);
        }
        counts.updated += static_cast<long>(changes.deactivate.size());
        counts.unchanged += changes.unchanged;
        for (const auto& r : refused) {
            rejects.push_back({r.table, r.key, r.reason, ""});
        }
        write_rejects(rejects, now);
        transaction.commit();
        m_summary.tables[table.name] += counts;
        m_summary.counters.emplace_back("stages deactivated",
                                        static_cast<long>(changes.deactivate.size()));
    }

    // One transaction: the page's rows, their read-back, rejects and the job's state row.
    // `rows` empty writes the state row alone.
    void commit_page(const std::vector<sql::Row>& rows, std::vector<Reject> rejects,
                     const std::string& progress) {
        const auto& table = m_schema.history().table;
        const std::string now = now_text();
        std::vector<sql::RejectedRow> refused;
        sql::BatchWriter writer(m_db);
        sql::WriteCounts counts;
        sql::Transaction transaction(m_db);
        if (!rows.empty()) {
            counts = writer.upsert({&table, rows}, now, refused);
            verify(rows, refused);
        }
        for (const auto& r : refused) {
            rejects.push_back({r.table, r.key, r.reason, ""});
        }
        write_rejects(rejects, now);
        const auto& state = sql::find_spec(m_own, "crmsync_state", "").table;
        sql::Row row(state.columns.size());
        const auto set = [&](const char* column, sql::Value value) {
            if (const auto pos = state.position(column); pos != std::string::npos) {
                row[pos] = std::move(value);
            }
        };
        set("job", m_job);
        set("checkpoint", m_checkpoint ? sql::Value{std::to_string(*m_checkpoint)} : sql::Value{});
        set("progress", progress);
        set("updated_at", now);
        std::vector<sql::RejectedRow> ignored;
        writer.upsert({&state, {row}}, now, ignored);
        transaction.commit();
        m_summary.tables[table.name] += counts;
        if (m_checkpoint) {
            m_summary.checkpoint = std::to_string(*m_checkpoint);
        }
    }

    // The seed's step-by-step verification: every EXTERNAL_ID written must read back in the
    // same transaction before it commits with the checkpoint.
    void verify(const std::vector<sql::Row>& rows, const std::vector<sql::RejectedRow>& refused) {
        const auto& table = m_schema.history().table;
        const std::size_t key = table.position(table.key());
        std::unordered_set<std::string> expected;
        for (const auto& row : rows) {
            expected.insert(*row[key]);
        }
        for (const auto& r : refused) {
            expected.erase(r.key);
        }
        if (expected.empty()) {
            return;
        }
        std::vector<sql::Value> keys(expected.begin(), expected.end());
        const auto found =
            m_db.query(m_db.dialect().select_by_keys(table, {table.key()}, keys.size()), keys);
        for (const auto& row : found) {
            if (!row.empty() && row[0]) {
                expected.erase(*row[0]);
            }
        }
        if (expected.empty()) {
            return;
        }
        std::vector<std::string> missing(expected.begin(), expected.end());
        std::sort(missing.begin(), missing.end());
        std::string named;
        for (std::size_t i = 0; i < missing.size() && i < k_keys_in_error; ++i) {
            named += (i ? ", " : "") + missing[i];
        }
        throw Error(ErrorKind::data,
                    fmt::format("verification failed: {} of {} history rows after ID {} did not "
                                "read back from {} (EXTERNAL_ID {}{})",
                                missing.size(), keys.size(), m_page_after, table.name, named,
                                missing.size() > k_keys_in_error ? ", ..." : ""),
                    "the page was rolled back and the checkpoint kept; look for triggers or "
                    "jobs that delete rows from the table");
    }

    void sync_history(ApiClient& api, const HistoryQuery& query) {
        const auto& spec = m_schema.history();
        const auto started = std::chrono::steady_clock::now();
        m_last_id = query.after_id;
        HistoryFetcher fetcher(api, m_options, query);
        std::optional<std::int64_t> total;
        long loaded = 0;
        while (auto page = fetcher.next()) {
            if (page->total) {
                total = page->total;
                log::info("{} history rows to fetch after ID {}", *total, query.after_id);
            }
            std::vector<sql::Row> rows;
            std::vector<Reject> rejects;
            for (const auto& item : page->items) {
                ++m_summary.fetched;
                const auto owner = integer_field(item, "OWNER_ID");
                const auto title = owner ? page->titles[*owner] : std::nullopt;
                sql::Row row;
                std::string problem;
                if (history_row(spec, item, title, row, problem)) {
                    rows.push_back(std::move(row));
                } else {
                    const auto id = integer_field(item, "ID");
                    rejects.push_back(
                        {spec.table.name, id ? std::to_string(*id) : "", problem,
                         item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
                }
            }
            m_page_after = m_last_id;
            m_last_id = page->last_id;
            if (m_may_checkpoint) {
                m_checkpoint = page->last_id;
            }
            commit_page(rows, std::move(rejects), progress_json(m_mode.c_str()));
            loaded += static_cast<long>(page->items.size());
            show_progress(loaded, total, started);
            if (stop_requested()) {
                m_interrupted = true;
                break;
            }
            if (m_options.deadline && std::chrono::steady_clock::now() > *m_options.deadline) {
                m_out_of_time = true;
                break;
            }
        }
        fetcher.stop();
        m_out_of_time = m_out_of_time || fetcher.out_of_time();
        m_interrupted = m_interrupted || stop_requested();
        // A stop signal also ends the fetcher's request in flight; that is no failure.
        if (auto error = fetcher.error(); error && !stop_requested()) {
            m_progress.finish();
            m_summary.retries = m_stats.retries.load();
            std::rethrow_exception(error);
        }
    }

    void show_progress(long loaded, std::optional<std::int64_t> total,
                       std::chrono::steady_clock::time_point started) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        const double rate = seconds > 0 ? static_cast<double>(loaded) / seconds : 0;
        if (!total || *total <= 0) {
            m_progress.update(fmt::format("crmsync: bulk-history {}: {} rows, {:.0f} rows/s",
                                          m_mode, loaded, rate));
            return;
        }
        const long all = std::max<long>(static_cast<long>(*total), loaded);
        const double share = static_cast<double>(loaded) / static_cast<double>(all);
        constexpr int k_bar = 30;
        const int filled = static_cast<int>(share * k_bar);
        const std::string eta =
            rate > 0 ? duration_text(static_cast<double>(all - loaded) / rate) : "?";
        m_progress.update(fmt::format("crmsync: bulk-history {} [{}{}] {}/{} rows ({:.0f}%), "
                                      "{:.0f} rows/s, ETA {}",
                                      m_mode, std::string(static_cast<std::size_t>(filled), '#'),
                                      std::string(static_cast<std::size_t>(k_bar - filled), '.'),
                                      loaded, all, share * 100, rate, eta));
    }

    const SyncOptions& m_options;
    sql::Database& m_db;
    pipeline::RunSummary& m_summary;
    std::string m_job;
    Bitrix24Schema m_schema;
    std::vector<sql::TableSpec> m_own;
    pipeline::TargetWriter m_writer;
    pipeline::ProgressLine m_progress;
    http::RetryStats m_stats;
    std::string m_mode = "upload";
    bool m_may_checkpoint = true;
    std::optional<std::int64_t> m_checkpoint;
    std::int64_t m_last_id = 0;    // the highest history ID fetched
    std::int64_t m_page_after = 0; // the ID the page being written follows
    bool m_interrupted = false;
    bool m_out_of_time = false;
};

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

void run_sync(const SyncOptions& options, sql::Database& db, pipeline::RunSummary& summary) {
    SyncRun run(options, db, summary);
    run.run();
}

} // namespace crmsync::drivers::bitrix24
