#include "cmd/leads.hpp"

#include "cmd/oauth_providers.hpp"
#include "drivers/callback24/source.hpp"
#include "drivers/facebook/lead_source.hpp"
#include "drivers/gmail/lead_source.hpp"
#include "drivers/gmail/lead_template.hpp"
#include "drivers/leads/lead_rows.hpp"
#include "drivers/pipedrive/leads_sink.hpp"
#include "lib/core/error.hpp"
#include "lib/oauth/token_provider.hpp"
#include "lib/pipeline/runner.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace crmsync::cli {
namespace {

std::string secret_from(const std::string& env, const std::string& file, const char* what,
                        const char* env_flag, const char* file_flag) {
    std::string secret;
    if (!env.empty()) {
        const char* value = std::getenv(env.c_str());
        if (value == nullptr || *value == '\0') {
            throw Error(ErrorKind::config, "environment variable " + env + " is empty",
                        std::string("export the ") + what + " in it");
        }
        secret = value;
    } else if (!file.empty()) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            throw Error(ErrorKind::config, "cannot read " + file,
                        std::string("check the path given to ") + file_flag);
        }
        std::ostringstream text;
        text << in.rdbuf();
        secret = text.str();
        while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) {
            secret.pop_back();
        }
    }
    if (secret.empty()) {
        throw Error(ErrorKind::config, std::string("no ") + what + " given",
                    std::string("use ") + env_flag + " VAR (or " + file_flag + " PATH)");
    }
    util::register_secret(secret);
    return secret;
}

// "a, b,,a" -> {"a", "b"}: sorted and unique, so the job key does not depend on the order.
std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        out += (out.empty() ? "" : ",") + item;
    }
    return out;
}

std::string without_trailing_slash(std::string url) {
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url;
}

// Everything a run needs, checked before any I/O.
struct Resolved {
    std::string job;         // checkpoint and lock key
    std::string description; // how messages name the job
    std::string state_path;
    drivers::pipedrive::LeadsSinkOptions sink;
};

Resolved resolve(const LeadsOptions& o) {
    Resolved r;
    if (o.source.empty()) {
        throw Error(ErrorKind::usage, "--source is required",
                    "choose --source callback24, facebook or gmail");
    }
    if (!o.api_url.empty()) {
        util::parse_http_url(o.api_url);
    }
    if (o.source == "callback24") {
        const auto services = split_list(o.services);
        if (services.empty()) {
            throw Error(ErrorKind::usage, "--source callback24 needs --service NAME[,NAME...]",
                        "name the Callback24 services (websites) whose calls are leads");
        }
        r.job = "leads:callback24:" + joined(services);
        r.description = "Callback24 services " + joined(services);
    } else if (o.source == "facebook") {
        const auto forms = split_list(o.forms);
        if (forms.empty()) {
            throw Error(ErrorKind::usage, "--source facebook needs --form FORM_ID[,FORM_ID...]",
                        "name the Lead Ads forms to read");
        }
        r.job = "leads:facebook:" + joined(forms);
        r.description = "Facebook forms " + joined(forms);
    } else {
        if (o.account.empty() || o.template_file.empty()) {
            throw Error(ErrorKind::usage, "--source gmail needs --account and --template",
                        "e.g. --account leads@example.com --template contact-form.json");
        }
        r.job = "leads:gmail:" + o.account + ":" +
                std::filesystem::path(o.template_file).stem().string();
        r.description = "Gmail account " + o.account;
    }
    r.sink.client.base_url = without_trailing_slash(
        o.pipedrive_url.empty() ? drivers::pipedrive::k_default_url : o.pipedrive_url);
    util::parse_http_url(r.sink.client.base_url);
    parse_time_option(o.since, "--since");
    parse_duration_option(o.lookback, "--lookback");
    r.sink.client.verify_tls = verify_tls(o.common, Endpoint::api);
    require_tls_for_credentials(r.sink.client.base_url,
                                "the Pipedrive URL, which receives the API token",
                                "--pipedrive-url");
    r.sink.client.retry = retry_policy(o.common);
    r.sink.client.deadline = run_deadline(o.common);
    r.sink.dry_run = o.dry_run;
    r.sink.in_flight = o.pipedrive_in_flight;
    r.state_path = o.state_path.empty() ? state::default_state_path() : o.state_path;
    return r;
}

