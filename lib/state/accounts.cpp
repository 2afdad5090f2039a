#include "lib/state/accounts.hpp"

#include "lib/core/error.hpp"
#include "lib/state/open_file.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <cctype>

namespace crmsync::state {
namespace {

constexpr const char* k_columns =
    "id, provider, email, owner, client_id, client_secret, refresh_token, access_token, "
    "expires_at_ms, zoho_dc, api_domain, active, status, last_error, refreshed_at, created_at, "
    "updated_at";

constexpr std::size_t k_error_text = 2000;

std::string now_text() { return util::format_iso8601(Clock::real().wall_now()); }

std::string text_column(SQLite::Statement& st, int index) {
    const auto column = st.getColumn(index);
    return column.isNull() ? std::string() : column.getString();
}

Account read_account(SQLite::Statement& st) {
    Account a;
    a.id = st.getColumn(0).getInt64();
    a.provider = text_column(st, 1);
    a.email = text_column(st, 2);
    a.owner = text_column(st, 3);
    a.client_id = text_column(st, 4);
    a.client_secret = text_column(st, 5);
    a.refresh_token = text_column(st, 6);
    a.access_token = text_column(st, 7);
    if (!st.getColumn(8).isNull()) {
        a.expires_at = SystemTime(std::chrono::milliseconds(st.getColumn(8).getInt64()));
    }
    a.zoho_dc = text_column(st, 9);
    a.api_domain = text_column(st, 10);
    a.active = st.getColumn(11).getInt() != 0;
    a.status = text_column(st, 12);
    a.last_error = text_column(st, 13);
    a.refreshed_at = text_column(st, 14);
    a.created_at = text_column(st, 15);
    a.updated_at = text_column(st, 16);
    return a;
}

std::vector<Account> read_all(SQLite::Statement& st) {
    std::vector<Account> out;
    while (st.executeStep()) {
        out.push_back(read_account(st));
    }
    return out;
}

bool all_digits(const std::string& text) {
    return !text.empty() && text.size() < 19 &&
           std::all_of(text.begin(), text.end(),
                       [](unsigned char c) { return std::isdigit(c) != 0; });
}

std::int64_t ms_since_epoch(SystemTime t) { return t.time_since_epoch().count(); }

} // namespace

std::pair<std::int64_t, bool> AccountStore::upsert(const Account& a) {
    return detail::guarded(
        m_store, "cannot store the account", [&]() -> std::pair<std::int64_t, bool> {
            detail::WriteScope scope(m_store);
            SQLite::Statement find(detail::connection(m_store),
                                   "SELECT id FROM accounts WHERE provider = ? AND email = ?");
            find.bind(1, a.provider);
            find.bind(2, a.email);
            const std::string now = now_text();
            if (find.executeStep()) {
                const std::int64_t id = find.getColumn(0).getInt64();
                find.reset();
                SQLite::Statement update(
                    detail::connection(m_store),
                    "UPDATE accounts SET email = ?, owner = ?, client_id = ?, client_secret = ?, "
                    "refresh_token = ?, access_token = '', expires_at_ms = NULL, zoho_dc = ?, "
                    "api_domain = '', status = 'ok', last_error = '', updated_at = ? WHERE id = ?");
                update.bind(1, a.email);
                update.bind(2, a.owner);
                update.bind(3, a.client_id);
                update.bind(4, a.client_secret);
                update.bind(5, a.refresh_token);
                update.bind(6, a.zoho_dc);
                update.bind(7, now);
                update.bind(8, static_cast<std::int64_t>(id));
                update.exec();
                SQLite::Statement forget(detail::connection(m_store),
                                         "DELETE FROM token_requests WHERE account_id = ?");
                forget.bind(1, static_cast<std::int64_t>(id));
                forget.exec();
                scope.commit();
                return {id, false};
            }
            find.reset();
            SQLite::Statement insert(detail::connection(m_store),
                                     "INSERT INTO accounts (provider, email, owner, client_id, "
                                     "client_secret, refresh_token, "
                                     "zoho_dc, active, status, created_at, updated_at) VALUES (?, "
                                     "?, ?, ?, ?, ?, ?, ?, 'ok', "
                                     "?, ?)");
            insert.bind(1, a.provider);
            insert.bind(2, a.email);
            insert.bind(3, a.owner);
            insert.bind(4, a.client_id);
            insert.bind(5, a.client_secret);
            insert.bind(6, a.refresh_token);
            insert.bind(7, a.zoho_dc);
            insert.bind(8, a.active ? 1 : 0);
            insert.bind(9, now);
            insert.bind(10, now);
            insert.exec();
            const std::int64_t id = detail::connection(m_store).getLastInsertRowid();
            scope.commit();
            return {id, true};
        });
}

std::vector<Account> AccountStore::list(const std::string& provider) {
    return detail::guarded(m_store, "cannot read the accounts", [&]() -> std::vector<Account> {
        SQLite::Statement st(detail::connection(m_store),
                             std::string("SELECT ") + k_columns +
                                 " FROM accounts WHERE ? = '' OR provider = ? "
                                 "ORDER BY id");
        st.bind(1, provider);
        st.bind(2, provider);
        return read_all(st);
    });
}

std::optional<Account> AccountStore::get(std::int64_t id) {
    return detail::guarded(m_store, "cannot read the accounts", [&]() -> std::optional<Account> {
        SQLite::Statement st(detail::connection(m_store),
                             std::string("SELECT ") + k_columns + " FROM accounts WHERE id = ?");
        st.bind(1, static_cast<std::int64_t>(id));
        if (st.executeStep()) {
            return read_account(st);
        }
        return std::nullopt;
    });
}

std::optional<Account> AccountStore::find(const std::string& id_or_email,
                                          const std::string& provider) {
    return detail::guarded(m_store, "cannot read the accounts", [&]() -> std::optional<Account> {
        if (all_digits(id_or_email)) {
            auto account = get(std::stoll(id_or_email));
            if (account && (provider.empty() || account->provider == provider)) {
                return account;
            }
            return std::nullopt;
        }
        SQLite::Statement st(detail::connection(m_store),
                             std::string("SELECT ") + k_columns +
                                 " FROM accounts WHERE email = ? AND (? = '' OR "
                                 "provider = ?) ORDER BY id");
        st.bind(1, id_or_email);
        st.bind(2, provider);
        st.bind(3, provider);
        auto found = read_all(st);
        if (found.size() > 1) {
            throw Error(ErrorKind::usage, "'" + id_or_email + "' names a Google and a Zoho account",
                        "add --provider google or --provider zoho, or give the account's id");
        }
        if (found.empty()) {
            return std::nullopt;
        }
        return std::move(found.front());
    });
}

bool AccountStore::set_active(std::int64_t id, bool active) {
    return detail::guarded(m_store, "cannot update the account", [&]() -> bool {
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE accounts SET active = ?, updated_at = ? WHERE id = ?");
        st.bind(1, active ? 1 : 0);
        st.bind(2, now_text());
        st.bind(3, static_cast<std::int64_t>(id));
        return st.exec() == 1;
    });
}

bool AccountStore::remove(std::int64_t id) {
    return detail::guarded(m_store, "cannot remove the account", [&]() -> bool {
        detail::WriteScope scope(m_store);
        SQLite::Statement forget(detail::connection(m_store),
                                 "DELETE FROM token_requests WHERE account_id = ?");
        forget.bind(1, static_cast<std::int64_t>(id));
        forget.exec();
        SQLite::Statement st(detail::connection(m_store), "DELETE FROM accounts WHERE id = ?");
        st.bind(1, static_cast<std::int64_t>(id));
        const bool removed = st.exec() == 1;
        scope.commit();
        return removed;
    });
}

bool AccountStore::record_grant(std::int64_t id, const std::string& refresh_token,
                                const TokenGrant& grant) {
    return detail::guarded(m_store, "cannot update the account", [&]() -> bool {
        const std::string now = now_text();
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE accounts SET access_token = ?, expires_at_ms = ?, "
                             "api_domain = CASE WHEN ? = '' THEN api_domain ELSE ? END, "
                             "status = 'ok', last_error = '', refreshed_at = ?, updated_at = ? "
                             "WHERE id = ? AND refresh_token = ?");
        st.bind(1, grant.access_token);
        st.bind(2, static_cast<std::int64_t>(ms_since_epoch(grant.expires_at)));
        st.bind(3, grant.api_domain);
        st.bind(4, grant.api_domain);
        st.bind(5, now);
        st.bind(6, now);
        st.bind(7, static_cast<std::int64_t>(id));
        st.bind(8, refresh_token);
        return st.exec() == 1;
    });
}

