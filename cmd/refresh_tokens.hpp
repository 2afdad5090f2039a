#pragma once

#include "cmd/common.hpp"
#include "cmd/oauth_providers.hpp"

#include <CLI/CLI.hpp>

#include <cstddef>
#include <string>

namespace crmsync::cli {

struct RefreshTokensOptions {
    CommonOptions common;
    TokenEndpointOptions endpoints;
    std::string within = "10m";
    std::string account;  // ID or email; "" = every active account
    std::string provider; // google | zoho | "" = both
    bool force = false;
    double rate = 5;        // token requests per second over all workers; 0 = no limit
    std::size_t chunk = 50; // accounts per chunk; each chunk is stored in one transaction
    std::size_t concurrency = 4;
};

// `crmsync refresh-tokens`: refreshes the access tokens of the active accounts in the state
// file that expire within --within (lib/oauth/refresh_run.hpp). Exit 0 when every due account
// was refreshed, 3 when some were not, 1 when none could reach its provider, 4 when another
// run holds the lock.
void add_refresh_tokens(CLI::App& app, RefreshTokensOptions& options);
int run_refresh_tokens(const RefreshTokensOptions& options);

} // namespace crmsync::cli
