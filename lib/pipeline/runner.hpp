#pragma once

#include "lib/pipeline/sink.hpp"
#include "lib/pipeline/source.hpp"
#include "lib/pipeline/summary.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace crmsync::pipeline {

// Turns one page into rows (Emitter::add) and rejects (Emitter::reject). Runs on the
// Runner's calling thread, which also owns `summary` (for the transform's own counters), or
// ahead on the fetch thread (RunnerOptions::transform_ahead). Must not throw for bad data: a
// record it cannot store is a reject.
using Transform = std::function<void(const Page& page, Emitter& out, RunSummary& summary)>;

struct RunnerOptions {
    std::string label = "records"; // names the records on the progress line
    // Pages fetched ahead of the writer (memory stays flat); with transform_ahead also more
    // while they hold fewer than batch_rows rows.
    std::size_t pages_ahead = 4;
    std::size_t batch_rows = 5000; // rows buffered before a commit that moves no checkpoint
    std::optional<std::chrono::steady_clock::time_point> deadline; // --max-runtime
    bool show_progress = true; // a progress line on stderr when it is a terminal
    // The transform runs on the fetch thread, each page as soon as it is fetched, so turning
    // page N+1 into rows overlaps writing page N. Its calls to the Emitter are recorded and
    // replayed into the sink in order on the writing thread. For transforms that depend only
    // on their page and their own state: it sees a summary of the fetch thread, of which the
    // runner copies `filtered` and `in_progress` when it hands the page's rows to the sink
    // (pages transformed ahead but never written leave no count). A transform that
    // throws ends the run like a failing source (the pages before it are committed), except
    // that its error is thrown whatever the deadline.
    bool transform_ahead = false;
};

// How a run of the Runner ended when it did not throw.
enum class Ending {
    complete,    // the source had no more pages; all was committed
    out_of_time, // the deadline passed; what was fetched is committed, the next run goes on
    interrupted, // SIGINT/SIGTERM; what was fetched is committed
};

// The one sync loop under every job. run():
//  1. source.open(sink.load_checkpoint()); the caller has locked and prepared the sink;
//  2. a fetch thread calls source.next_page() into a bounded queue (fetch-ahead), stopping at
//     the stop signal or the deadline;
//  3. this thread transforms each page into the sink (or replays what the fetch thread's
//     transform emitted, see transform_ahead) and commits (Sink::commit_deferred): at once with
//     the page's checkpoint when it carries one, else whenever batch_rows rows are buffered;
//  4. at the end everything buffered is committed with Sink::commit, which makes the batches
//     before it durable too; the checkpoint only ever moves with the rows it covers, so it is
//     never ahead of committed data.
// Throws the source's Error after committing every page fetched before it (the checkpoint
// stays at the last page that carried one), unless the deadline had passed: a request the
// budget cut short ends the run out_of_time. A sink Error is thrown at once (its transaction
// rolled back). summary.fetched counts records; the source's report() is added in every case.
class Runner {
public:
    Runner(Source& source, Transform transform, Sink& sink, RunSummary& summary,
           RunnerOptions options);
    Ending run();

private:
    Source& m_source;
    Transform m_transform;
    Sink& m_sink;
    RunSummary& m_summary;
    RunnerOptions m_options;
};

} // namespace crmsync::pipeline
