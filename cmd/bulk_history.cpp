#include "cmd/bulk_history.hpp"

#include "cmd/targets.hpp"
#include "drivers/bitrix24/sync.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/util/redact.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>

namespace crmsync::cli {
namespace {

constexpr const char* k_default_url_env = "CRMSYNC_PORTAL_URL";

std::string upper(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return text;
}

// The webhook URL from --portal-url-env, --portal-url-file or CRMSYNC_PORTAL_URL, registered
// as a secret before anything can print it. `source` names where it came from.
std::string read_portal_url(const BulkHistoryOptions& o, std::string& source) {
    if (!o.portal_url_env.empty() && !o.portal_url_file.empty()) {
        throw Error(ErrorKind::usage, "--portal-url-env and --portal-url-file both given",
                    "give one of them");
    }
    std::string url;
    if (!o.portal_url_file.empty()) {
        source = "file " + o.portal_url_file;
        std::ifstream in(o.portal_url_file);
        if (!in || !std::getline(in, url)) {
            throw Error(ErrorKind::config, "cannot read the portal URL from " + o.portal_url_file,
                        "the file must hold the inbound webhook URL on its first line");
        }
    } else {
        const std::string name = o.portal_url_env.empty() ? k_default_url_env : o.portal_url_env;
        source = "$" + name;
        const char* value = std::getenv(name.c_str());
        if (value == nullptr || *value == '\0') {
            if (o.portal_url_env.empty()) {
                throw Error(ErrorKind::config, "no portal URL given",
                            "pass --portal-url-env VAR (the variable holding the portal's inbound "
                            "webhook URL) or --portal-url-file PATH");
            }
            throw Error(ErrorKind::config, "environment variable " + name + " is empty",
                        "export the portal's inbound webhook URL "
                        "(https://PORTAL/rest/USER_ID/CODE/) in it");
        }
        url = value;
    }
    while (!url.empty() && (url.back() == '\r' || url.back() == '\n' || url.back() == ' ')) {
        url.pop_back();
    }
    if (url.empty()) {
        throw Error(ErrorKind::config, "the portal URL in " + source + " is empty",
                    "set it to the portal's inbound webhook URL");
    }
    util::register_secret(url);
    return url;
}

} // namespace

// Everything is checked here, before any network or database I/O.
drivers::bitrix24::SyncOptions resolve_bulk_history(const BulkHistoryOptions& o) {
    drivers::bitrix24::SyncOptions s;
    if (o.env.empty()) {
        throw Error(ErrorKind::usage, "no --env given",
                    "pass --env PROD, TEST or DEV: the tables are CRM_STAGE_LIST_<ENV> and "
                    "CRM_STAGE_HISTORY_<ENV>");
    }
    s.env = upper(o.env);
    if (s.env != "PROD" && s.env != "TEST" && s.env != "DEV") {
        throw Error(ErrorKind::usage, "--env '" + o.env + "' is not PROD, TEST or DEV",
                    "pass --env PROD, TEST or DEV");
    }
    check_table_prefix(o.table_prefix, "b24_");
    s.table_prefix = o.table_prefix;
    if (o.category >= 0) {
        s.category = o.category;
    }
    s.api.rate = o.rate;
    s.pages_per_request = static_cast<std::size_t>(o.pages_per_request);
    s.api.verify_tls = verify_tls(o.common, Endpoint::api);
    const std::string url = read_portal_url(o, s.api.source);
    require_tls_for_credentials(url, "the portal URL, which holds the webhook code",
                                "the portal URL");
    s.api.webhook = drivers::bitrix24::parse_webhook_url(url, s.api.source);
    util::register_secret(s.api.webhook.code);
    util::register_secret(s.api.webhook.base);
    s.since = parse_time_option(o.since, "--since");
    s.deadline = run_deadline(o.common);
    s.retry = retry_policy(o.common);
    return s;
}

void add_bulk_history(CLI::App& app, BulkHistoryOptions& o) {
    add_common(app, o.common, TokenFlags::none);
    add_insecure_flags(app, o.common, {Endpoint::api});
    app.add_option("--portal-url-env", o.portal_url_env,
                   "Environment variable holding the portal's inbound webhook URL "
                   "(https://PORTAL/rest/USER_ID/CODE/; default CRMSYNC_PORTAL_URL)");
    app.add_option("--portal-url-file", o.portal_url_file,
                   "File holding the inbound webhook URL on its first line");
    app.add_option("--url", o.url,
                   "Target: sqlite://FILE, postgres://, mysql://, "
                   "sqlserver://USER:PW@HOST:1433/[INSTANCE/]DB")
        ->capture_default_str();
    app.add_option(
        "--env", o.env,
        "PROD, TEST or DEV: the tables are CRM_STAGE_LIST_<ENV>, CRM_STAGE_HISTORY_<ENV>");
    app.add_option("--category", o.category,
                   "Only this deal pipeline (CATEGORY_ID; 0 = the default one); default: all")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--rate", o.rate, "API requests per second (0 = no limit)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--pages-per-request", o.pages_per_request,
                   "History pages of 50 rows chained in one `batch` API request (1 = one page "
                   "per request, without batch)")
        ->check(CLI::Range(1, 50))
        ->capture_default_str();
    app.add_option("--since", o.since,
                   "Only history created at or after this UTC date/time, instead of after the "
                   "checkpoint (sets a checkpoint only where there is none)");
    app.add_option("--table-prefix", o.table_prefix, "Put this in front of both table names");
}

int run_bulk_history(const BulkHistoryOptions& o) {
    auto sync = resolve_bulk_history(o);
    const auto target = parse_target(o.url);
    std::string job = sync.api.webhook.host + "/" + sync.env +
                      (sync.category ? "/C" + std::to_string(*sync.category) : "");
    const std::string notify_job =
        job + " into " + util::redact_url(o.url) +
        (o.table_prefix.empty() ? "" : " (prefix " + o.table_prefix + ")");
    const auto settings = job_settings(o.common, "bulk-history", job,
                                       sync.api.webhook.host + "_" + sync.env, notify_job, "");
    return pipeline::run_job(settings, [&](pipeline::JobRun& run) {
        log::info("crmsync {} bulk-history {} into {}", CRMSYNC_VERSION, job,
                  util::redact_url(o.url));
        pipeline::TargetWriter sink(open_target(target), drivers::bitrix24::job_key(sync),
                                    run.summary());
        run.require_lock(sink.lock(), "bulk-history " + job + " into " + sink.description());
        pipeline::sync_and_finish(run, sink, [&] {
            return drivers::bitrix24::run_sync(sync, sink.database(), sink, run.summary());
        });
    });
}

} // namespace crmsync::cli
