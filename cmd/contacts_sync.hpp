#pragma once

#include "cmd/common.hpp"
#include "cmd/oauth_providers.hpp"
#include "lib/core/error.hpp"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

namespace crmsync::cli {

struct ContactsSyncOptions {
    CommonOptions common;
    TokenEndpointOptions endpoints; // --state, --google-token-url, --zoho-accounts-url
    std::string zoho_account;       // the Zoho OAuth account in the state file
    std::string zoho_owner;         // the Creator app owner's account name
    std::string zoho_app;
    std::string zoho_form;
    std::string zoho_report;
    std::vector<std::string> accounts; // Google accounts; empty: every active one
    std::string direction = "both";
    std::string people_url;
    std::string zoho_api_url; // "" = the Zoho account's api_domain
    int batch = 30;
    long queue_cap = 400;
    long max_per_run = 100;
    long google_calls = 80;
    int zoho_requests_per_minute = 50;
    std::string owner_field = "Owner_Login";
    std::string link_field = "Google_Resource_Name";
    bool propagate_deletes = false;
    std::string zoho_timezone = "UTC";
    std::string lookback = "10m";
    bool dry_run = false;
};

void add_contacts_sync(CLI::App& app, ContactsSyncOptions& options);
int run_contacts_sync(const ContactsSyncOptions& options);

// What one read with a credential of the run found (doctor contacts-sync).
struct ContactsSyncProbe {
    std::string service;        // "zoho" or "google"
    std::string subject;        // what was read, printable
    std::optional<Error> error; // why it failed; nullopt: it answered
};
// Reads the Creator report with the Zoho account (a criteria on the owner field that matches
// no record, so the report must show that field), then the first contact of each Google
// account a run would sync. Tokens are refreshed and stored as a run does; nothing else is
// written and the job's lock is not taken. Throws Error(usage|config) for options a run would
// refuse and for a state file that does not exist.
std::vector<ContactsSyncProbe> probe_contacts_sync(const ContactsSyncOptions& options);

} // namespace crmsync::cli
