#pragma once

#include "lib/pipeline/summary.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::pipeline {

// Records a source keeps in the form it parsed them into, for its own Transform to read
// directly (simdjson's document, say, which is cheaper than nlohmann's). The Runner counts them,
// moves them and frees them once the Transform has run; it never reads them.
class NativeRecords {
public:
    virtual ~NativeRecords() = default;
    virtual std::size_t size() const = 0;
};

// One unit of fetched work: records of one stream, and the checkpoint the job reaches once
// they (and everything before them) are committed.
struct Page {
    std::string stream;                  // which of the source's streams the records belong to
    std::vector<nlohmann::json> records; // handed to the Transform as they are
    std::shared_ptr<const NativeRecords> native; // more records, in the source's own form
    std::optional<std::string> checkpoint; // the source's whole resumable state after this page;
                                           // nullopt: committing this page does not move it
    std::optional<long> total;             // records the source expects in all, once it knows
    std::string progress;                  // JSON text kept with the job's state (informational)
    nlohmann::json context;                // page-wide facts for the Transform (e.g. titles)
};

class Sink;

// Where records come from. Protocol, all on one thread (the Runner's fetch thread):
//   open(stored checkpoint) once, then next_page() until it returns nullopt or the Runner
//   stops asking (stop signal, time budget, sink failure), then report() after that thread
//   has ended. A source may look up what the sink holds (Sink::lookup, thread safe) to skip
//   unchanged records.
// Throws crmsync::Error for failures; pages returned before the throw are still committed.
// A page with a checkpoint must only be returned once every record it covers was returned.
class Source {
public:
    virtual ~Source() = default;

    // `checkpoint` is what the sink stored for this job (nullopt on a first run).
    virtual void open(const std::optional<std::string>& checkpoint) = 0;
    // The next page, or nullopt at the end of the data. May return a page without records
    // (to carry a checkpoint).
    virtual std::optional<Page> next_page() = 0;
    // Adds the source's own counters to the summary (retries, skipped...). Called once, on
    // the Runner's thread, after the last next_page() returned or threw.
    virtual void report(RunSummary& /*summary*/) const {}
};

} // namespace crmsync::pipeline
