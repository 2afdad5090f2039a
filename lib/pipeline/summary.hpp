#pragma once

#include "lib/sql/batch_writer.hpp"

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace crmsync::pipeline {

// What one run did; printed as one line at the end and written by --summary-json.
struct RunSummary {
    std::string command;                            // "db_sync"
    std::string job;                                // "DEMO0000CAMPAIGN"
    std::string status = "ok";                      // ok | partial | failed | interrupted | locked
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

// Writes the JSON summary atomically (temp file, rename), mode 0600.
void write_summary_file(const RunSummary& summary, const std::string& path);

} // namespace crmsync::pipeline
