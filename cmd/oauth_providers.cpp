#include "cmd/oauth_providers.hpp"

#include "drivers/google/token_client.hpp"
#include "drivers/zoho/token_client.hpp"
#include "lib/core/error.hpp"
#include "lib/util/url.hpp"

#include <memory>

namespace crmsync::cli {
namespace {

struct ProviderRow {
    const char* name;
    std::unique_ptr<oauth::Provider> (*make)(const TokenEndpointOptions& endpoints);
};

const ProviderRow k_providers[] = {
    {"google",
     [](const TokenEndpointOptions& e) {
         return drivers::google::make_oauth_provider(e.google_token_url);
     }},
    {"zoho",
     [](const TokenEndpointOptions& e) {
         return drivers::zoho::make_oauth_provider(e.zoho_accounts_url);
     }},
};

} // namespace

void add_token_endpoint_options(CLI::App& app, TokenEndpointOptions& o) {
    app.add_option("--state", o.state_path,
                   "State file holding the accounts (default $XDG_STATE_HOME/crmsync/state.db)");
    app.add_option("--google-token-url", o.google_token_url,
                   "Google's token endpoint (a proxy, a test double); default "
                   "https://oauth2.googleapis.com/token")
        ->envname("CRMSYNC_GOOGLE_TOKEN_URL");
    app.add_option("--zoho-accounts-url", o.zoho_accounts_url,
                   "Zoho accounts server for every account (a proxy, a test double); default: "
                   "each account's data centre, https://accounts.zoho.<dc>")
        ->envname("CRMSYNC_ZOHO_ACCOUNTS_URL");
    app.add_option("--timeout", o.timeout, "Time one token request may take")
        ->capture_default_str();
}

oauth::RefreshSettings refresh_settings(const CommonOptions& common,
                                        const TokenEndpointOptions& e) {
    oauth::RefreshSettings s;
    if (!e.google_token_url.empty()) {
        util::parse_http_url(e.google_token_url);
        require_tls_for_credentials(e.google_token_url,
                                    "the token endpoint, which receives refresh tokens",
                                    "--google-token-url");
    }
    if (!e.zoho_accounts_url.empty()) {
        util::parse_http_url(e.zoho_accounts_url);
        require_tls_for_credentials(e.zoho_accounts_url,
                                    "the token endpoint, which receives refresh tokens",
                                    "--zoho-accounts-url");
    }
    s.verify_tls = verify_tls(common, Endpoint::oauth);
    s.timeout = parse_duration_option(e.timeout, "--timeout");
    if (s.timeout.count() <= 0) {
        throw Error(ErrorKind::usage, "--timeout must be positive", "e.g. --timeout 30s");
    }
    s.retry.max_attempts = common.retry_attempts;
    s.retry.base_delay = parse_duration_option(common.retry_base, "--retry-base");
    const auto budget = parse_duration_option(common.max_runtime, "--max-runtime");
    if (budget.count() > 0) {
        s.deadline = std::chrono::steady_clock::now() + budget;
    }
    return s;
}

oauth::ProviderTable oauth_providers(const TokenEndpointOptions& endpoints) {
    oauth::ProviderTable table;
    for (const auto& row : k_providers) {
        table.add(row.make(endpoints));
    }
    return table;
}

std::vector<std::string> oauth_provider_names() {
    std::vector<std::string> names;
    for (const auto& row : k_providers) {
        names.emplace_back(row.name);
    }
    return names;
}

} // namespace crmsync::cli