std::unique_ptr<pipeline::Source> callback24_source(const LeadsOptions& o,
                                                    const Resolved& resolved) {
    drivers::callback24::LeadSourceOptions s;
    s.base_url = o.api_url.empty() ? drivers::callback24::k_default_url : o.api_url;
    s.token =
        secret_from(o.token_env, o.token_file, "Callback24 API key", "--token-env", "--token-file");
    s.services = split_list(o.services);
    s.since = parse_time_option(o.since, "--since");
    s.lookback = parse_duration_option(o.lookback, "--lookback");
    require_tls_for_credentials(s.base_url, "the Callback24 URL, which receives the API key",
                                "--api-url");
    s.verify_tls = verify_tls(o.common, Endpoint::api);
    s.retry = retry_policy(o.common);
    s.deadline = resolved.sink.client.deadline;
    return drivers::callback24::make_lead_source(s);
}

std::string pipedrive_token(const LeadsOptions& o) {
    return secret_from(o.pipedrive_token_env, o.pipedrive_token_file, "Pipedrive API token",
                       "--pipedrive-token-env", "--pipedrive-token-file");
}

} // namespace

std::unique_ptr<pipeline::Source> facebook_source(const LeadsOptions& o) {
    drivers::facebook::LeadSourceOptions s;
    if (!o.api_url.empty()) {
        s.base_url = without_trailing_slash(o.api_url);
    }
    require_tls_for_credentials(s.base_url, "the Graph API URL, which receives the page token",
                                "--api-url");
    s.access_token = secret_from(o.token_env, o.token_file, "Facebook page access token",
                                 "--token-env", "--token-file");
    s.forms = split_list(o.forms);
    s.since = parse_time_option(o.since, "--since");
    s.lookback = parse_duration_option(o.lookback, "--lookback");
    s.verify_tls = verify_tls(o.common, Endpoint::api);
    s.retry = retry_policy(o.common);
    s.deadline = run_deadline(o.common);
    return drivers::facebook::make_lead_source(s);
}

std::unique_ptr<pipeline::Source> gmail_source(const LeadsOptions& o) {
    drivers::gmail::LeadSourceOptions s;
    if (!o.api_url.empty()) {
        s.base_url = without_trailing_slash(o.api_url);
    }
    require_tls_for_credentials(s.base_url, "the Gmail API URL, which receives the access token",
                                "--api-url");
    s.lead_template = std::make_shared<const drivers::gmail::LeadTemplate>(
        drivers::gmail::load_lead_template(o.template_file));
    s.since = parse_time_option(o.since, "--since");
    s.lookback = parse_duration_option(o.lookback, "--lookback");
    s.verify_tls = verify_tls(o.common, Endpoint::api);
    s.retry = retry_policy(o.common);
    s.deadline = run_deadline(o.common);

    // The account's token, refreshed as `crmsync token` does (state file, refresh lock, the
    // provider's budget). The source asks before every request, from the fetch thread only.
    TokenEndpointOptions endpoints;
    endpoints.state_path = o.state_path;
    endpoints.google_token_url = o.google_token_url;
    // The provider borrows the store and the provider table: all three live together.
    struct Tokens {
        state::StateStore store;
        oauth::ProviderTable providers;
        std::unique_ptr<oauth::TokenProvider> provider;
        Tokens(const std::string& path, oauth::ProviderTable table)
            : store(path), providers(std::move(table)) {}
    };
    const std::string state_path =
        o.state_path.empty() ? state::default_state_path() : o.state_path;
    oauth::StateTokenOptions token_options;
    token_options.refresh = refresh_settings(o.common, endpoints);
    auto tokens = std::make_shared<Tokens>(state_path, oauth_providers(endpoints));
    tokens->provider =
        oauth::make_state_token_provider(tokens->store, tokens->providers, token_options);
    const std::string account = o.account;
    s.access_token = [tokens, account] {
        constexpr std::chrono::minutes k_min_valid{2};
        return tokens->provider->token(account, "google", k_min_valid).access_token;
    };
    return drivers::gmail::make_lead_source(s);
}

