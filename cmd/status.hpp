#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct StatusOptions {
    std::string url;   // a target database holding crmsync_state (db_sync jobs)
    std::string state; // a state file (webhook jobs); default: the default state file if present
    bool json = false;
};

void add_status(CLI::App& app, StatusOptions& options);
int run_status(const StatusOptions& options);

} // namespace crmsync::cli
