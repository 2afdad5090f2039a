#include "cmd/refresh_tokens.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/oauth/refresh_run.hpp"
#include "lib/util/redact.hpp"

#include <fmt/format.h>

#include <iostream>

namespace crmsync::cli {
namespace {

// The failures listed on stderr and in a notice; the rest are counted.
constexpr std::size_t k_listed_failures = 20;

// The episode's key: "refresh-tokens", or with the run's filter, "refresh-tokens:provider=zoho".
std::string job_name(const RefreshTokensOptions& o) {
    std::string filter;
    if (!o.provider.empty()) {
        filter = "provider=" + o.provider;
    }
    if (!o.account.empty()) {
        filter += (filter.empty() ? "" : ",") + std::string("account=") + o.account;
    }
    return filter.empty() ? "refresh-tokens" : "refresh-tokens:" + filter;
}

// One run inside run_job: lock, the refresh, the counters; failures become a partial run
// with a notice, or a failed one when no provider was reached.
void refresh_job(pipeline::JobRun& job, const RefreshTokensOptions& o,
                 const std::string& state_path, const oauth::ProviderTable& providers,
                 const oauth::RefreshRun& run, const oauth::RefreshSettings& settings) {
    state::StateStore store(state_path);
    if (!store.try_lock_job("refresh-tokens")) {
        throw Error(ErrorKind::locked,
                    "another refresh-tokens run on " + state_path + " holds the lock",
                    "nothing to do: that run refreshes the tokens");
    }
    auto selected = oauth::select_accounts(store, o.account, o.provider);
    log::info("crmsync {} refresh-tokens: {} active account(s) in {}", CRMSYNC_VERSION,
              selected.size(), state_path);

    std::size_t listed = 0;
    const auto r = oauth::refresh_due_accounts(
        store, providers, std::move(selected), run, settings, [&](const std::string& line) {
            if (listed++ < k_listed_failures) {
                std::cerr << "crmsync: " << util::redact(line) << "\n";
            }
        });
    if (!r.untried.empty()) {
        std::cerr << "crmsync: " << r.untried << "\n";
    }
    const auto& problems = r.problems;
    if (problems.size() > k_listed_failures) {
        std::cerr << "crmsync: ... and " << problems.size() - k_listed_failures
                  << " more (see the log)\n";
    }

    auto& summary = job.summary();
    const long failures = r.failures();
    summary.retries = r.retries;
    summary.counters = {{"accounts", r.accounts},         {"due", r.due},
                        {"refreshed", r.refreshed},       {"fresh", r.fresh},
                        {"needs_reauth", r.needs_reauth}, {"failed", r.failed},
                        {"deferred", r.deferred},         {"not_tried", r.not_tried}};
    if (stop_requested()) {
        throw Error(ErrorKind::interrupted, "interrupted; the tokens refreshed so far are stored",
                    "run again to refresh the rest");
    }
    if (failures == 0) {
        return;
    }
    std::string error_text =
        fmt::format("{} of {} account(s) not refreshed", failures, r.accounts - r.fresh);
    for (std::size_t i = 0; i < problems.size() && i < k_listed_failures; ++i) {
        error_text += "\n" + problems[i];
    }
    if (problems.size() > k_listed_failures) {
        error_text += fmt::format("\n... and {} more", problems.size() - k_listed_failures);
    }
    job.set_notice_error(error_text);
    if (!r.none_reached()) {
        job.set_partial();
        return;
    }
    summary.error = problems.empty() ? error_text : problems.front();
    throw Error(ErrorKind::connection,
                fmt::format("no token could be refreshed: {} account(s) due, none reached "
                            "its provider",
                            failures),
                "check the network and the token endpoints (--google-token-url, "
                "--zoho-accounts-url); the next run tries again");
}

} // namespace

void add_refresh_tokens(CLI::App& app, RefreshTokensOptions& o) {
    o.common.max_runtime = "5m";
    add_common(app, o.common, TokenFlags::none);
    add_insecure_flags(app, o.common, {Endpoint::oauth});
    add_token_endpoint_options(app, o.endpoints);
    app.add_option("--within", o.within, "Refresh tokens that expire within this time (e.g. 10m)")
        ->capture_default_str();
    app.add_option("--account", o.account, "Only this account (its id or email)");
    app.add_option("--provider", o.provider, "Only accounts of this provider")
        ->check(CLI::IsMember(oauth_provider_names()));
    app.add_flag("--force", o.force,
                 "Refresh regardless of expiry, and accounts that need re-authorization too");
    app.add_option("--rate", o.rate, "Token requests per second over all workers (0 = no limit)")
        ->check(CLI::Range(0.0, 1000.0))
        ->capture_default_str();
    app.add_option("--chunk", o.chunk, "Accounts per chunk; each chunk is stored at once")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--concurrency", o.concurrency, "Token requests in flight")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
}

int run_refresh_tokens(const RefreshTokensOptions& o) {
    oauth::RefreshRun run;
    run.within = parse_duration_option(o.within, "--within");
    run.force = o.force;
    run.retry_needs_reauth = !o.account.empty();
    run.chunk = o.chunk;
    oauth::RefreshSettings settings = refresh_settings(o.common, o.endpoints);
    settings.rate = o.rate;
    settings.concurrency = o.concurrency;
    const auto providers = oauth_providers(o.endpoints);
    const std::string state_path =
        o.endpoints.state_path.empty() ? state::default_state_path() : o.endpoints.state_path;
    const std::string job_key = job_name(o);
    auto lifecycle = job_settings(o.common, "refresh-tokens",
                                  !o.account.empty()    ? o.account
                                  : !o.provider.empty() ? o.provider
                                                        : "all",
                                  "refresh-tokens", job_key, state_path);
    lifecycle.log.file = log_file_path(o.common, "refresh-tokens", "refresh");
    return pipeline::run_job(lifecycle, [&](pipeline::JobRun& job) {
        refresh_job(job, o, state_path, providers, run, settings);
    });
}

} // namespace crmsync::cli
