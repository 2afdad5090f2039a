#include "lib/oauth/refresh_run.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/oauth/account_text.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace crmsync::oauth {
namespace {

using Kind = RefreshOutcome::Kind;
using std::chrono::steady_clock;

bool is_due(const state::Account& a, SystemTime now, std::chrono::milliseconds within) {
    return a.access_token.empty() || !a.expires_at || *a.expires_at - now <= within;
}

} // namespace

std::vector<state::Account> select_accounts(state::StateStore& store, const std::string& account,
                                            const std::string& provider) {
    state::AccountStore accounts(store);
    std::vector<state::Account> selected;
    if (!account.empty()) {
        auto found = accounts.find(account, provider);
        if (!found) {
            throw Error(ErrorKind::usage, "no account '" + account + "' in " + store.path(),
                        "'crmsync accounts list' shows the accounts");
        }
        if (!found->active) {
            throw Error(ErrorKind::usage, describe_account(*found) + " is disabled",
                        "enable it with 'crmsync accounts enable " + account + "'");
        }
        selected.push_back(std::move(*found));
    } else {
        for (auto& a : accounts.list(provider)) {
            if (a.active) {
                selected.push_back(std::move(a));
            }
        }
    }
    for (const auto& a : selected) {
        register_account_secrets(a);
    }
    return selected;
}

RefreshReport refresh_due_accounts(state::StateStore& store, const ProviderTable& providers,
                                   std::vector<state::Account> selected, const RefreshRun& run,
                                   const RefreshSettings& settings,
                                   const std::function<void(const std::string&)>& on_problem) {
    RefreshReport report;
    report.accounts = static_cast<long>(selected.size());
    const auto note = [&](const state::Account& a, const std::string& what,
                          const std::string& message) {
        const std::string line = describe_account(a) + ": " + what + ": " + message;
        log::warn("{}", line);
        if (on_problem) {
            on_problem(line);
        }
        report.problems.push_back(line);
    };

    const SystemTime now = Clock::real().wall_now();
    std::vector<state::Account> due;
    for (auto& a : selected) {
        if (a.status == "needs_reauth" && !run.force && !run.retry_needs_reauth) {
            ++report.needs_reauth;
            report.account_level = true;
            note(a, "needs re-authorization (not tried)",
                 a.last_error.empty() ? "authorize it again and run 'crmsync accounts add'"
                                      : a.last_error);
        } else if (run.force || is_due(a, now, run.within)) {
            due.push_back(std::move(a));
        } else {
            ++report.fresh;
        }
    }
    report.due = static_cast<long>(due.size());

    const std::size_t chunk_size = std::max<std::size_t>(run.chunk, 1);
    std::size_t processed = 0;
    for (std::size_t start = 0; start < due.size(); start += chunk_size) {
        if (stop_requested() || (settings.deadline && steady_clock::now() >= *settings.deadline)) {
            break;
        }
        const std::size_t end = std::min(due.size(), start + chunk_size);
        const std::vector<state::Account> chunk(due.begin() + static_cast<std::ptrdiff_t>(start),
                                                due.begin() + static_cast<std::ptrdiff_t>(end));
        const auto outcomes = refresh_accounts(store, providers, chunk, settings);
        processed = end;
        for (std::size_t i = 0; i < chunk.size(); ++i) {
            const auto& a = chunk[i];
            const auto& out = outcomes[i];
            report.retries += std::max(0, out.requests - 1);
            switch (out.kind) {
            case Kind::refreshed:
                ++report.refreshed;
                log::info("{}: refreshed, valid until {}", describe_account(a),
                          util::format_iso8601(out.grant.expires_at));
                break;
            case Kind::needs_reauth:
                ++report.needs_reauth;
                report.account_level = true;
                note(a, "needs re-authorization", out.message);
                break;
            case Kind::failed:
                ++report.failed;
                report.account_level = report.account_level || out.answered;
                note(a, "failed", out.message);
                break;
            case Kind::deferred:
                // A token that is still valid waits for the window; an expired one is a failure.
                ++report.deferred;
                if (a.expires_at && *a.expires_at > Clock::real().wall_now() &&
                    !a.access_token.empty()) {
                    log::info("{}: deferred: {}", describe_account(a), out.message);
                } else {
                    ++report.deferred_expired;
                    report.account_level = true;
                    note(a, "deferred", out.message);
                }
                break;
            case Kind::not_tried:
                ++report.not_tried;
                note(a, "not tried", out.message);
                break;
            }
        }
    }
    if (processed < due.size()) {
        const std::size_t left = due.size() - processed;
        report.not_tried += static_cast<long>(left);
        report.untried = fmt::format("{} account(s) not tried: {}", left,
                                     stop_requested() ? "interrupted"
                                                      : "the time budget (--max-runtime) ran out");
        log::warn("{}", report.untried);
        report.problems.push_back(report.untried);
    }
    return report;
}

} // namespace crmsync::oauth
