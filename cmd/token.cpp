#include "cmd/token.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/core/log.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <thread>

namespace crmsync::cli {
namespace {

using Kind = RefreshOutcome::Kind;

bool valid_for(const state::Account& a, std::chrono::milliseconds at_least) {
    return a.active && !a.access_token.empty() && a.expires_at &&
           *a.expires_at - Clock::real().wall_now() >= at_least;
}

// The one thing this command writes to stdout: the token, or a JSON object around it.
void print_token(const TokenOptions& o, const state::Account& a) {
    if (!o.json) {
        std::cout << a.access_token << std::endl;
        return;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::seconds>(*a.expires_at - Clock::real().wall_now());
    nlohmann::ordered_json j;
    j["access_token"] = a.access_token;
    j["token_type"] = "Bearer";
    j["authorization"] = (a.provider == "zoho" ? "Zoho-oauthtoken " : "Bearer ") + a.access_token;
    j["expires_at"] = util::format_iso8601(*a.expires_at);
    j["expires_in"] = left.count();
    j["provider"] = a.provider;
    j["email"] = a.email;
    j["account_id"] = a.id;
    if (!a.api_domain.empty()) {
        j["api_domain"] = a.api_domain;
    }
    std::cout << j.dump() << std::endl;
}

// Waits up to `wait` for a refresh-tokens run to release the state file's refresh lock.
bool wait_for_refresh_lock(state::StateStore& store, std::chrono::milliseconds wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
        if (store.try_lock_job("refresh-tokens")) {
            return true;
        }
        if (stop_requested() || std::chrono::steady_clock::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

// --summary-json: stdout belongs to the token, so there is no summary line.
void write_summary(const TokenOptions& o, const std::string& job, pipeline::RunStatus status,
                   const std::string& error, std::chrono::steady_clock::time_point started) {
    if (o.common.summary_json.empty()) {
        return;
    }
    pipeline::RunSummary summary;
    summary.command = "token";
    summary.job = job;
    summary.status = status;
    summary.error = error;
    summary.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    try {
        pipeline::write_summary_file(summary, o.common.summary_json);
    } catch (const Error& e) {
        std::cerr << "crmsync: warning: " << util::redact(e.what()) << std::endl;
    }
}

} // namespace

void add_token(CLI::App& app, TokenOptions& o) {
    o.common.max_runtime = "2m";
    app.add_option("account", o.account, "The account: its id or email")->required();
    add_common(app, o.common);
    add_token_endpoint_options(app, o.endpoints);
    app.add_option("--provider", o.provider, "The provider, when one email has two accounts")
        ->check(CLI::IsMember({"google", "zoho"}));
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
    const auto wait = parse_duration_option(o.wait, "--wait");
    RefreshSettings settings = refresh_settings(o.common, o.endpoints);
    settings.rate = 0;
    settings.concurrency = 1;
    const std::string state_path =
        o.endpoints.state_path.empty() ? state::default_state_path() : o.endpoints.state_path;
    install_stop_signal_handlers();
    const auto started = std::chrono::steady_clock::now();

    state::StateStore store(state_path);
    state::AccountStore accounts(store);
    auto account = accounts.find(o.account, o.provider);
    if (!account) {
        throw Error(ErrorKind::usage, "no account '" + o.account + "' in " + state_path,
                    "'crmsync accounts list' shows the accounts");
    }
    register_account_secrets(*account);
    if (!account->active) {
        throw Error(ErrorKind::usage, describe_account(*account) + " is disabled",
                    "enable it with 'crmsync accounts enable " + o.account + "'");
    }
    const std::string job = account->provider + ":" + account->email;
    if (valid_for(*account, min_valid)) {
        print_token(o, *account);
        write_summary(o, job, pipeline::RunStatus::ok, "", started);
        notify_outcome(o.common, state_path, "token", job, true, "");
        return k_exit_ok;
    }

    // A refresh is due: from here on the run leaves a log.
    init_logging(o.common, "token-" + std::to_string(account->id), "token");
    const auto fail = [&](Error error) {
        write_summary(o, job, pipeline::RunStatus::failed, error.describe(), started);
        notify_outcome(o.common, state_path, "token", job, false, error.describe());
        throw error;
    };
    if (!wait_for_refresh_lock(store, wait)) {
        if (stop_requested()) {
            throw Error(ErrorKind::interrupted, "interrupted while waiting for the refresh lock");
        }
        // Better two refreshes than a script without a token; Zoho's budget is still counted.
        log::warn("a refresh-tokens run still holds the lock after {} ms; refreshing anyway",
                  wait.count());
    }
    account = accounts.get(account->id);
    if (!account) {
        throw Error(ErrorKind::usage, "account '" + o.account + "' was removed meanwhile");
    }
    register_account_secrets(*account);
    if (valid_for(*account, min_valid)) {
        // Another run refreshed it while we waited.
        print_token(o, *account);
        write_summary(o, job, pipeline::RunStatus::ok, "", started);
        notify_outcome(o.common, state_path, "token", job, true, "");
        return k_exit_ok;
    }
    if (account->status == "needs_reauth") {
        fail(Error(ErrorKind::auth,
                   describe_account(*account) + " needs re-authorization: " + account->last_error,
                   "authorize it again and store the new refresh token with 'crmsync accounts "
                   "add'"));
    }
    const auto outcome = refresh_accounts(store, {*account}, settings).front();
    switch (outcome.kind) {
    case Kind::refreshed: {
        log::info("{}: refreshed, valid until {}", describe_account(*account),
                  util::format_iso8601(outcome.grant.expires_at));
        account->access_token = outcome.grant.access_token;
        account->expires_at = outcome.grant.expires_at;
        if (!outcome.grant.api_domain.empty()) {
            account->api_domain = outcome.grant.api_domain;
        }
        print_token(o, *account);
        write_summary(o, job, pipeline::RunStatus::ok, "", started);
        notify_outcome(o.common, state_path, "token", job, true, "");
        return k_exit_ok;
    }
    case Kind::deferred:
        if (valid_for(*account, std::chrono::milliseconds(1000))) {
            std::cerr << "crmsync: warning: " << util::redact(outcome.message)
                      << "; printing the current token, valid until "
                      << util::format_iso8601(*account->expires_at) << "\n";
            print_token(o, *account);
            write_summary(o, job, pipeline::RunStatus::ok, "", started);
            return k_exit_ok;
        }
        fail(Error(ErrorKind::connection,
                   describe_account(*account) + ": no valid token: " + outcome.message,
                   "wait for Zoho's window to pass"));
        break;
    case Kind::needs_reauth:
        fail(Error(ErrorKind::auth, describe_account(*account) + ": " + outcome.message));
        break;
    case Kind::not_tried:
        if (stop_requested()) {
            throw Error(ErrorKind::interrupted, "interrupted before the token request");
        }
        fail(Error(ErrorKind::connection, describe_account(*account) + ": " + outcome.message,
                   "raise --max-runtime"));
        break;
    case Kind::failed:
        fail(Error(ErrorKind::connection, describe_account(*account) + ": " + outcome.message,
                   "the token endpoint may be down; try again later"));
        break;
    }
    return k_exit_failed;
}

} // namespace crmsync::cli
