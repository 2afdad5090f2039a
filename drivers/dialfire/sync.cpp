#include "drivers/dialfire/sync.hpp"

#include "drivers/dialfire/contact_fetchers.hpp"
#include "drivers/dialfire/simdjson_contacts.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

#include <atomic>

namespace crmsync::drivers::dialfire {
namespace {

// IN lists stay well under every dialect's parameter limit.
constexpr std::size_t k_md5_lookup_chunk = 500;

// db_sync's source: pages of fetched contacts, then pages of inbound calls, then an empty page
// carrying the new checkpoint when the run covered everything since the stored one.
class ContactSource final : public pipeline::Source {
public:
    ContactSource(const SyncOptions& options, pipeline::Sink& sink)
        : m_options(options),
          m_sink(sink), m_retry{options.retry, m_stats, Clock::real(), options.deadline, ""},
          m_api(options.api, m_retry) {}
    // The fetchers' feeding thread calls list_more(), which uses the members below: it stops
    // before they go.
    ~ContactSource() override { m_fetchers.reset(); }
    ContactSource(const ContactSource&) = delete;
    ContactSource& operator=(const ContactSource&) = delete;

    // E1: the campaign's fields decide the contacts table's columns; also the server's clock.
    const DialfireSchema& discover(std::size_t max_identifier_bytes) {
        std::optional<SystemTime> date_header;
        const auto fields = m_api.fields(&date_header);
        m_server_now = server_time(date_header);
        m_schema = DialfireSchema::build(m_options.table_prefix, fields,
                                         m_options.max_custom_fields, max_identifier_bytes);
        if (fields.size() > m_schema.custom_fields.size()) {
            log::info("{} custom fields, {} as columns (--max-custom-fields); all are in _raw",
                      fields.size(), m_schema.custom_fields.size());
        }
        return m_schema;
    }

    void open(const std::optional<std::string>& checkpoint) override {
        m_from = start_time(checkpoint);
        const auto stored = checkpoint ? util::parse_iso8601(*checkpoint) : std::nullopt;
        // The checkpoint may only move if this run covered everything since the stored one.
        m_may_checkpoint = !m_options.until && (!stored || !m_from || *m_from <= *stored);
        log::info("db_sync {} from {} (checkpoint {}), server time {}", m_options.api.campaign,
                  m_from ? util::format_iso8601(*m_from) : "the beginning",
                  checkpoint.value_or("none"), util::format_iso8601(m_server_now));
        // A first load: a contacts table empty at the start has no md5 to compare with, and
        // asking for them would take the writer's connection between its batches. A contact
        // listed twice in this run is then fetched twice and upserted, as before the table
        // held it.
        m_ask_md5 = !m_options.full_refresh &&
                    m_sink.holds_rows(m_schema.specs[m_schema.contacts].table) != false;
        if (!m_ask_md5 && !m_options.full_refresh) {
            log::debug("{} holds no contact: no md5 is compared this run",
                       m_schema.specs[m_schema.contacts].table.name);
        }
        // The transform reads the contacts in simdjson's document (see transform_contact).
        m_fetchers =
            std::make_unique<ContactFetchers>(m_options.api, m_options.workers, m_retry, true);
    }

    std::optional<pipeline::Page> next_page() override {
        switch (m_phase) {
        case Phase::contacts:
            if (auto page = next_contacts()) {
                return page;
            }
            m_phase = Phase::inbound_calls;
            [[fallthrough]];
        case Phase::inbound_calls:
            if (auto page = next_inbound_calls()) {
                return page;
            }
            m_phase = Phase::checkpoint;
            [[fallthrough]];
        case Phase::checkpoint: {
            m_phase = Phase::done;
            pipeline::Page last;
            last.progress = progress_json("done");
            if (m_may_checkpoint) {
                last.checkpoint = util::format_iso8601(m_server_now);
            }
            return last;
        }
        case Phase::done:
            break;
        }
        return std::nullopt;
    }

