#include "cmd/contacts_sync.hpp"

#include "drivers/contacts/dry_run.hpp"
#include "drivers/contacts/sync.hpp"
#include "drivers/google/people_client.hpp"
#include "drivers/zoho/creator_client.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/oauth/token_provider.hpp"
#include "lib/state/accounts.hpp"
#include "lib/state/contacts_store.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <algorithm>
#include <filesystem>
#include <unistd.h>

namespace crmsync::cli {
namespace {

using drivers::contacts::Direction;

// A token valid this long is sent; a shorter one is refreshed first.
constexpr std::chrono::minutes k_min_valid{2};

void require(const std::string& value, const char* flag, const char* hint) {
    if (value.empty()) {
        throw Error(ErrorKind::usage, std::string(flag) + " is required", hint);
    }
}

// Everything a run needs, checked before any I/O.
struct Resolved {
    std::string job; // the state's key and lock: one Creator report
    std::string state_path;
    drivers::contacts::SyncOptions sync;
};

Resolved resolve(const ContactsSyncOptions& o) {
    require(o.zoho_account, "--zoho-account", "name the Zoho OAuth account (crmsync accounts)");
    require(o.zoho_owner, "--zoho-owner", "the Creator app owner's account name");
    require(o.zoho_app, "--zoho-app", "the Creator app's link name");
    require(o.zoho_form, "--zoho-form", "the form that records are added to");
    require(o.zoho_report, "--zoho-report", "the report that records are read from");
    Resolved r;
    r.job = "contacts:" + o.zoho_owner + "/" + o.zoho_app + "/" + o.zoho_report;
    r.state_path =
        o.endpoints.state_path.empty() ? state::default_state_path() : o.endpoints.state_path;
    if (!o.people_url.empty()) {
        util::parse_http_url(o.people_url);
        require_tls_for_credentials(o.people_url, "the People API URL, which receives tokens",
                                    "--people-url");
    }
    if (!o.zoho_api_url.empty()) {
        util::parse_http_url(o.zoho_api_url);
        require_tls_for_credentials(o.zoho_api_url, "the Zoho API URL, which receives a token",
                                    "--zoho-api-url");
    }
    auto& s = r.sync;
    s.direction = o.direction == "google-to-zoho"   ? Direction::google_to_zoho
                  : o.direction == "zoho-to-google" ? Direction::zoho_to_google
                                                    : Direction::both;
    s.owner_field = o.owner_field;
    s.link_field = o.link_field;
    s.batch = o.batch;
    s.queue_cap = o.queue_cap;
    s.max_per_run = o.max_per_run;
    s.page_size = static_cast<int>(std::min<long>(100, o.queue_cap));
    s.propagate_deletes = o.propagate_deletes;
    s.zone = drivers::contacts::ZohoZone::parse(o.zoho_timezone);
    s.lookback = parse_duration_option(o.lookback, "--lookback");
    if (s.owner_field.empty() || s.link_field.empty()) {
        throw Error(ErrorKind::usage, "--zoho-owner-field and --zoho-link-field cannot be empty",
                    "name the Creator fields (defaults Owner_Login, Google_Resource_Name)");
    }
    return r;
}

// Creator as a run reaches it: the Zoho account's token (refreshed when needed) decides the
// API host unless --zoho-api-url says it.
// `deadline`: the run's, shared by every client so --max-runtime bounds the whole run.
drivers::zoho::CreatorClientOptions
creator_options(const ContactsSyncOptions& o, oauth::TokenProvider& tokens,
                std::optional<std::chrono::steady_clock::time_point> deadline) {
    const auto zoho_token = tokens.token(o.zoho_account, "zoho", k_min_valid);
    drivers::zoho::CreatorClientOptions c;
    c.api_url = !o.zoho_api_url.empty()          ? o.zoho_api_url
                : !zoho_token.api_domain.empty() ? zoho_token.api_domain
                                                 : "https://www.zohoapis.com";
    require_tls_for_credentials(c.api_url, "the Zoho API host, which receives a token",
                                "--zoho-api-url");
    c.owner = o.zoho_owner;
    c.app = o.zoho_app;
    c.form = o.zoho_form;
    c.report = o.zoho_report;
    c.requests_per_minute = o.zoho_requests_per_minute;
    c.verify_tls = verify_tls(o.common, Endpoint::api);
    c.retry = retry_policy(o.common);
    c.deadline = deadline;
    const std::string zoho_account = o.zoho_account;
    c.authorization = [&tokens, zoho_account] {
        return tokens.token(zoho_account, "zoho", k_min_valid).authorization;
    };
    return c;
}

// The People API for one Google account, as a run reaches it.
drivers::google::PeopleClientOptions
people_options(const ContactsSyncOptions& o, oauth::TokenProvider& tokens, const std::string& email,
               std::optional<std::chrono::steady_clock::time_point> deadline) {
    drivers::google::PeopleClientOptions p;
    if (!o.people_url.empty()) {
        p.base_url = o.people_url;
    }
    p.call_budget = o.google_calls;
    p.verify_tls = verify_tls(o.common, Endpoint::api);
    p.retry = retry_policy(o.common);
    p.deadline = deadline;
    p.person_fields = drivers::contacts::Mapping::builtin().google_fields();
    p.authorization = [&tokens, email] {
        return tokens.token(email, "google", k_min_valid).authorization;
    };
    return p;
}

// The Google accounts of a run: the ones named, else every active one.
std::vector<state::Account> google_accounts(const ContactsSyncOptions& o,
                                            state::StateStore& store) {
    state::AccountStore account_store(store);
    std::vector<state::Account> accounts;
    if (o.accounts.empty()) {
        for (auto& a : account_store.list("google")) {
            if (a.active) {
                accounts.push_back(std::move(a));
            }
        }
        return accounts;
    }
    for (const auto& name : o.accounts) {
        auto a = account_store.find(name, "google");
        if (!a) {
            throw Error(ErrorKind::usage, "no Google account '" + name + "'",
                        "see crmsync accounts list");
        }
        accounts.push_back(std::move(*a));
    }
    return accounts;
}

Error no_owner(const state::Account& account) {
    return Error(ErrorKind::config, "Google account " + account.email + " has no owner",
                 "set it with crmsync accounts add --owner LOGIN");
}

} // namespace

void add_contacts_sync(CLI::App& app, ContactsSyncOptions& o) {
    add_common(app, o.common, TokenFlags::none);
    add_insecure_flags(app, o.common, {Endpoint::api, Endpoint::oauth});
    add_token_endpoint_options(app, o.endpoints);
    app.add_option("--zoho-account", o.zoho_account,
                   "The Zoho OAuth account (crmsync accounts) that reaches Creator");
    app.add_option("--zoho-owner", o.zoho_owner, "The Creator app owner's account name");
    app.add_option("--zoho-app", o.zoho_app, "The Creator app's link name");
    app.add_option("--zoho-form", o.zoho_form, "The form that new contacts are added to");
    app.add_option("--zoho-report", o.zoho_report, "The report that records are read from");
    app.add_option("--account", o.accounts,
                   "A Google account to sync (repeatable; default: every active one)");
    app.add_option("--direction", o.direction, "both, google-to-zoho or zoho-to-google")
        ->check(CLI::IsMember({"both", "google-to-zoho", "zoho-to-google"}))
        ->capture_default_str();
    app.add_option("--people-url", o.people_url,
                   "People API (default https://people.googleapis.com)");
    app.add_option("--zoho-api-url", o.zoho_api_url,
                   "Zoho API host (default: the Zoho account's api_domain)");
    app.add_option("--batch", o.batch, "Records per Creator add request")
        ->check(CLI::Range(1, 200))
        ->capture_default_str();
    app.add_option("--queue-cap", o.queue_cap, "Google contacts queued per account at most")
        ->check(CLI::Range(1L, 1'000'000L))
        ->capture_default_str();
    app.add_option("--max-per-run", o.max_per_run,
                   "Queued contacts sent to Zoho per account and run")
        ->check(CLI::Range(1L, 1'000'000L))
        ->capture_default_str();
    app.add_option("--google-calls", o.google_calls,
                   "Google requests per account and run at most (0: no limit)")
        ->check(CLI::Range(0L, 1'000'000L))
        ->capture_default_str();
    app.add_option("--zoho-requests-per-minute", o.zoho_requests_per_minute,
                   "Creator requests per minute at most (Creator allows 50; 0: no pacing)")
        ->check(CLI::Range(0, 100'000))
        ->capture_default_str();
    app.add_option("--zoho-owner-field", o.owner_field,
                   "Creator field holding the owner's login (the Google account's owner)")
        ->capture_default_str();
    app.add_option("--zoho-link-field", o.link_field,
                   "Creator field holding the Google resourceName")
        ->capture_default_str();
    app.add_flag("--propagate-deletes", o.propagate_deletes,
                 "Delete the Zoho record of a contact deleted in Google (default: unlink it for "
                 "good)");
    app.add_option("--zoho-timezone", o.zoho_timezone,
                   "Time zone of the Creator app's Added_Time/Modified_Time: UTC, +05:30 or a "
                   "zone name")
        ->capture_default_str();
    app.add_flag("--dry-run", o.dry_run,
                 "Read both sides and count what would be written; write nothing (no Google, "
                 "no Zoho, no sync state)");
    app.add_option("--lookback", o.lookback, "Overlap when reading Zoho changes since the last run")
        ->capture_default_str();
}

int run_contacts_sync(const ContactsSyncOptions& o) {
    const auto resolved = resolve(o);
    const auto refresh = refresh_settings(o.common, o.endpoints);
    const auto deadline = run_deadline(o.common);
    const std::string notify_job =
        "contacts-sync with Zoho Creator " + o.zoho_owner + "/" + o.zoho_app;
    auto common = o.common;
    if (o.dry_run) {
        // A dry run records nothing, not even an error episode.
        common.notify_smtp.clear();
        common.notify_url.clear();
    }
    const auto settings = job_settings(common, "contacts-sync", resolved.job, "contacts-sync",
                                       notify_job, resolved.state_path);
    return pipeline::run_job(settings, [&](pipeline::JobRun& run) {
        state::StateStore store(resolved.state_path);
        run.require_lock(store.try_lock_job(resolved.job), notify_job);
        const auto providers = oauth_providers(o.endpoints);
        oauth::StateTokenOptions token_options;
        token_options.refresh = refresh;
        const auto tokens = oauth::make_state_token_provider(store, providers, token_options);

        drivers::zoho::CreatorClient creator(creator_options(o, *tokens, deadline));
        const auto accounts = google_accounts(o, store);
        log::info("crmsync {} contacts-sync: {} Google account(s) with Zoho Creator {}/{} at {}",
                  CRMSYNC_VERSION, accounts.size(), o.zoho_owner, o.zoho_app,
                  util::redact_url(creator.api_url()));

        // A dry run syncs a copy of the state file with writes answered but not sent; the
        // copy goes when the run ends (after its store closed: declared first).
        struct RemoveCopy {
            std::string path;
            ~RemoveCopy() {
                if (!path.empty()) {
                    std::error_code ec;
                    for (const char* suffix : {"", "-wal", "-shm"}) {
                        std::filesystem::remove(path + suffix, ec);
                    }
                }
            }
        } remove_copy;
        std::unique_ptr<state::StateStore> dry_store;
        if (o.dry_run) {
            remove_copy.path = resolved.state_path + ".dry-run-" + std::to_string(::getpid());
            std::filesystem::remove(remove_copy.path);
            state::copy_state_file(store, remove_copy.path);
            dry_store = std::make_unique<state::StateStore>(remove_copy.path);
        }
        state::StateStore& sync_store = dry_store ? *dry_store : store;
        drivers::contacts::DryRunCreator dry_creator(creator);

        drivers::contacts::SyncCounts totals;
        long failed = 0;
        std::string first_failure;
        for (const auto& account : accounts) {
            const std::string who = util::ascii_lower(account.email);
            try {
                if (account.owner.empty()) {
                    throw no_owner(account);
                }
                drivers::google::PeopleClient people(
                    people_options(o, *tokens, account.email, deadline));
                drivers::contacts::DryRunPeople dry_people(people);
                drivers::contacts::PeopleApi& people_api =
                    o.dry_run ? static_cast<drivers::contacts::PeopleApi&>(dry_people) : people;
                drivers::contacts::CreatorApi& creator_api =
                    o.dry_run ? static_cast<drivers::contacts::CreatorApi&>(dry_creator) : creator;
                drivers::contacts::AccountSync sync(
                    sync_store, resolved.job, who, account.owner, people_api, creator_api,
                    drivers::contacts::Mapping::builtin(), resolved.sync);
                const auto counts = sync.run();
                log::info("{}: {} Google requests, queue {}", who, people.calls(),
                          counts.queue_left);
                totals += counts;
            } catch (const Error& e) {
                if (e.kind() == ErrorKind::interrupted || e.kind() == ErrorKind::io ||
                    e.kind() == ErrorKind::locked) {
                    throw;
                }
                ++failed;
                const std::string line = account.email + ": " + e.describe();
                log::error("{}", line);
                std::cerr << "crmsync: warning: " << util::redact(line) << "\n";
                if (first_failure.empty()) {
                    first_failure = line;
                }
            }
        }
        auto& summary = run.summary();
        summary.fetched = totals.google_read + totals.zoho_read;
        summary.rejected = totals.rejected;
        auto& c = summary.counters;
        c.emplace_back("accounts", static_cast<long>(accounts.size()));
        c.emplace_back("accounts_failed", failed);
        c.emplace_back("google_read", totals.google_read);
        c.emplace_back("zoho_read", totals.zoho_read);
        c.emplace_back("zoho_added", totals.zoho_added);
        c.emplace_back("zoho_updated", totals.zoho_updated);
        c.emplace_back("zoho_deleted", totals.zoho_deleted);
        c.emplace_back("google_created", totals.google_created);
        c.emplace_back("google_updated", totals.google_updated);
        c.emplace_back("unchanged", totals.unchanged);
        c.emplace_back("relinked", totals.relinked);
        c.emplace_back("conflicts", totals.conflicts);
        c.emplace_back("tombstoned", totals.tombstoned);
        c.emplace_back("queued", totals.queue_left);
        c.emplace_back("zoho_requests", creator.calls());
        if (o.dry_run) {
            // What a run would do: counted on a copy, nothing was written.
            c.emplace_back("dry_run", 1);
        }
        if (failed > 0 && failed == static_cast<long>(accounts.size())) {
            throw Error(ErrorKind::connection,
                        "every Google account failed; first: " + first_failure);
        }
        if (failed > 0) {
            run.set_partial();
            run.set_notice_error(std::to_string(failed) + " of " + std::to_string(accounts.size()) +
                                 " Google accounts failed; first: " + first_failure);
        } else if (totals.work_left) {
            run.set_partial();
        }
    });
}

std::vector<ContactsSyncProbe> probe_contacts_sync(const ContactsSyncOptions& o) {
    const auto resolved = resolve(o);
    if (!std::filesystem::exists(resolved.state_path)) {
        throw Error(ErrorKind::config, "the state file " + resolved.state_path + " does not exist",
                    "add the accounts first: crmsync accounts add ...");
    }
    state::StateStore store(resolved.state_path);
    const auto providers = oauth_providers(o.endpoints);
    oauth::StateTokenOptions token_options;
    token_options.refresh = refresh_settings(o.common, o.endpoints);
    const auto tokens = oauth::make_state_token_provider(store, providers, token_options);
    const auto deadline = run_deadline(o.common);

    std::vector<ContactsSyncProbe> probes;
    ContactsSyncProbe zoho{"zoho",
                           "Zoho Creator report " + o.zoho_owner + "/" + o.zoho_app + "/" +
                               o.zoho_report + " (account " + o.zoho_account + ")",
                           std::nullopt};
    try {
        drivers::zoho::CreatorClient creator(creator_options(o, *tokens, deadline));
        creator.records(o.owner_field + " == " +
                        drivers::contacts::criteria_literal("crmsync doctor: no such owner"));
    } catch (const Error& e) {
        zoho.error = e;
    }
    probes.push_back(std::move(zoho));

    for (const auto& account : google_accounts(o, store)) {
        ContactsSyncProbe google{"google", "the People API for " + account.email, std::nullopt};
        try {
            if (account.owner.empty()) {
                throw no_owner(account);
            }
            drivers::google::PeopleClient people(
                people_options(o, *tokens, account.email, deadline));
            people.list_connections("", "", 1);
        } catch (const Error& e) {
            google.error = e;
        }
        probes.push_back(std::move(google));
    }
    return probes;
}

} // namespace crmsync::cli
