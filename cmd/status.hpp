#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct StatusOptions {
    std::string url = "sqlite://crmsync.db";
    bool json = false;
};

void add_status(CLI::App& app, StatusOptions& options);
int run_status(const StatusOptions& options);

} // namespace crmsync::cli
