#include "drivers/dialfire/sync.hpp"

#include "drivers/dialfire/contact_fetchers.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/pipeline/bounded_queue.hpp"
#include "lib/pipeline/progress.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace crmsync::drivers::dialfire {
namespace {

// IN lists stay well under every dialect's parameter limit.
constexpr std::size_t k_md5_lookup_chunk = 500;

class SyncRun {
public:
    SyncRun(const SyncOptions& options, sql::Database& db, pipeline::RunSummary& summary)
        : m_options(options), m_db(db), m_summary(summary), m_writer(db, job_key(options), summary),
          m_api(options.api,
                http::RetryContext{options.retry, m_stats, Clock::real(), options.deadline, ""}),
          m_progress(options.show_progress) {}

    void run() {
        std::optional<SystemTime> server_now;
        const auto fields = m_api.fields(&server_now);
        if (!server_now) {
            server_now = Clock::real().wall_now();
            log::warn("the API sent no Date header; using the local clock for the checkpoint");
        }
        m_schema =
            DialfireSchema::build(m_options.table_prefix, fields, m_options.max_custom_fields,
                                  m_db.dialect().max_identifier_bytes());
        if (fields.size() > m_schema.custom_fields.size()) {
            log::info("{} custom fields, {} as columns (--max-custom-fields); all are in _raw",
                      fields.size(), m_schema.custom_fields.size());
        }
        m_writer.prepare(m_schema.tables());
        const auto state = m_writer.load_state();
        const auto from = start_time(state, *server_now);
        const auto stored =
            state.checkpoint ? util::parse_iso8601(*state.checkpoint) : std::nullopt;
        // The checkpoint may only move if this run covered everything since the stored one.
        const bool may_checkpoint = !m_options.until && (!stored || !from || *from <= *stored);
        log::info("db_sync {} from {} (checkpoint {}), server time {}", m_options.api.campaign,
                  from ? util::format_iso8601(*from) : "the beginning",
                  state.checkpoint.value_or("none"), util::format_iso8601(*server_now));

        sync_contacts(from);
        if (!m_stopped_early) {
            sync_inbound_calls(from, m_options.until.value_or(*server_now));
        }
        m_progress.finish();
        m_summary.retries = m_stats.retries.load();
        const bool complete = !m_stopped_early;
        const std::optional<std::string> checkpoint =
            complete && may_checkpoint ? std::optional(util::format_iso8601(*server_now))
                                       : std::nullopt;
        m_writer.commit(checkpoint, progress_json("done"));
        if (m_stopped_early) {
            if (stop_requested()) {
                throw Error(ErrorKind::interrupted,
                            "interrupted; the rows fetched so far were committed",
                            "run again to continue; the checkpoint did not move");
            }
            m_summary.status = "partial";
            log::warn("time budget (--max-runtime) reached; the next run continues");
        }
    }

private:
    std::optional<SystemTime> start_time(const pipeline::JobState& state, SystemTime server_now) {
        if (m_options.since) {
            return m_options.since;
        }
        if (m_options.mode == SyncMode::initial || m_options.full_refresh) {
            return std::nullopt;
        }
        if (m_options.mode == SyncMode::recent) {
            return server_now - std::chrono::hours(24 * 7);
        }
        if (state.checkpoint) {
            if (const auto t = util::parse_iso8601(*state.checkpoint)) {
                return *t - m_options.lookback;
            }
            log::warn("stored checkpoint '{}' is unreadable; syncing everything",
                      *state.checkpoint);
        }
        return std::nullopt;
    }

    bool should_stop() {
        if (stop_requested()) {
            m_stopped_early = true;
        } else if (m_options.deadline && std::chrono::steady_clock::now() > *m_options.deadline) {
            m_stopped_early = true;
        }
        return m_stopped_early;
    }

    std::string progress_json(const char* phase) const {
        return fmt::format(R"({{"phase":"{}","contacts_listed":{},"contacts_fetched":{}}})", phase,
                           m_listed, m_summary.fetched);
    }

    void maybe_commit() {
        if (m_writer.buffered_rows() >= m_options.batch_rows) {
            m_writer.commit(std::nullopt, progress_json("contacts"));
        }
        m_progress.update(fmt::format("crmsync: {} contacts listed, {} fetched, {} skipped",
                                      m_listed, m_summary.fetched, m_summary.skipped));
    }

    void consume(FetchedBatch& batch) {
        for (const auto& contact : batch.contacts) {
            ++m_summary.fetched;
            transform_contact(contact, m_schema, m_options.filter, m_writer, m_counters);
        }
        m_summary.filtered = m_counters.filtered;
        m_summary.in_progress = m_counters.in_progress;
        maybe_commit();
    }