void add_leads(CLI::App& app, LeadsOptions& o) {
    add_common(app, o.common, TokenFlags::none);
    add_insecure_flags(app, o.common, {Endpoint::api, Endpoint::oauth});
    app.add_option("--source", o.source, "Where the leads come from: callback24, facebook, gmail")
        ->check(CLI::IsMember({"callback24", "facebook", "gmail"}));
    app.add_option("--api-url", o.api_url,
                   "The source's API (defaults: https://panel.callback24.io, "
                   "https://graph.facebook.com/v21.0, https://gmail.googleapis.com)");
    app.add_option("--token-env", o.token_env,
                   "Environment variable holding the source's API token (Callback24 API key, "
                   "Facebook page token)");
    app.add_option("--token-file", o.token_file, "File holding the source's API token");
    app.add_option("--service", o.services,
                   "callback24: the services (service_name) whose calls are leads, comma "
                   "separated");
    app.add_option("--form", o.forms, "facebook: the Lead Ads form ids, comma separated");
    app.add_option("--account", o.account, "gmail: the OAuth account (crmsync accounts)");
    app.add_option("--template", o.template_file,
                   "gmail: JSON file saying which mails are leads and how to read them");
    app.add_option("--google-token-url", o.google_token_url,
                   "gmail: Google's OAuth token endpoint (tests)");
    app.add_option("--pipedrive-url", o.pipedrive_url,
                   "Pipedrive API (default https://api.pipedrive.com)");
    app.add_option("--pipedrive-token-env", o.pipedrive_token_env,
                   "Environment variable holding the Pipedrive API token");
    app.add_option("--pipedrive-token-file", o.pipedrive_token_file,
                   "File holding the Pipedrive API token");
    app.add_option("--pipedrive-in-flight", o.pipedrive_in_flight,
                   "Leads worked at the same time (leads of one contact always one after the "
                   "other)")
        ->check(CLI::Range(1, 16))
        ->capture_default_str();
    app.add_option("--state", o.state_path,
                   "State file: checkpoints and the lead ledger (default "
                   "$XDG_STATE_HOME/crmsync/state.db)");
    app.add_option("--since", o.since,
                   "Read leads from this UTC date/time (overrides the "
                   "checkpoint)");
    app.add_option("--lookback", o.lookback, "Overlap with the previous run")
        ->capture_default_str();
    app.add_flag("--dry-run", o.dry_run,
                 "Print the leads that would be created; write nothing (no Pipedrive, no state)");
}

std::unique_ptr<pipeline::Source> lead_source(const LeadsOptions& o) {
    const auto resolved = resolve(o);
    if (o.source == "facebook") {
        return facebook_source(o);
    }
    if (o.source == "gmail") {
        return gmail_source(o);
    }
    return callback24_source(o, resolved);
}

std::string lead_source_description(const LeadsOptions& o) { return resolve(o).description; }

PipedriveAccess pipedrive_access(const LeadsOptions& o) {
    const auto resolved = resolve(o);
    return {resolved.sink.client.base_url, pipedrive_token(o), resolved.sink.client.verify_tls};
}

int run_leads(const LeadsOptions& o) {
    auto resolved = resolve(o);
    auto source = lead_source(o);
    if (!o.dry_run) {
        resolved.sink.client.token = pipedrive_token(o);
    }
    auto common = o.common;
    if (o.dry_run) {
        // A dry run records nothing, not even an error episode.
        common.notify_smtp.clear();
        common.notify_url.clear();
    }
    const std::string notify_job = "leads from " + resolved.description + " into Pipedrive";
    const auto settings = job_settings(common, "leads", resolved.job, "leads-" + o.source,
                                       notify_job, resolved.state_path);
    return pipeline::run_job(settings, [&](pipeline::JobRun& run) {
        log::info("crmsync {} leads from {} into {}", CRMSYNC_VERSION, resolved.description,
                  util::redact_url(resolved.sink.client.base_url));
        std::unique_ptr<state::StateStore> store;
        if (!o.dry_run || std::filesystem::exists(resolved.state_path)) {
            store = std::make_unique<state::StateStore>(resolved.state_path);
        }
        drivers::pipedrive::LeadsSink sink(std::move(store), resolved.job, resolved.sink,
                                           run.summary());
        run.require_lock(sink.lock(), notify_job);
        const auto transform = [](const pipeline::Page& page, pipeline::Emitter& out,
                                  pipeline::RunSummary&) {
            const std::string window = page.context.is_object() &&
                                               page.context.contains("window") &&
                                               page.context["window"].is_string()
                                           ? page.context["window"].get<std::string>()
                                           : std::string();
            for (const auto& record : page.records) {
                drivers::leads::transform_lead(record, window, out);
            }
        };
        pipeline::RunnerOptions runner;
        runner.label = "leads";
        runner.deadline = resolved.sink.client.deadline;
        pipeline::sync_and_finish(run, sink, [&] {
            return pipeline::Runner(*source, transform, sink, run.summary(), runner).run();
        });
    });
}

} // namespace crmsync::cli
