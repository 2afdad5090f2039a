#pragma once

#include "cmd/common.hpp"
#include "cmd/sinks.hpp"
#include "drivers/callcenter/sync.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct CallcenterOptions {
    CommonOptions common;
    std::string api_url;
    std::string call_center;
    std::string url = "sqlite://crmsync.db";
    std::string auth = "basic"; // basic | apikey | bearer
    std::string user;           // basic; also CRMSYNC_CALLCENTER_USER
    std::string secret_env;     // the password, key or token: --secret-env VAR,
    std::string secret_file;    // --secret-file PATH, else CRMSYNC_CALLCENTER_SECRET
    std::string streams;        // comma separated; "" = all
    std::string table_prefix = "cc_";
    std::string since;
    std::string lookback = "5m";
    bool full_refresh = false;
    int page_size = 500;
    HttpTargetOptions http; // when --url is http(s)://
};

void add_callcenter(CLI::App& app, CallcenterOptions& options);
// The options checked and the secret read (registered for redaction), before any I/O.
drivers::callcenter::SyncOptions resolve_callcenter(const CallcenterOptions& options);
// The password, key or token from --secret-env, --secret-file or CRMSYNC_CALLCENTER_SECRET.
std::string read_callcenter_secret(const CallcenterOptions& options);
int run_callcenter(const CallcenterOptions& options);

} // namespace crmsync::cli
