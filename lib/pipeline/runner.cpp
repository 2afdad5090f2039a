#include "lib/pipeline/runner.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/pipeline/bounded_queue.hpp"
#include "lib/pipeline/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace crmsync::pipeline {
namespace {

bool past(const std::optional<std::chrono::steady_clock::time_point>& deadline) {
    return deadline && std::chrono::steady_clock::now() > *deadline;
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

// What a transform running ahead emitted for one page, in call order.
class RecordedEmitter final : public Emitter {
public:
    struct Reject {
        std::string table;
        std::string key;
        std::string reason;
        std::string raw;
    };

    void add(const sql::Table& table, sql::Row row) override {
        m_calls.emplace_back(std::in_place_index<0>, &table, std::move(row));
    }
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override {
        m_calls.emplace_back(std::in_place_index<1>, Reject{table, key, reason, raw});
    }

    // Rows and rejects recorded.
    std::size_t size() const { return m_calls.size(); }

    // Replays the calls into `out`, in the order they were made.
    void replay(Emitter& out) {
        for (auto& call : m_calls) {
            if (call.index() == 0) {
                auto& [table, row] = std::get<0>(call);
                out.add(*table, std::move(row));
            } else {
                const auto& r = std::get<1>(call);
                out.reject(r.table, r.key, r.reason, r.raw);
            }
        }
        m_calls.clear();
    }

private:
    std::vector<std::variant<std::pair<const sql::Table*, sql::Row>, Reject>> m_calls;
};

// A fetched page; with transform_ahead also what its transform emitted (the records are then
// dropped: only the rows are kept) and the transform's counters after it.
struct FetchedPage {
    Page page;
    std::size_t records = 0;
    std::optional<RecordedEmitter> emitted;
    long filtered = 0;
    long in_progress = 0;
};

// Rows (and rejects) a page transformed ahead brings to the writer's batch.
std::size_t rows_of(const FetchedPage& fetched) {
    return fetched.emitted ? fetched.emitted->size() : 0;
}

// The fetch side of a run: calls the source on its own thread into a bounded queue, so the
// next pages arrive while this one is written, and memory stays flat. The queue holds
// pages_ahead pages; with transform_ahead, where a page's rows are known, also more while
// they are fewer than batch_rows, so the next batch is fetched whole while the writer commits
// one (with larger batches than pages_ahead pages hold, fetching waited for every commit: a
// --batch-rows of 2500 made a first load 20 % slower instead of faster). stop() (also in the
// destructor) closes the queue and joins.
class Fetcher {
public:
    Fetcher(Source& source, const Transform& transform, const RunnerOptions& options)
        : m_source(source), m_transform(transform), m_options(options),
          m_queue(std::max<std::size_t>(1, options.pages_ahead),
                  options.transform_ahead ? options.batch_rows : 0, rows_of) {
        m_thread = std::thread([this] { run(); });
    }
    Fetcher(const Fetcher&) = delete;
    Fetcher& operator=(const Fetcher&) = delete;
    ~Fetcher() { stop(); }

    std::optional<FetchedPage> next() { return m_queue.pop(); }

    void stop() {
        m_queue.close();
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    // Valid after stop().
    std::exception_ptr error() const { return m_error; }
    std::exception_ptr transform_error() const { return m_transform_error; }
    bool out_of_time() const { return m_out_of_time; }

private:
    void run() {
        try {
            for (;;) {
                if (stop_requested()) {
                    break;
                }
                if (past(m_options.deadline)) {
                    m_out_of_time = true;
                    break;
                }
                auto page = m_source.next_page();
                if (!page) {
                    break;
                }
                FetchedPage fetched;
                fetched.page = std::move(*page);
                fetched.records = fetched.page.records.size() +
                                  (fetched.page.native ? fetched.page.native->size() : 0);
                if (m_options.transform_ahead && !transform(fetched)) {
                    break;
                }
                if (!m_queue.push(std::move(fetched))) {
                    break;
                }
            }
        } catch (...) {
            m_error = std::current_exception();
        }
        // Wakes the writer; what is queued is still drained.
        m_queue.close();
    }

    // False when the transform threw (its error is kept).
    bool transform(FetchedPage& fetched) {
        try {
            fetched.emitted.emplace();
            m_transform(fetched.page, *fetched.emitted, m_transform_summary);
        } catch (...) {
            m_transform_error = std::current_exception();
            return false;
        }
        fetched.page.records.clear();
        fetched.page.records.shrink_to_fit();
        fetched.page.native.reset();
        fetched.filtered = m_transform_summary.filtered;
        fetched.in_progress = m_transform_summary.in_progress;
        return true;
    }

    Source& m_source;
    const Transform& m_transform;
    const RunnerOptions& m_options;
    RunSummary m_transform_summary; // the transform's, when it runs ahead on this thread
    BoundedQueue<FetchedPage> m_queue;
    std::exception_ptr m_error;
    std::exception_ptr m_transform_error;
    bool m_out_of_time = false;
    std::thread m_thread;
};

} // namespace

Runner::Runner(Source& source, Transform transform, Sink& sink, RunSummary& summary,
               RunnerOptions options)
    : m_source(source), m_transform(std::move(transform)), m_sink(sink), m_summary(summary),
      m_options(std::move(options)) {}

Ending Runner::run() {
    m_source.open(m_sink.load_checkpoint());
    ProgressLine progress(m_options.show_progress);
    const auto started = std::chrono::steady_clock::now();
    std::optional<long> total;
    std::string last_progress = R"({"phase":"started"})";
    long records = 0;
    bool interrupted = false;
    bool out_of_time = false;
    bool reported = false;
    const auto report_source = [&] {
        if (!reported) {
            reported = true;
            m_source.report(m_summary);
        }
    };

    Fetcher fetcher(m_source, m_transform, m_options);
    try {
        while (auto fetched = fetcher.next()) {
            const Page& page = fetched->page;
            records += static_cast<long>(fetched->records);
            m_summary.fetched += static_cast<long>(fetched->records);
            if (page.total) {
                total = page.total;
            }
            if (!page.progress.empty()) {
                last_progress = page.progress;
            }
            if (fetched->emitted) {
                fetched->emitted->replay(m_sink);
            } else {
                m_transform(page, m_sink, m_summary);
            }
            // The batches need not wait for the disk: the commit after the loop, which every
            // ending but a sink's failure reaches, makes them durable.
            if (page.checkpoint) {
                m_sink.commit_deferred(page.checkpoint, last_progress);
            } else if (m_sink.buffered() >= m_options.batch_rows) {
                m_sink.commit_deferred(std::nullopt, last_progress);
            }
            if (fetched->emitted) {
                m_summary.filtered = fetched->filtered;
                m_summary.in_progress = fetched->in_progress;
            }
            const double seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            const double rate = seconds > 0 ? static_cast<double>(records) / seconds : 0;
            if (total && *total > 0) {
                const long all = std::max(*total, records);
                const double share = static_cast<double>(records) / static_cast<double>(all);
                constexpr int k_bar = 30;
                const int filled = static_cast<int>(share * k_bar);
                progress.update(fmt::format(
                    "crmsync: {} [{}{}] {}/{} {} ({:.0f}%), {:.0f}/s, ETA {}", m_summary.command,
                    std::string(static_cast<std::size_t>(filled), '#'),
                    std::string(static_cast<std::size_t>(k_bar - filled), '.'), records, all,
                    m_options.label, share * 100, rate,
                    rate > 0 ? duration_text(static_cast<double>(all - records) / rate) : "?"));
            } else {
                progress.update(fmt::format("crmsync: {}: {} {}, {:.0f}/s", m_summary.command,
                                            records, m_options.label, rate));
            }
            // The batch in flight is committed; what is still queued is left for the next run.
            if (stop_requested()) {
                interrupted = true;
                break;
            }
            if (past(m_options.deadline)) {
                out_of_time = true;
                break;
            }
        }
        fetcher.stop();
        progress.finish();
        report_source();
        // Rows of pages without a checkpoint of their own: durable, the checkpoint stays. A
        // durable commit, so every batch committed before it is on disk when the run ends.
        m_sink.commit(std::nullopt, last_progress);
    } catch (...) {
        fetcher.stop();
        progress.finish();
        report_source();
        throw;
    }
    if (auto error = fetcher.transform_error()) {
        std::rethrow_exception(error);
    }
    interrupted = interrupted || stop_requested();
    out_of_time = out_of_time || fetcher.out_of_time();
    if (auto error = fetcher.error(); error && !interrupted) {
        // A request cut short by the time budget is the budget's ending, not a failure; a stop
        // signal likewise ends the request in flight.
        if (!past(m_options.deadline)) {
            std::rethrow_exception(error);
        }
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            log::warn("the time budget ended a request: {}", e.what());
        }
        out_of_time = true;
    }
    if (interrupted) {
        return Ending::interrupted;
    }
    if (out_of_time) {
        log::warn("time budget (--max-runtime) reached; the next run continues");
        return Ending::out_of_time;
    }
    return Ending::complete;
}

} // namespace crmsync::pipeline
