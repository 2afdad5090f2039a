#include "cmd/accounts.hpp"

#include "cmd/oauth_providers.hpp"
#include "drivers/zoho/token_client.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/oauth/account_secrets.hpp"
#include "lib/oauth/account_text.hpp"
#include "lib/state/accounts.hpp"
#include "lib/state/contacts_store.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/identifiers.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sys/stat.h>
#include <unistd.h>

namespace crmsync::cli {
namespace {

constexpr std::size_t k_max_secrets_bytes = 64 * 1024;

std::string state_path_of(const AccountsOptions& o) {
    return o.state_path.empty() ? state::default_state_path() : o.state_path;
}

std::string read_secrets_text(const AccountsOptions& o) {
    std::string text;
    if (!o.secrets_file.empty()) {
        std::ifstream in(o.secrets_file, std::ios::binary);
        if (!in) {
            throw Error(ErrorKind::config, "cannot read the secrets file " + o.secrets_file,
                        "check the path and that this user may read it");
        }
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        struct stat st {};
        if (::stat(o.secrets_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
            std::cerr << "crmsync: warning: " << o.secrets_file
                      << " is readable by other users; 'chmod 600' it, or delete it now that "
                         "the secrets are in the state file\n";
        }
    } else {
        if (::isatty(STDIN_FILENO) != 0) {
            std::cerr << R"(Paste {"client_secret": "...", "refresh_token": "..."}, then press )"
                         "Ctrl-D:\n";
        }
        text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    if (text.size() > k_max_secrets_bytes) {
        throw Error(ErrorKind::usage, "the secrets are longer than 64 KiB",
                    oauth::k_account_secrets_hint);
    }
    return text;
}

std::string one_line(std::string text, std::size_t limit) {
    std::replace_if(
        text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    if (text.size() > limit) {
        text = text.substr(0, limit - 3) + "...";
    }
    return text;
}

state::Account find_or_fail(state::AccountStore& accounts, const AccountsOptions& o) {
    auto account = accounts.find(o.account, o.provider);
    if (!account) {
        throw Error(ErrorKind::usage, "no account '" + o.account + "' in " + state_path_of(o),
                    "'crmsync accounts list' shows the accounts");
    }
    oauth::register_account_secrets(*account);
    return std::move(*account);
}

int run_add(const AccountsOptions& o) {
    if (!util::is_plain_mail_address(o.email)) {
        throw Error(ErrorKind::usage, "--email '" + o.email + "' is not a mail address",
                    "e.g. --email alice@example.com");
    }
    if (!oauth::is_plain_token(o.client_id)) {
        throw Error(ErrorKind::usage, "--client-id is empty or holds spaces",
                    "give the OAuth client id of the app the refresh token was issued to");
    }
    state::Account account;
    account.provider = o.provider;
    account.email = o.email;
    account.owner = o.owner;
    account.client_id = o.client_id;
    account.active = !o.disabled;
    if (o.provider == "zoho") {
        const auto dc = drivers::zoho::canonical_dc(o.zoho_dc.empty() ? "com" : o.zoho_dc);
        if (!dc) {
            throw Error(ErrorKind::usage, "--zoho-dc '" + o.zoho_dc + "' is not a Zoho data centre",
                        "use com (US), eu, in, com.au, jp, com.cn, ca, sa or uk");
        }
        account.zoho_dc = *dc;
    } else if (!o.zoho_dc.empty()) {
        throw Error(ErrorKind::usage, "--zoho-dc is for Zoho accounts only",
                    "leave it out for --provider google");
    }
    const auto secrets = oauth::parse_account_secrets(
        read_secrets_text(o), o.secrets_file.empty() ? "stdin" : o.secrets_file);
    account.client_secret = secrets.client_secret;
    account.refresh_token = secrets.refresh_token;

    state::StateStore store(state_path_of(o));
    state::AccountStore accounts(store);
    const auto [id, added] = accounts.upsert(account);
    std::cout << fmt::format("crmsync: {} account {}: {} {}{}{}\n",
                             added ? "added" : "re-authorized", id, account.provider, account.email,
                             account.zoho_dc.empty() ? ""
                                                     : " (data centre " + account.zoho_dc + ")",
                             account.active || !added ? "" : ", disabled");
    std::cout << "crmsync: check it with 'crmsync token " << id << "'\n";
    return k_exit_ok;
}

int run_list(const AccountsOptions& o) {
    state::StateStore store(state_path_of(o));
    state::AccountStore accounts(store);
    const auto list = accounts.list(o.provider);
    // contacts-sync's queue per Google account (the seed's pendingConnections).
    const auto queues = state::ContactsStore(store).queue_lengths();
    const auto queue_of = [&](const state::Account& a) -> long {
        const auto it = queues.find(util::ascii_lower(a.email));
        return it == queues.end() ? 0 : it->second;
    };
    for (const auto& a : list) {
        oauth::register_account_secrets(a);
    }
    const SystemTime now = Clock::real().wall_now();
    if (o.json) {
        nlohmann::ordered_json out = nlohmann::ordered_json::array();
        for (const auto& a : list) {
            nlohmann::ordered_json j;
            j["id"] = a.id;
            j["provider"] = a.provider;
            j["email"] = a.email;
            j["owner"] = a.owner;
            j["zoho_dc"] = a.zoho_dc;
            j["api_domain"] = a.api_domain;
            j["active"] = a.active;
            j["status"] = a.status;
            j["last_error"] = a.last_error;
            j["pending_connections"] = queue_of(a);
            j["client_id"] = a.client_id;
            j["client_secret"] = oauth::mask_secret(a.client_secret);
            j["refresh_token"] = oauth::mask_secret(a.refresh_token);
            j["access_token"] = oauth::mask_secret(a.access_token);
            j["expires_at"] = a.expires_at ? util::format_iso8601(*a.expires_at) : "";
            j["refreshed_at"] = a.refreshed_at;
            j["created_at"] = a.created_at;
            j["updated_at"] = a.updated_at;
            out.push_back(std::move(j));
        }
        std::cout << util::redact(out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace))
                  << "\n";
        return k_exit_ok;
    }
    std::vector<std::vector<std::string>> rows{{"ID", "PROVIDER", "EMAIL", "OWNER", "DC", "ACTIVE",
                                                "STATUS", "QUEUED", "TOKEN EXPIRES",
                                                "REFRESH TOKEN", "LAST ERROR"}};
    for (const auto& a : list) {
        rows.push_back({std::to_string(a.id), a.provider, a.email, a.owner.empty() ? "-" : a.owner,
                        a.zoho_dc.empty() ? "-" : a.zoho_dc, a.active ? "yes" : "no", a.status,
                        a.provider == "google" ? std::to_string(queue_of(a)) : "-",
                        a.expires_at && !a.access_token.empty()
                            ? util::format_iso8601(*a.expires_at) + " (" +
                                  oauth::relative_time(*a.expires_at, now) + ")"
                            : "-",
                        oauth::mask_secret(a.refresh_token),
                        a.last_error.empty() ? "-" : one_line(a.last_error, 80)});
    }
    std::vector<std::size_t> widths(rows.front().size(), 0);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], row[i].size());
        }
    }
    std::string text;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], widths[i]);
        }
        text += line + "\n";
    }
    if (list.empty()) {
        text += "(no accounts in " + state_path_of(o) + "; add one with 'crmsync accounts add')\n";
    }
    std::cout << util::redact(text);
    return k_exit_ok;
}

