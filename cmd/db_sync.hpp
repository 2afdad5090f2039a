#pragma once

#include "cmd/common.hpp"
#include "cmd/sinks.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct DbSyncOptions {
    CommonOptions common;
    std::string campaign;
    std::string url = "sqlite://crmsync.db";
    std::string api_url = "https://api.dialfire.com";
    std::string table_prefix = "dfire_";
    std::string since;
    std::string until;
    std::string lookback = "10m";
    bool full_refresh = false;
    std::string filter_mode;
    std::string filter_prefixes;
    std::size_t max_custom_fields = 100;
    std::size_t workers = 4;
    int db_connections = 1; // dbsync2's --d; one writer is all a run needs
    // Measured on 2 cores (tests/bench/db_sync_bench): 1000 loads 20,000 contacts into
    // PostgreSQL about 13 % faster than 5000, with a quarter less memory. A long transaction
    // holds the writer while the database works, and the fetchers cannot use that time.
    std::size_t batch_rows = 1000;
    std::string mode = "sync"; // sync | init | update (dbsync2's db_sync, db_init, db_update)
    bool profiling = false;    // dbsync2's --p, accepted and ignored
    HttpTargetOptions http;    // when --url is http(s)://
};

void add_db_sync(CLI::App& app, DbSyncOptions& options);
int run_db_sync(const DbSyncOptions& options);

} // namespace crmsync::cli
