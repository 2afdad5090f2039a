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
    std::size_t batch_rows = 5000;
    std::string mode = "sync"; // sync | init | update (dbsync2's db_sync, db_init, db_update)
    bool profiling = false;    // dbsync2's --p, accepted and ignored
    HttpTargetOptions http;    // when --url is http(s)://
};

void add_db_sync(CLI::App& app, DbSyncOptions& options);
int run_db_sync(const DbSyncOptions& options);

} // namespace crmsync::cli