int run_set_active(const AccountsOptions& o, bool active) {
    state::StateStore store(state_path_of(o));
    state::AccountStore accounts(store);
    const auto account = find_or_fail(accounts, o);
    accounts.set_active(account.id, active);
    std::cout << fmt::format("crmsync: {} {}\n", active ? "enabled" : "disabled",
                             oauth::describe_account(account));
    return k_exit_ok;
}

int run_remove(const AccountsOptions& o) {
    state::StateStore store(state_path_of(o));
    state::AccountStore accounts(store);
    const auto account = find_or_fail(accounts, o);
    accounts.remove(account.id);
    std::cout << fmt::format("crmsync: removed {} and its secrets\n",
                             oauth::describe_account(account));
    return k_exit_ok;
}

CLI::App* leaf(CLI::App& app, AccountsOptions& o, const char* name, const char* description) {
    auto* sub = app.add_subcommand(name, description);
    sub->add_option("--state", o.state_path,
                    "State file holding the accounts (default $XDG_STATE_HOME/crmsync/state.db)");
    sub->callback([&o, name] { o.action = name; });
    return sub;
}

void add_account_argument(CLI::App& sub, AccountsOptions& o) {
    sub.add_option("account", o.account, "The account: its id or email")->required();
    sub.add_option("--provider", o.provider, "The provider, when one email has two accounts")
        ->check(CLI::IsMember(oauth_provider_names()));
}

} // namespace

void add_accounts(CLI::App& app, AccountsOptions& o) {
    app.require_subcommand(1);

    auto* add = leaf(app, o, "add",
                     "Add an account, or re-authorize one (same provider and email); the secrets "
                     "come as JSON on stdin or from --secrets-file, never from the command line");
    add->add_option("--provider", o.provider, "google or zoho")
        ->required()
        ->check(CLI::IsMember(oauth_provider_names()));
    add->add_option("--email", o.email, "The account's mail address")->required();
    add->add_option("--owner", o.owner, "The owner's login (e.g. the CRM user it belongs to)");
    add->add_option("--zoho-dc", o.zoho_dc,
                    "Zoho data centre: com (default), eu, in, com.au, jp, com.cn, ca, sa, uk");
    add->add_option("--client-id", o.client_id, "The OAuth client id")->required();
    add->add_option(
        "--secrets-file", o.secrets_file,
        R"(File holding {"client_secret": "...", "refresh_token": "..."} (default: stdin))");
    add->add_flag("--disabled", o.disabled, "Add it disabled (refresh-tokens skips it)");

    auto* list = leaf(app, o, "list", "List the accounts; secrets are masked");
    list->add_option("--provider", o.provider, "Only this provider")
        ->check(CLI::IsMember(oauth_provider_names()));
    list->add_flag("--json", o.json, "Print JSON");

    add_account_argument(*leaf(app, o, "disable", "Keep an account but stop refreshing it"), o);
    add_account_argument(*leaf(app, o, "enable", "Refresh a disabled account again"), o);
    add_account_argument(*leaf(app, o, "remove", "Delete an account and its secrets"), o);
}

int run_accounts(const AccountsOptions& o) {
    if (o.action == "add") {
        return run_add(o);
    }
    if (o.action == "list") {
        return run_list(o);
    }
    if (o.action == "disable" || o.action == "enable") {
        return run_set_active(o, o.action == "enable");
    }
    if (o.action == "remove") {
        return run_remove(o);
    }
    throw Error(ErrorKind::usage, "accounts needs a command: add, list, disable, enable or remove",
                "run 'crmsync accounts --help'");
}

} // namespace crmsync::cli
