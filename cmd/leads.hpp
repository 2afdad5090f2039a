#pragma once

#include "cmd/common.hpp"
#include "lib/pipeline/source.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace crmsync::cli {

struct LeadsOptions {
    CommonOptions common;
    std::string source; // callback24 | facebook | gmail
    std::string api_url;
    std::string token_env;  // the source's API token (Callback24, Facebook page token)
    std::string token_file; // the same from a file
    std::string services;   // callback24: service names, comma separated
    std::string forms;      // facebook: form ids, comma separated
    std::string account;    // gmail: the OAuth account in the state file
    std::string template_file;
    std::string google_token_url;
    std::string pipedrive_url;
    std::string pipedrive_token_env;
    std::string pipedrive_token_file;
    std::size_t pipedrive_in_flight = 4;
    std::string state_path;
    std::string since;
    std::string lookback = "10m";
    bool dry_run = false;
};

void add_leads(CLI::App& app, LeadsOptions& options);
int run_leads(const LeadsOptions& options);

// The Facebook Lead Ads and Gmail sources built from the options (tokens read, template
// checked); throw Error(usage|config) before any I/O but the state file (gmail).
std::unique_ptr<pipeline::Source> facebook_source(const LeadsOptions& options);
std::unique_ptr<pipeline::Source> gmail_source(const LeadsOptions& options);
// The source --source names, built exactly as a run builds it; throws Error(usage|config).
std::unique_ptr<pipeline::Source> lead_source(const LeadsOptions& options);
// How messages name the source ("Callback24 services a,b"); throws Error(usage).
std::string lead_source_description(const LeadsOptions& options);

// Pipedrive as a run reaches it: the API URL and the token read from its flag.
struct PipedriveAccess {
    std::string base_url;
    std::string token;
    bool verify_tls = true;
};
// Throws Error(usage|config) as a run would.
PipedriveAccess pipedrive_access(const LeadsOptions& options);

} // namespace crmsync::cli
