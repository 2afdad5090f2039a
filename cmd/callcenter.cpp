#include "cmd/callcenter.hpp"

#include "drivers/callcenter/sync.hpp"
#include "drivers/callcenter/transform.hpp"
#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace crmsync::cli {
namespace {

namespace cc = drivers::callcenter;

std::vector<std::string> parse_streams(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string item;
    const auto& known = cc::all_streams();
    while (std::getline(in, item, ',')) {
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (item.empty()) {
            continue;
        }
        if (std::find(known.begin(), known.end(), item) == known.end()) {
            throw Error(ErrorKind::usage, "unknown stream '" + item + "' in --streams",
                        "choose from contacts,contact_groups,activities,agents,roles,"
                        "sip_accounts");
        }
        out.push_back(item);
    }
    return out;
}

} // namespace

// Everything is checked here, before any network or database I/O.
cc::SyncOptions resolve_callcenter(const CallcenterOptions& o) {
    cc::SyncOptions s;
    if (o.call_center.empty()) {
        throw Error(ErrorKind::usage, "--callcenter is required", "e.g. --callcenter abc123");
    }
    if (o.api_url.empty()) {
        throw Error(ErrorKind::usage, "--api-url is required",
                    "e.g. --api-url https://host/api/v1");
    }
    check_table_prefix(o.table_prefix, "cc_");
    util::parse_http_url(o.api_url);
    require_tls_for_credentials(o.api_url, "the API URL, which receives the credentials",
                                "--api-url");
    s.base_url = o.api_url;
    while (!s.base_url.empty() && s.base_url.back() == '/') {
        s.base_url.pop_back();
    }
    s.call_center = o.call_center;
    s.auth = o.auth == "apikey"   ? cc::AuthMode::apikey
             : o.auth == "bearer" ? cc::AuthMode::bearer
                                  : cc::AuthMode::basic;
    s.user = o.user;
    if (s.user.empty()) {
        if (const char* env = std::getenv("CRMSYNC_CALLCENTER_USER"); env != nullptr) {
            s.user = env;
        }
    }
    if (s.auth == cc::AuthMode::basic && s.user.empty()) {
        throw Error(ErrorKind::usage, "--auth basic needs a user",
                    "use --user NAME or set CRMSYNC_CALLCENTER_USER");
    }
    s.streams = parse_streams(o.streams);
    s.table_prefix = o.table_prefix;
    s.since = parse_time_option(o.since, "--since");
    s.lookback = parse_duration_option(o.lookback, "--lookback");
    s.full_refresh = o.full_refresh;
    s.page_size = o.page_size;
    s.verify_tls = verify_tls(o.common, Endpoint::api);
    s.deadline = run_deadline(o.common);
    s.retry = retry_policy(o.common);
    return s;
}

std::string read_callcenter_secret(const CallcenterOptions& o) {
    std::string secret;
    if (!o.secret_env.empty()) {
        const char* value = std::getenv(o.secret_env.c_str());
        if (value == nullptr || *value == '\0') {
            throw Error(ErrorKind::config, "environment variable " + o.secret_env + " is empty",
                        "export the call center's password, API key or token in it");
        }
        secret = value;
    } else if (!o.secret_file.empty()) {
        std::ifstream in(o.secret_file, std::ios::binary);
        if (!in) {
            throw Error(ErrorKind::config, "cannot read the secret file " + o.secret_file,
                        "check the path and its permissions");
        }
        std::ostringstream text;
        text << in.rdbuf();
        secret = text.str();
        while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) {
            secret.pop_back();
        }
    } else if (const char* env = std::getenv("CRMSYNC_CALLCENTER_SECRET");
               env != nullptr && *env != '\0') {
        secret = env;
    }
    if (secret.empty()) {
        throw Error(ErrorKind::config, "no call-center secret given",
                    "set CRMSYNC_CALLCENTER_SECRET, or use --secret-env VAR or --secret-file PATH");
    }
    util::register_secret(secret);
    return secret;
}

void add_callcenter(CLI::App& app, CallcenterOptions& o) {
    add_common(app, o.common, TokenFlags::none);
    add_insecure_flags(app, o.common, {Endpoint::api, Endpoint::webhook});
    app.add_option("--api-url", o.api_url, "Base URL of the call-center API (https://host/api/v1)")
        ->envname("CRMSYNC_CALLCENTER_API_URL");
    app.add_option("--callcenter", o.call_center, "Call center ID");
    app.add_option("--url", o.url,
                   "Target: sqlite://FILE, postgres://, mysql://, sqlserver://, or https:// (one "
                   "POST per changed row, through the durable outbox)")
        ->capture_default_str();
    app.add_option("--auth", o.auth, "basic (default), apikey (x-apikey header) or bearer")
        ->check(CLI::IsMember({"basic", "apikey", "bearer"}))
        ->capture_default_str();
    app.add_option("--user", o.user, "User for --auth basic (or CRMSYNC_CALLCENTER_USER)");
    app.add_option("--secret-env", o.secret_env,
                   "Environment variable holding the password, API key or token (default "
                   "CRMSYNC_CALLCENTER_SECRET)");
    app.add_option("--secret-file", o.secret_file, "File holding the password, API key or token");
    app.add_option("--streams", o.streams,
                   "Comma separated: contacts,contact_groups,activities,agents,roles,sip_accounts "
                   "(default all)");
    app.add_option("--table-prefix", o.table_prefix, "Prefix of the table names")
        ->capture_default_str();
    app.add_option("--since", o.since, "A first run starts at this UTC date/time");
    app.add_option("--lookback", o.lookback, "Overlap with the previous run")
        ->capture_default_str();
    app.add_flag("--full-refresh", o.full_refresh, "Read every stream from the start again");
    app.add_option("--page-size", o.page_size, "Records per request")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    add_http_target_options(app, o.http);
}

int run_callcenter(const CallcenterOptions& o) {
    auto sync = resolve_callcenter(o);
    const SinkChoice target(o.url, o.common, o.http);
    sync.secret = read_callcenter_secret(o);
    const std::string notify_job = "call center " + o.call_center + " into " +
                                   util::redact_url(o.url) + " (tables " + o.table_prefix + "*)";
    const auto settings = job_settings(o.common, "callcenter", o.call_center, o.call_center,
                                       notify_job, target.state_path());
    return pipeline::run_job(settings, [&](pipeline::JobRun& run) {
        log::info("crmsync {} callcenter {} into {}", CRMSYNC_VERSION, o.call_center,
                  util::redact_url(o.url));
        auto sink = target.open(cc::job_key(sync), run.summary(), sync.deadline);
        run.require_lock(sink->lock(),
                         "call center " + o.call_center + " into " + sink->description());
        pipeline::sync_and_finish(run, *sink,
                                  [&] { return cc::run_sync(sync, *sink, run.summary()); });
    });
}

} // namespace crmsync::cli
