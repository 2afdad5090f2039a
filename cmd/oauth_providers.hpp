#pragma once

#include "cmd/common.hpp"
#include "lib/oauth/provider.hpp"
#include "lib/oauth/refresh_engine.hpp"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace crmsync::cli {

// Flags shared by refresh-tokens and token: where the token endpoints are and how to ask them.
struct TokenEndpointOptions {
    std::string state_path;
    std::string google_token_url;  // "" = Google's
    std::string zoho_accounts_url; // "" = each account's data centre
    std::string timeout = "30s";   // one token request
};

// Adds the endpoint flags (call add_common with TokenFlags::none: accounts hold the credentials).
void add_token_endpoint_options(CLI::App& app, TokenEndpointOptions& options);

// Checks the endpoint flags (exit 2 before any I/O) and fills the settings they decide.
oauth::RefreshSettings refresh_settings(const CommonOptions& common,
                                        const TokenEndpointOptions& endpoints);

// Every OAuth provider crmsync knows, built from the endpoint flags: the one registration
// table (google, zoho). No I/O.
oauth::ProviderTable oauth_providers(const TokenEndpointOptions& endpoints);

// The providers' names in table order, for --provider checks.
std::vector<std::string> oauth_provider_names();

} // namespace crmsync::cli