    // Contacts whose stored $md5 equals the listed one are unchanged: no need to fetch them.
    std::vector<std::string> changed_ids(const std::vector<ListedContact>& listed) {
        std::vector<std::string> ids;
        if (m_options.full_refresh) {
            for (const auto& c : listed) {
                ids.push_back(c.id);
            }
            return ids;
        }
        const auto& table = m_schema.specs[m_schema.contacts].table;
        for (std::size_t start = 0; start < listed.size(); start += k_md5_lookup_chunk) {
            const std::size_t n = std::min(k_md5_lookup_chunk, listed.size() - start);
            std::vector<sql::Value> keys;
            for (std::size_t i = start; i < start + n; ++i) {
                keys.emplace_back(listed[i].id);
            }
            std::unordered_map<std::string, std::string> stored;
            for (const auto& row :
                 m_db.query(m_db.dialect().select_by_keys(table, {"$id", "$md5"}, n), keys)) {
                if (row[0] && row[1]) {
                    stored.emplace(*row[0], *row[1]);
                }
            }
            for (std::size_t i = start; i < start + n; ++i) {
                const auto it = stored.find(listed[i].id);
                if (it != stored.end() && !listed[i].md5.empty() && it->second == listed[i].md5) {
                    ++m_summary.skipped;
                } else {
                    ids.push_back(listed[i].id);
                }
            }
        }
        return ids;
    }

    void sync_contacts(const std::optional<SystemTime>& from) {
        const std::string changed_since = from ? util::format_date(*from) : "";
        ContactFetchers fetchers(
            m_options.api, m_options.workers,
            http::RetryContext{m_options.retry, m_stats, Clock::real(), m_options.deadline, ""});
        std::string cursor;
        bool source_failed = false;
        do {
            if (should_stop()) {
                break;
            }
            const auto page = m_api.list_contacts(changed_since, cursor);
            m_listed += static_cast<long>(page.contacts.size());
            const auto ids = changed_ids(page.contacts);
            for (std::size_t start = 0; start < ids.size() && !source_failed;
                 start += k_contacts_per_request) {
                const auto end = std::min(ids.size(), start + k_contacts_per_request);
                // Write while waiting: the queue of fetched contacts must not fill up.
                while (auto ready = fetchers.try_result()) {
                    consume(*ready);
                }
                source_failed = !fetchers.submit(
                    {ids.begin() + static_cast<long>(start), ids.begin() + static_cast<long>(end)});
            }
            cursor = page.cursor;
        } while (!cursor.empty() && !source_failed);
        fetchers.finish_submitting();
        while (auto ready = fetchers.next_result()) {
            consume(*ready);
        }
        if (auto error = fetchers.error()) {
            // Keep what was fetched; the checkpoint stays where it was.
            m_writer.commit(std::nullopt, progress_json("contacts"));
            m_summary.retries = m_stats.retries.load();
            std::rethrow_exception(error);
        }
    }

    void sync_inbound_calls(const std::optional<SystemTime>& from, SystemTime to) {
        const std::string from_text = util::format_dialfire_time(from.value_or(SystemTime{}));
        const std::string to_text = util::format_dialfire_time(to);
        std::string cursor;
        do {
            if (should_stop()) {
                break;
            }
            const auto page = m_api.inbound_calls(from_text, to_text, cursor);
            for (const auto& call : page.results) {
                ++m_summary.fetched;
                transform_inbound_call(call, m_schema, m_writer);
            }
            if (m_writer.buffered_rows() >= m_options.batch_rows) {
                m_writer.commit(std::nullopt, progress_json("inbound_calls"));
            }
            cursor = page.cursor;
        } while (!cursor.empty());
    }

    const SyncOptions& m_options;
    sql::Database& m_db;
    pipeline::RunSummary& m_summary;
    pipeline::TargetWriter m_writer;
    http::RetryStats m_stats;
    ApiClient m_api;
    pipeline::ProgressLine m_progress;
    DialfireSchema m_schema;
    TransformCounters m_counters;
    long m_listed = 0;
    bool m_stopped_early = false;
};

} // namespace

std::string job_key(const SyncOptions& options) {
    return "db_sync:" + options.api.campaign + ":" + options.table_prefix;
}

void run_sync(const SyncOptions& options, sql::Database& db, pipeline::RunSummary& summary) {
    SyncRun run(options, db, summary);
    run.run();
}

} // namespace crmsync::drivers::dialfire
