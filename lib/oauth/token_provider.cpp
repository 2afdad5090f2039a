#include "lib/oauth/token_provider.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/oauth/account_text.hpp"
#include "lib/util/time.hpp"

#include <thread>

namespace crmsync::oauth {
namespace {

using Kind = RefreshOutcome::Kind;

// The job lock a refresh-tokens run holds on the state file.
constexpr const char* k_refresh_lock = "refresh-tokens";
constexpr std::chrono::milliseconds k_lock_poll{200};

bool valid_for(const state::Account& a, std::chrono::milliseconds at_least) {
    return a.active && !a.access_token.empty() && a.expires_at &&
           *a.expires_at - Clock::real().wall_now() >= at_least;
}

class StateTokenProvider final : public TokenProvider {
public:
    StateTokenProvider(state::StateStore& store, const ProviderTable& providers,
                       StateTokenOptions options)
        : m_store(store), m_providers(providers), m_options(std::move(options)) {
        m_options.refresh.rate = 0;
        m_options.refresh.concurrency = 1;
    }

    AccessToken token(const std::string& which, const std::string& provider,
                      std::chrono::milliseconds min_valid) override {
        state::AccountStore accounts(m_store);
        auto account = accounts.find(which, provider);
        if (!account) {
            throw Error(ErrorKind::usage, "no account '" + which + "' in " + m_store.path(),
                        "'crmsync accounts list' shows the accounts");
        }
        register_account_secrets(*account);
        if (!account->active) {
            throw Error(ErrorKind::usage, describe_account(*account) + " is disabled",
                        "enable it with 'crmsync accounts enable " + which + "'");
        }
        if (m_options.hooks.found) {
            m_options.hooks.found(*account);
        }
        if (valid_for(*account, min_valid)) {
            return access_token(*account, false);
        }

        if (m_options.hooks.refresh_due) {
            m_options.hooks.refresh_due(*account);
        }
        if (!wait_for_refresh_lock()) {
            if (stop_requested()) {
                throw Error(ErrorKind::interrupted,
                            "interrupted while waiting for the refresh lock");
            }
            log::warn("a refresh-tokens run still holds the lock after {} ms; refreshing anyway",
                      m_options.lock_wait.count());
        }
        account = accounts.get(account->id);
        if (!account) {
            throw Error(ErrorKind::usage, "account '" + which + "' was removed meanwhile");
        }
        register_account_secrets(*account);
        if (valid_for(*account, min_valid)) {
            // Another process refreshed it while we waited.
            return access_token(*account, false);
        }
        if (account->status == "needs_reauth") {
            throw Error(ErrorKind::auth,
                        describe_account(*account) +
                            " needs re-authorization: " + account->last_error,
                        "authorize it again and store the new refresh token with 'crmsync "
                        "accounts add'");
        }
        return refresh(*account);
    }

private:
    AccessToken refresh(state::Account& account) {
        const auto outcome =
            refresh_accounts(m_store, m_providers, {account}, m_options.refresh).front();
        switch (outcome.kind) {
        case Kind::refreshed:
            log::info("{}: refreshed, valid until {}", describe_account(account),
                      util::format_iso8601(outcome.grant.expires_at));
            account.access_token = outcome.grant.access_token;
            account.expires_at = outcome.grant.expires_at;
            if (!outcome.grant.api_domain.empty()) {
                account.api_domain = outcome.grant.api_domain;
            }
            return access_token(account, true);
        case Kind::deferred:
            if (valid_for(account, std::chrono::milliseconds(1000))) {
                auto token = access_token(account, false);
                token.deferred = outcome.message;
                return token;
            }
            throw Error(ErrorKind::connection,
                        describe_account(account) + ": no valid token: " + outcome.message,
                        "wait for " + title(account) + "'s window to pass");
        case Kind::needs_reauth:
            throw Error(ErrorKind::auth, describe_account(account) + ": " + outcome.message);
        case Kind::not_tried:
            if (stop_requested()) {
                throw Error(ErrorKind::interrupted, "interrupted before the token request");
            }
            throw Error(ErrorKind::connection, describe_account(account) + ": " + outcome.message,
                        "raise --max-runtime");
        case Kind::failed:
            break;
        }
        throw Error(ErrorKind::connection, describe_account(account) + ": " + outcome.message,
                    "the token endpoint may be down; try again later");
    }

    // Waits up to lock_wait for a refresh-tokens run to release the refresh lock; the lock
    // then stays with m_store, so later refreshes need not wait again.
    bool wait_for_refresh_lock() {
        if (m_locked) {
            return true;
        }
        const auto until = std::chrono::steady_clock::now() + m_options.lock_wait;
        for (;;) {
            if (m_store.try_lock_job(k_refresh_lock)) {
                m_locked = true;
                return true;
            }
            if (stop_requested() || std::chrono::steady_clock::now() >= until) {
                return false;
            }
            std::this_thread::sleep_for(k_lock_poll);
        }
    }

    std::string title(const state::Account& account) const {
        const Provider* p = m_providers.find(account.provider);
        return p != nullptr ? std::string(p->title()) : account.provider;
    }

    AccessToken access_token(const state::Account& a, bool refreshed) const {
        const Provider* p = m_providers.find(a.provider);
        AccessToken t;
        t.account_id = a.id;
        t.provider = a.provider;
        t.email = a.email;
        t.access_token = a.access_token;
        t.expires_at = *a.expires_at;
        t.api_domain = a.api_domain;
        t.authorization =
            std::string(p != nullptr ? p->authorization_scheme() : "Bearer") + " " + a.access_token;
        t.refreshed = refreshed;
        return t;
    }

    state::StateStore& m_store;
    const ProviderTable& m_providers;
    StateTokenOptions m_options;
    bool m_locked = false;
};

} // namespace

std::unique_ptr<TokenProvider> make_state_token_provider(state::StateStore& store,
                                                         const ProviderTable& providers,
                                                         StateTokenOptions options) {
    return std::make_unique<StateTokenProvider>(store, providers, std::move(options));
}

} // namespace crmsync::oauth