    void report(pipeline::RunSummary& summary) const override {
        summary.skipped += m_skipped.load();
        if (m_missing > 0) {
            summary.counters.emplace_back("missing", m_missing);
        }
        summary.retries += m_stats.retries.load();
    }

private:
    enum class Phase { contacts, inbound_calls, checkpoint, done };

    std::optional<SystemTime> start_time(const std::optional<std::string>& checkpoint) const {
        if (m_options.since) {
            return m_options.since;
        }
        if (m_options.mode == SyncMode::initial || m_options.full_refresh) {
            return std::nullopt;
        }
        if (m_options.mode == SyncMode::recent) {
            return m_server_now - std::chrono::hours(24 * 7);
        }
        if (checkpoint) {
            if (const auto t = util::parse_iso8601(*checkpoint)) {
                return *t - m_options.lookback;
            }
            log::warn("stored checkpoint '{}' is unreadable; syncing everything", *checkpoint);
        }
        return std::nullopt;
    }

    std::string progress_json(const char* phase) const {
        return fmt::format(R"({{"phase":"{}","contacts_listed":{},"contacts_fetched":{}}})", phase,
                           m_listed.load(), m_fetched);
    }

    std::optional<pipeline::Page> next_contacts() {
        auto batch = m_fetchers->next([this] { return list_more(); });
        if (!batch) {
            return std::nullopt;
        }
        m_fetched +=
            static_cast<long>(batch->contacts.size() + (batch->kept ? batch->kept->size() : 0));
        if (batch->missing > 0) {
            // Listed but not returned (deleted meanwhile, or lost): the next run asks again.
            m_missing += static_cast<long>(batch->missing);
            if (m_may_checkpoint) {
                log::warn("{} contacts listed were not returned; the checkpoint stays",
                          batch->missing);
            }
            m_may_checkpoint = false;
        }
        pipeline::Page page;
        page.stream = "contacts";
        page.records = std::move(batch->contacts);
        page.native = std::move(batch->kept);
        if (!batch->rejects.empty()) {
            page.context["rejects"] = nlohmann::json::array();
            for (const auto& r : batch->rejects) {
                page.context["rejects"].push_back(
                    {{"id", r.id}, {"reason", r.reason}, {"raw", r.raw}});
            }
        }
        page.progress = progress_json("contacts");
        return page;
    }

    // One E2 page: its changed contacts go to the fetchers. False after the last page. Runs on
    // the fetchers' feeding thread: what it shares with the consumer is atomic.
    bool list_more() {
        const std::string changed_since = m_from ? util::format_date(*m_from) : "";
        const auto page = m_api.list_contacts(changed_since, m_cursor);
        m_listed += static_cast<long>(page.contacts.size());
        m_fetchers->add_ids(changed_ids(page.contacts));
        // A page may come without results but with a cursor; only an empty or a repeated
        // cursor ends the list (a repeated one would page forever).
        const bool repeated = !page.cursor.empty() && page.cursor == m_cursor;
        if (repeated) {
            log::warn("contacts/list answered the cursor it was asked with; listing stops and "
                      "the checkpoint stays");
            m_may_checkpoint = false;
        }
        m_cursor = repeated ? std::string{} : page.cursor;
        return !m_cursor.empty();
    }

    // Contacts whose stored $md5 equals the listed one are unchanged: no need to fetch them
    // (unless the run forgoes the comparison: a full refresh, or a first load).
    std::vector<std::string> changed_ids(const std::vector<ListedContact>& listed) {
        std::vector<std::string> ids;
        if (!m_ask_md5) {
            for (const auto& c : listed) {
                ids.push_back(c.id);
            }
            return ids;
        }
        const auto& table = m_schema.specs[m_schema.contacts].table;
        for (std::size_t start = 0; start < listed.size(); start += k_md5_lookup_chunk) {
            const std::size_t n = std::min(k_md5_lookup_chunk, listed.size() - start);
            std::vector<std::string> keys;
            for (std::size_t i = start; i < start + n; ++i) {
                keys.push_back(listed[i].id);
            }
            const auto stored = m_sink.lookup(table, {"$md5"}, keys);
            for (std::size_t i = start; i < start + n; ++i) {
                const auto it = stored.find(listed[i].id);
                if (it != stored.end() && !it->second.empty() && it->second[0] &&
                    !listed[i].md5.empty() && *it->second[0] == listed[i].md5) {
                    ++m_skipped;
                } else {
                    ids.push_back(listed[i].id);
                }
            }
        }
        return ids;
    }

