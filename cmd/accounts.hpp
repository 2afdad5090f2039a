#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace crmsync::cli {

// `crmsync accounts add|list|disable|enable|remove`: the OAuth accounts in the state file.
struct AccountsOptions {
    std::string action; // set by the chosen sub-subcommand
    std::string state_path;
    // add
    std::string provider;
    std::string email;
    std::string owner;
    std::string zoho_dc;
    std::string client_id;
    std::string secrets_file; // "" = stdin
    bool disabled = false;
    // list
    bool json = false;
    // disable, enable, remove
    std::string account; // id or email
};

void add_accounts(CLI::App& app, AccountsOptions& options);
int run_accounts(const AccountsOptions& options);

} // namespace crmsync::cli
