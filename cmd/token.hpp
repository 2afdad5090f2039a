#pragma once

#include "cmd/common.hpp"
#include "cmd/oauth_providers.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

struct TokenOptions {
    CommonOptions common;
    TokenEndpointOptions endpoints;
    std::string account;  // id or email
    std::string provider; // to tell a Google and a Zoho account with one email apart
    std::string min_valid = "5m";
    std::string wait = "30s"; // for a refresh-tokens run holding the lock
    bool json = false;
};

// `crmsync token ACCOUNT`: prints a valid access token on stdout (nothing else), refreshing it
// first when it expires within --min-valid (lib/oauth/token_provider.hpp). Exit 0 with the
// token; 1 when none can be had (needs re-authorization, refresh failed); 2 for an unknown or
// disabled account.
void add_token(CLI::App& app, TokenOptions& options);
int run_token(const TokenOptions& options);

} // namespace crmsync::cli
