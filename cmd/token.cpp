#include "cmd/token.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/oauth/token_provider.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"

#include <nlohmann/json.hpp>

#include <iostream>

namespace crmsync::cli {
namespace {

// The one thing this command writes to stdout: the token, or a JSON object around it.
void print_token(const TokenOptions& o, const oauth::AccessToken& t) {
    if (!o.json) {
        std::cout << t.access_token << std::endl;
        return;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::seconds>(t.expires_at - Clock::real().wall_now());
    nlohmann::ordered_json j;
    j["access_token"] = t.access_token;
    j["token_type"] = "Bearer";
    j["authorization"] = t.authorization;
    j["expires_at"] = util::format_iso8601(t.expires_at);
    j["expires_in"] = left.count();
    j["provider"] = t.provider;
    j["email"] = t.email;
    j["account_id"] = t.account_id;
    if (!t.api_domain.empty()) {
        j["api_domain"] = t.api_domain;
    }
    std::cout << j.dump() << std::endl;
}

} // namespace

void add_token(CLI::App& app, TokenOptions& o) {
    o.common.max_runtime = "2m";
    app.add_option("account", o.account, "The account: its id or email")->required();
    add_common(app, o.common, TokenFlags::none);
    add_insecure_flags(app, o.common, {Endpoint::oauth});
    add_token_endpoint_options(app, o.endpoints);
    app.add_option("--provider", o.provider, "The provider, when one email has two accounts")
        ->check(CLI::IsMember(oauth_provider_names()));
    app.add_option("--min-valid", o.min_valid,
                   "Refresh first when the token expires within this time")
        ->capture_default_str();
    app.add_option("--wait", o.wait,
                   "How long to wait for a refresh-tokens run that holds the lock")
        ->capture_default_str();
    app.add_flag("--json", o.json,
                 "Print {\"access_token\", \"expires_at\", \"api_domain\", ...} instead");
}

int run_token(const TokenOptions& o) {
    const auto min_valid = parse_duration_option(o.min_valid, "--min-valid");
    oauth::StateTokenOptions options;
    options.lock_wait = parse_duration_option(o.wait, "--wait");
    options.refresh = refresh_settings(o.common, o.endpoints);
    const auto providers = oauth_providers(o.endpoints);
    const std::string state_path =
        o.endpoints.state_path.empty() ? state::default_state_path() : o.endpoints.state_path;
    // stdout belongs to the token: no summary line, and the log opens only once a refresh is
    // due. Unknown, disabled or removed accounts and interruptions are no episode.
    auto lifecycle = job_settings(o.common, "token", "", "", "", state_path);
    lifecycle.log.to_stdout = false;
    lifecycle.print_summary = false;
    lifecycle.is_outcome = [](const Error& e) {
        return e.kind() == ErrorKind::auth || e.kind() == ErrorKind::connection;
    };
    return pipeline::run_job(lifecycle, [&](pipeline::JobRun& job) {
        state::StateStore store(state_path);
        options.hooks.found = [&](const state::Account& a) {
            job.summary().job = a.provider + ":" + a.email;
        };
        options.hooks.refresh_due = [&](const state::Account& a) {
            init_logging(o.common, "token-" + std::to_string(a.id), "token");
        };
        const auto tokens = oauth::make_state_token_provider(store, providers, options);
        const auto token = tokens->token(o.account, o.provider, min_valid);
        if (!token.deferred.empty()) {
            std::cerr << "crmsync: warning: " << util::redact(token.deferred)
                      << "; printing the current token, valid until "
                      << util::format_iso8601(token.expires_at) << "\n";
            job.set_no_notice();
        }
        print_token(o, token);
    });
}

} // namespace crmsync::cli
