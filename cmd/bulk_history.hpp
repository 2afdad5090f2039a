#pragma once

#include "cmd/common.hpp"
#include "drivers/bitrix24/sync.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct BulkHistoryOptions {
    CommonOptions common;
    std::string portal_url_env;  // --portal-url-env VAR
    std::string portal_url_file; // --portal-url-file PATH
    std::string url = "sqlite://crmsync.db";
    std::string env;            // PROD | TEST | DEV
    int category = -1;          // -1: every deal pipeline
    double rate = 2;            // requests per second, 0 = off
    int pages_per_request = 50; // history pages chained in one batch request, 1 = no batch
    std::string since;
    std::string table_prefix;
};

void add_bulk_history(CLI::App& app, BulkHistoryOptions& options);
// The options checked and the portal URL read (a secret from then on), before any I/O.
drivers::bitrix24::SyncOptions resolve_bulk_history(const BulkHistoryOptions& options);
int run_bulk_history(const BulkHistoryOptions& options);

} // namespace crmsync::cli
