#pragma once

#include "drivers/bitrix24/api_client.hpp"
#include "lib/core/clock.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/runner.hpp"
#include "lib/pipeline/summary.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/sql/database.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace crmsync::drivers::bitrix24 {

struct SyncOptions {
    ApiConfig api;
    std::string env = "PROD";        // PROD | TEST | DEV: the tables' suffix
    std::string table_prefix;        // in front of the table names
    std::optional<int> category;     // one deal pipeline; nullopt = all
    std::optional<SystemTime> since; // only history created at or after this time
    std::optional<std::chrono::steady_clock::time_point> deadline;
    http::RetryPolicy retry;
    bool show_progress = true;
    // History pages per API request: 1 = crm.stagehistory.list itself, more = that many pages
    // chained in one `batch` (at most k_batch_limit).
    std::size_t pages_per_request = k_batch_limit;
};

// "bulk_history:<portal host>:<ENV>[:C<category>][:<prefix>]": the job's key in crmsync_state
// and for its lock. Never holds the webhook code.
std::string job_key(const SyncOptions& options);

// One bulk-history run (README "bulk-history") on the engine. The caller holds the job's lock
// (`sink`, a TargetWriter over `db`).
//  1. The portal's deal stages are read first, so a refused webhook (401) exits before
//     anything is written, not even a table.
//  2. Tables are created or completed; the checkpoint (last history ID) is read.
//  3. CRM_STAGE_LIST is brought in step in one transaction: new stages inserted, changed ones
//     updated with DATE_UPDATE, stages gone from the portal set ACTIVE = 'N'.
//  4. History after the checkpoint is fetched with the bulk pattern (order ID ASC, filter >ID,
//     start=-1), up to `pages_per_request` pages chained in one `batch` request, deal titles
//     through `batch`, and each page is written in one transaction
//     with the checkpoint, after reading back its EXTERNAL_IDs: a page that does not read back
//     completely is rolled back and fails the run with Error(data).
// Throws crmsync::Error; committed pages stay.
pipeline::Ending run_sync(const SyncOptions& options, sql::Database& db,
                          pipeline::TargetWriter& sink, pipeline::RunSummary& summary);

} // namespace crmsync::drivers::bitrix24
