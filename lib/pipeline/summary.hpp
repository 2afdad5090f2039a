#pragma once

#include "lib/sql/batch_writer.hpp"

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmsync::pipeline {

// How a run ended; the summary's "status" and the exit code follow from it.
enum class RunStatus {
    ok,          // done (exit 0)
    partial,     // done, but records were rejected or work was left for the next run (exit 3)
    failed,      // an error stopped it; nothing past the last checkpoint was claimed (exit 1)
    interrupted, // SIGINT/SIGTERM, after committing the batch in flight (exit 130)
    locked,      // another run of the job holds the lock; nothing was done (exit 4)
};
std::string_view to_string(RunStatus status) noexcept;

// What one run did; printed as one line at the end and written by --summary-json.
struct RunSummary {
    std::string command; // "db_sync"
    std::string job;     // "DEMO0000CAMPAIGN"
    RunStatus status = RunStatus::ok;
    std::map<std::string, sql::WriteCounts> tables; // by table name, in name order
    // Further counters of commands that write no tables (webhook: delivered, pending, dead...),
    // printed in the order given.
    std::vector<std::pair<std::string, long>> counters;
    long fetched = 0;     // records received from the source
    long skipped = 0;     // records the source listed but that were already stored (same md5)
    long filtered = 0;    // records left out by --fm/--fp/--until
    long rejected = 0;    // records stored in crmsync_rejects instead
    long in_progress = 0; // connections still running, picked up once they end
    long retries = 0;
    std::chrono::milliseconds duration{0};
    std::string checkpoint; // after the run
    std::string error;      // the error line when status is failed

    std::string to_line() const;
    std::string to_json() const;
};

// Writes the JSON summary atomically: a mkstemp file in the same directory, fsync, rename, so
// a reader sees the old or the new summary whole and no fixed ".tmp" name can be raced or
// left behind. Mode 0600, or the existing file's mode. Throws Error(io).
void write_summary_file(const RunSummary& summary, const std::string& path);

} // namespace crmsync::pipeline