bool AccountStore::record_failure(std::int64_t id, const std::string& refresh_token,
                                  const std::string& status, const std::string& error) {
    return detail::guarded(m_store, "cannot update the account", [&]() -> bool {
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE accounts SET status = ?, last_error = ?, updated_at = ? "
                             "WHERE id = ? AND refresh_token = ?");
        st.bind(1, status);
        st.bind(2, error.substr(0, k_error_text));
        st.bind(3, now_text());
        st.bind(4, static_cast<std::int64_t>(id));
        st.bind(5, refresh_token);
        return st.exec() == 1;
    });
}

void AccountStore::record_token_requests(std::int64_t id, SystemTime at, int count,
                                         std::chrono::milliseconds keep) {
    detail::guarded(m_store, "cannot record token requests", [&] {
        detail::WriteScope scope(m_store);
        SQLite::Statement prune(detail::connection(m_store),
                                "DELETE FROM token_requests WHERE account_id = ? AND at_ms < ?");
        prune.bind(1, static_cast<std::int64_t>(id));
        prune.bind(2, static_cast<std::int64_t>(ms_since_epoch(at - keep)));
        prune.exec();
        SQLite::Statement insert(detail::connection(m_store),
                                 "INSERT INTO token_requests (account_id, at_ms) VALUES (?, ?)");
        for (int i = 0; i < count; ++i) {
            insert.bind(1, static_cast<std::int64_t>(id));
            insert.bind(2, static_cast<std::int64_t>(ms_since_epoch(at)));
            insert.exec();
            insert.reset();
        }
        scope.commit();
    });
}

std::vector<SystemTime> AccountStore::token_requests_since(std::int64_t id, SystemTime since) {
    return detail::guarded(m_store, "cannot read token requests", [&]() -> std::vector<SystemTime> {
        SQLite::Statement st(detail::connection(m_store),
                             "SELECT at_ms FROM token_requests WHERE account_id = ? "
                             "AND at_ms >= ? ORDER BY at_ms");
        st.bind(1, static_cast<std::int64_t>(id));
        st.bind(2, static_cast<std::int64_t>(ms_since_epoch(since)));
        std::vector<SystemTime> out;
        while (st.executeStep()) {
            out.emplace_back(std::chrono::milliseconds(st.getColumn(0).getInt64()));
        }
        return out;
    });
}

} // namespace crmsync::state