    std::optional<pipeline::Page> next_inbound_calls() {
        if (m_inbound_done) {
            return std::nullopt;
        }
        const std::string from_text = format_dialfire_time(m_from.value_or(SystemTime{}));
        const std::string to_text = format_dialfire_time(m_options.until.value_or(m_server_now));
        auto calls = m_api.inbound_calls(from_text, to_text, m_inbound_cursor);
        m_inbound_cursor = calls.cursor;
        m_inbound_done = m_inbound_cursor.empty();
        pipeline::Page page;
        page.stream = "inbound_calls";
        page.records = std::move(calls.results);
        page.progress = progress_json("inbound_calls");
        return page;
    }

    const SyncOptions& m_options;
    pipeline::Sink& m_sink;
    http::RetryStats m_stats;
    http::RetryContext m_retry;
    ApiClient m_api;
    DialfireSchema m_schema;
    SystemTime m_server_now{};
    std::optional<SystemTime> m_from;
    std::atomic<bool> m_may_checkpoint = false;
    Phase m_phase = Phase::contacts;
    std::unique_ptr<ContactFetchers> m_fetchers;
    std::string m_cursor;
    std::string m_inbound_cursor;
    bool m_inbound_done = false;
    std::atomic<long> m_listed = 0;
    long m_fetched = 0;
    std::atomic<long> m_skipped = 0;
    bool m_ask_md5 = true; // set by open(), before the fetch thread starts
    long m_missing = 0;
};

} // namespace

std::string job_key(const SyncOptions& options) {
    return "db_sync:" + options.api.campaign + ":" + options.table_prefix;
}

pipeline::Ending run_sync(const SyncOptions& options, pipeline::Sink& sink,
                          pipeline::RunSummary& summary) {
    ContactSource source(options, sink);
    const auto& schema = source.discover(sink.max_identifier_bytes());
    sink.prepare(schema.tables());
    TransformCounters counters;
    const auto transform = [&](const pipeline::Page& page, pipeline::Emitter& out,
                               pipeline::RunSummary& s) {
        if (const auto rejects = page.context.find("rejects"); rejects != page.context.end()) {
            const auto& table = schema.specs[schema.contacts].table.name;
            for (const auto& r : *rejects) {
                out.reject(table, r.value("id", ""), r.value("reason", ""), r.value("raw", ""));
            }
        }
        for (const auto& record : page.records) {
            if (page.stream == "contacts") {
                transform_contact(record, schema, options.filter, out, counters);
            } else {
                transform_inbound_call(record, schema, out);
            }
        }
        if (page.native) {
            // Only the contacts' fetchers keep their answers in simdjson's document.
            for (const auto& contact :
                 dynamic_cast<const SimdjsonContacts&>(*page.native).contacts) {
                transform_contact(contact, schema, options.filter, out, counters);
            }
        }
        s.filtered = counters.filtered;
        s.in_progress = counters.in_progress;
    };
    pipeline::RunnerOptions runner;
    runner.label = "records";
    runner.pages_ahead = 2 * options.workers;
    runner.batch_rows = options.batch_rows;
    runner.deadline = options.deadline;
    runner.show_progress = options.show_progress;
    // The transform reads only its page, the schema and the filter: it runs on the fetch thread,
    // turning the next page into rows while this one is written.
    runner.transform_ahead = true;
    return pipeline::Runner(source, transform, sink, summary, runner).run();
}

} // namespace crmsync::drivers::dialfire
