#pragma once

#include "cmd/common.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct WebhookOptions {
    CommonOptions common;
    std::string campaign;
    std::string url; // the receiver
    std::string api_url = "https://api.dialfire.com";
    std::string since;
    std::string lookback = "10m";
    std::string filter_mode;
    std::string filter_prefixes;
    std::size_t in_flight = 4;
    double rate = 5;
    double burst = 0;     // 0: twice the rate, as dbsync2
    int max_attempts = 0; // 0: a delivery dies by age (--max-age), not by count
    std::string max_age = "72h";
    std::string timeout = "30s";
    std::string secret_env;
    std::string secret_file;
    std::string state_path;
    bool replay_dead = false;
    std::size_t workers = 4;
    std::string now; // hidden --now: the wall clock of the outbox starts here (tests)
};

// The job's key in the state file: campaign and receiver (without a password).
std::string webhook_job_key(const std::string& campaign, const std::string& url);

void add_webhook(CLI::App& app, WebhookOptions& options);
int run_webhook(const WebhookOptions& options);

} // namespace crmsync::cli
