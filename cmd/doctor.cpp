#include "cmd/doctor.hpp"

#include "cmd/bulk_history.hpp"
#include "cmd/callcenter.hpp"
#include "cmd/contacts_sync.hpp"
#include "cmd/db_sync.hpp"
#include "cmd/leads.hpp"
#include "cmd/refresh_tokens.hpp"
#include "cmd/targets.hpp"
#include "cmd/webhook.hpp"
#include "lib/core/error.hpp"
#include "lib/http/http_client.hpp"
#include "lib/pipeline/source.hpp"
#include "lib/sql/table.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

namespace crmsync::cli {
namespace {

using Verdict = DoctorCheck::Verdict;
namespace fs = std::filesystem;

constexpr std::chrono::seconds k_max_clock_skew{60};
constexpr std::chrono::milliseconds k_probe_timeout{15'000};

DoctorCheck failed(std::string what, std::string detail, std::string hint) {
    return {std::move(what), Verdict::failed, std::move(detail), std::move(hint)};
}

std::string octal_mode(mode_t mode) { return fmt::format("{:04o}", mode & 07777); }

bool is_http_url(const std::string& url) {
    return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

// One GET without retries: doctor reports what the service answers now.
struct Probe {
    bool answered = false;
    http::HttpResponse response;
    std::string failure;
};

Probe probe(http::HttpRequest request, bool verify_tls) {
    http::HttpClientOptions options;
    options.verify_tls = verify_tls;
    http::HttpClient client(options);
    request.timeout = k_probe_timeout;
    Probe p;
    http::TransportFailure failure;
    p.answered = client.perform(request, p.response, failure);
    p.failure = failure.message;
    return p;
}

Probe probe(const std::string& url, std::vector<std::pair<std::string, std::string>> headers,
            bool verify_tls) {
    http::HttpRequest request;
    request.url = url;
    request.headers = std::move(headers);
    return probe(std::move(request), verify_tls);
}

DoctorCheck clock_of(const Probe& p, const std::string& server);

// What an API answered to a probe: ok on 2xx, else the refusal with a hint. `service` names
// it ("the Bitrix24 portal"), `where` is printable (no secret), `refused_hint` says how to get
// credentials that work.
std::vector<DoctorCheck> api_checks(const Probe& p, const std::string& service,
                                    const std::string& where, const std::string& refused_hint,
                                    const std::string& name = "api") {
    if (!p.answered) {
        return {failed(name, "cannot reach " + service + " at " + where + ": " + p.failure,
                       "check the URL, DNS, the proxy and the firewall")};
    }
    std::vector<DoctorCheck> checks;
    const long status = p.response.status;
    if (status >= 200 && status < 300) {
        checks.push_back({name, Verdict::ok,
                          service + " answers at " + where + " and accepts the credentials", ""});
    } else if (status == 401 || status == 403) {
        checks.push_back(
            failed(name, fmt::format("{} refuses the credentials (HTTP {})", service, status),
                   refused_hint));
    } else if (status == 404) {
        checks.push_back(failed(name,
                                fmt::format("{} has no such path at {} (HTTP 404)", service, where),
                                "check the URL"));
    } else {
        checks.push_back(failed(name, fmt::format("{} answers HTTP {}", service, status),
                                "the service may be down or overloaded; try again later"));
    }
    checks.push_back(clock_of(p, where));
    return checks;
}

// The Dialfire campaign API: reachable, the token accepted for the campaign, and its clock.
std::vector<DoctorCheck> check_dialfire(const CommonOptions& common, const std::string& api_url,
                                        const std::string& campaign) {
    std::string token;
    try {
        token = resolve_token(common);
    } catch (const Error& e) {
        return {failed("api", e.describe(), e.hint())};
    }
    const std::string url =
        api_url + "/api/campaigns/" + util::percent_encode(campaign) + "/fields/list";
    const auto p = probe(url, {{"Authorization", "Bearer " + token}},
                         !(common.insecure || common.insecure_api));
    if (!p.answered) {
        return {failed("api", "cannot reach " + api_url + ": " + p.failure,
                       "check --api-url, DNS, the proxy and the firewall")};
    }
    std::vector<DoctorCheck> checks;
    const long status = p.response.status;
    if (status >= 200 && status < 300) {
        checks.push_back(
            {"api", Verdict::ok,
             "campaign " + campaign + " answers at " + api_url + " and accepts the token", ""});
    } else if (status == 401 || status == 403) {
        checks.push_back(failed(
            "api", fmt::format("the token is refused for campaign {} (HTTP {})", campaign, status),
            "use the campaign's Sync Client token (campaign settings, "
            "connectors); it changes when the connector is re-activated"));
    } else if (status == 404) {
        checks.push_back(failed("api", "campaign " + campaign + " not found at " + api_url,
                                "check --campaign and --api-url"));
    } else {
        checks.push_back(failed("api", fmt::format("{} answers HTTP {}", api_url, status),
                                "the service may be down; try again later"));
    }
    checks.push_back(clock_of(p, api_url));
    return checks;
}

DoctorCheck clock_of(const Probe& p, const std::string& server) {
    const auto* date = p.response.header("date");
    return date ? check_clock(*date, server)
                : DoctorCheck{"clock", Verdict::skipped,
                              server + " sent no Date header to compare with", ""};
}

// The Bitrix24 portal of bulk-history: its inbound webhook URL read as a run reads it.
std::vector<DoctorCheck> check_bitrix24(const BulkHistoryOptions& o) {
    drivers::bitrix24::SyncOptions sync;
    try {
        sync = resolve_bulk_history(o);
    } catch (const Error& e) {
        return {failed("api", e.describe(), e.hint())};
    }
    return api_checks(
        probe(drivers::bitrix24::probe_request(sync.api.webhook), sync.api.verify_tls),
        "the Bitrix24 portal", sync.api.webhook.host,
        "make a new inbound webhook with the crm scope (Developer resources, "
        "Other, Inbound webhook) and give its URL in " +
            sync.api.source);
}

// The call-center API with the credentials a run would send.
std::vector<DoctorCheck> check_callcenter(const CallcenterOptions& o) {
    drivers::callcenter::SyncOptions sync;
    try {
        sync = resolve_callcenter(o);
        sync.secret = read_callcenter_secret(o);
    } catch (const Error& e) {
        return {failed("api", e.describe(), e.hint())};
    }
    return api_checks(probe(drivers::callcenter::probe_request(sync), sync.verify_tls),
                      "the call-center API", util::redact_url(sync.base_url),
                      "check --auth, --user and the secret for call center " + o.call_center);
}

// The lead source of `leads`, asked for its first page of the last ten minutes with the
// run's own credentials and code (a read; nothing is written anywhere).
DoctorCheck check_lead_source(LeadsOptions o) {
    constexpr std::chrono::minutes k_window{10};
    o.since = util::format_iso8601(std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now() - k_window));
    o.lookback = "0s";
    o.common.max_runtime = "30s"; // a probe, not a run: retries end within this
    std::string description = o.source;
    try {
        description = lead_source_description(o);
        auto source = lead_source(o);
        source->open(std::nullopt);
        const auto page = source->next_page();
        return {"source", Verdict::ok,
                description + " answers with the run's credentials" +
                    (page ? fmt::format(" ({} lead(s) in the last {} minutes on the first page)",
                                        page->records.size(), k_window.count())
                          : ""),
                ""};
    } catch (const Error& e) {
        return failed("source", description + ": " + e.describe(), e.hint());
    }
}

// Pipedrive with the token a run would send: one read of the leads list.
std::vector<DoctorCheck> check_pipedrive(const LeadsOptions& o) {
    PipedriveAccess access;
    try {
        access = pipedrive_access(o);
    } catch (const Error& e) {
        return {failed("pipedrive", e.describe(), e.hint())};
    }
    return api_checks(probe(access.base_url + "/api/v1/leads?limit=1",
                            {{"x-api-token", access.token}, {"Accept", "application/json"}},
                            access.verify_tls),
                      "Pipedrive", util::redact_url(access.base_url),
                      "use the API token of the Pipedrive user the leads are created as "
                      "(Personal preferences, API) in --pipedrive-token-env or "
                      "--pipedrive-token-file",
                      "pipedrive");
}

// contacts-sync's credentials: the Zoho account against the Creator report, then each Google
// account of the run, one read each.
std::vector<DoctorCheck> check_contacts_sync(const ContactsSyncOptions& o) {
    std::vector<ContactsSyncProbe> probes;
    try {
        probes = probe_contacts_sync(o);
    } catch (const Error& e) {
        return {failed("accounts", e.describe(), e.hint())};
    }
    std::vector<DoctorCheck> checks;
    for (const auto& p : probes) {
        if (p.error) {
            checks.push_back(failed(p.service, p.subject + ": " + p.error->describe(),
                                    p.error->hint().empty()
                                        ? "see crmsync accounts list; re-authorize with "
                                          "crmsync accounts add"
                                        : p.error->hint()));
        } else {
            checks.push_back(
                {p.service, Verdict::ok, p.subject + " answers with the run's credentials", ""});
        }
    }
    const bool any_google =
        std::any_of(probes.begin(), probes.end(),
                    [](const ContactsSyncProbe& p) { return p.service == "google"; });
    if (!any_google) {
        checks.push_back(failed("google", "no active Google account to sync",
                                "add one with crmsync accounts add, or name them with --account"));
    }
    return checks;
}

DoctorCheck check_target_or_receiver(const std::string& url) {
    if (is_http_url(url)) {
        return {"target", Verdict::skipped,
                "a web service (" + util::redact(url) + "): doctor never posts to it", ""};
    }
    return check_target(url);
}

void add_command(CLI::App& doctor, const char* name, const char* description,
                 std::shared_ptr<std::function<int()>> chosen,
                 const std::function<std::function<int()>(CLI::App&)>& setup) {
    auto* sub = doctor.add_subcommand(name, description);
    auto run_checks = setup(*sub);
    sub->callback([chosen, run_checks] { *chosen = run_checks; });
}

} // namespace

DoctorCheck check_target(const std::string& url) {
    std::unique_ptr<sql::Database> db;
    try {
        db = open_target(parse_target(url));
    } catch (const Error& e) {
        return failed("target", e.describe(),
                      e.hint().empty() ? "check --url, the server and the password" : e.hint());
    }
    const auto& dialect = db->dialect();
    sql::Table scratch;
    scratch.name = fmt::format("crmsync_doctor_{}", ::getpid());
    scratch.columns = {{"id", sql::ColumnType::key, false, false}};
    scratch.primary_key = "id";
    try {
        db->execute(dialect.create_table(scratch));
    } catch (const Error& e) {
        return failed("target",
                      db->description() +
                          " connects, but a table cannot be created: " + e.describe(),
                      "grant the user CREATE on the database (crmsync creates its tables)");
    }
    DoctorCheck check{"target", Verdict::ok,
                      db->description() + " connects; the user may create tables and add columns",
                      ""};
    try {
        db->execute(dialect.add_column(scratch, {"probe", sql::ColumnType::text, true, false}));
    } catch (const Error& e) {
        check = failed("target", db->description() + ": a column cannot be added: " + e.describe(),
                       "grant the user ALTER on its tables (new custom fields become columns)");
    }
    try {
        db->execute("DROP TABLE " + dialect.quote(scratch.name));
    } catch (const Error& e) {
        check.verdict = Verdict::warning;
        check.detail += "; the scratch table " + scratch.name + " could not be dropped";
        check.hint = "drop it by hand; grant the user DROP on its own tables";
    }
    return check;
}

DoctorCheck check_log_dir(const CommonOptions& options, const std::string& job) {
    std::string path;
    try {
        path = log_file_path(options, job, "doctor");
    } catch (const Error& e) {
        return failed("log dir", e.describe(), e.hint());
    }
    const auto dir = fs::path(path).parent_path();
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        return failed("log dir", dir.string() + " cannot be read", "pass --log-dir DIR");
    }
    if ((st.st_mode & 0007) != 0 || (st.st_mode & 0020) != 0) {
        return {"log dir", Verdict::warning,
                dir.string() + " is open to other users (mode " + octal_mode(st.st_mode) + ")",
                "logs name campaigns, tables and errors: chmod 0700 (or 0750 for a log group) " +
                    dir.string()};
    }
    return {"log dir", Verdict::ok, dir.string() + " is writable and private", ""};
}

DoctorCheck check_state_file(const std::string& path) {
    try {
        state::StateStore store(path);
    } catch (const Error& e) {
        return failed("state file", e.describe(),
                      "pass --state FILE in a directory the job's user may write");
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return failed("state file", path + " cannot be read", "check the path and its directory");
    }
    if ((st.st_mode & 0077) != 0) {
        return {"state file", Verdict::warning,
                path + " is readable by other users (mode " + octal_mode(st.st_mode) + ")",
                "it holds OAuth secrets and outbox payloads: chmod 0600 " + path};
    }
    return {"state file", Verdict::ok, path + " is writable and private", ""};
}

DoctorCheck check_tls(const CommonOptions& options) {
    std::vector<std::string> unverified;
    const std::pair<bool, const char*> endpoints[] = {
        {options.insecure_api, "the API"},
        {options.insecure_webhook, "the webhook receiver"},
        {options.insecure_oauth, "OAuth token endpoints"},
        {options.insecure_notify, "notices"}};
    for (const auto& [off, name] : endpoints) {
        if (off || options.insecure) {
            unverified.emplace_back(name);
        }
    }
    if (!unverified.empty()) {
        return {"tls", Verdict::warning,
                fmt::format("certificates are not verified for {}", fmt::join(unverified, ", ")),
                "drop the --insecure* flags; for a private CA, add it to the system's trust store"};
    }
    return {"tls", Verdict::ok, "TLS certificates are verified", ""};
}

DoctorCheck check_clock(const std::string& date_header, const std::string& server) {
    const auto server_time = util::parse_http_date(date_header);
    if (!server_time) {
        return {"clock", Verdict::skipped, server + " sent an unreadable Date header", ""};
    }
    const auto now =
        std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    const auto skew = std::chrono::duration_cast<std::chrono::seconds>(now - *server_time);
    const auto size = skew < std::chrono::seconds{0} ? -skew : skew;
    // The Date header has whole seconds: a second of difference is no skew.
    if (size > k_max_clock_skew) {
        return {"clock", Verdict::warning,
                fmt::format("this machine's clock is {}s {} {}", size.count(),
                            skew.count() > 0 ? "ahead of" : "behind", server),
                "run an NTP client (systemd-timesyncd, chrony); checkpoints come from the "
                "server, but logs and --since are read on this clock"};
    }
    return {"clock", Verdict::ok, fmt::format("within {}s of {}", size.count() + 1, server), ""};
}

int report_checks(const std::vector<DoctorCheck>& checks) {
    bool any_failed = false;
    for (const auto& c : checks) {
        const char* label = "ok";
        switch (c.verdict) {
        case Verdict::ok:
            break;
        case Verdict::warning:
            label = "warning";
            break;
        case Verdict::failed:
            label = "FAILED";
            any_failed = true;
            break;
        case Verdict::skipped:
            label = "skipped";
            break;
        }
        // Driver messages span lines: keep them under the check they belong to.
        std::string detail = util::redact(c.detail);
        while (!detail.empty() && std::isspace(static_cast<unsigned char>(detail.back()))) {
            detail.pop_back();
        }
        for (std::size_t at = detail.find('\n'); at != std::string::npos;
             at = detail.find('\n', at + 1)) {
            detail.insert(at + 1, 9, ' ');
        }
        std::cout << fmt::format("{:<8} {}: {}\n", label, c.what, detail);
        if (!c.hint.empty()) {
            std::cout << fmt::format("{:<8} hint: {}\n", "", util::redact(c.hint));
        }
    }
    std::cout.flush();
    return any_failed ? 1 : 0;
}

std::function<int()> add_doctor(CLI::App& app) {
    app.require_subcommand(1);
    auto chosen = std::make_shared<std::function<int()>>();

    add_command(app, "db_sync", "What a first db_sync run needs", chosen, [](CLI::App& sub) {
        auto o = std::make_shared<DbSyncOptions>();
        add_db_sync(sub, *o);
        return std::function<int()>([o] {
            std::vector<DoctorCheck> checks{check_tls(o->common),
                                            check_log_dir(o->common, o->campaign)};
            const auto api = check_dialfire(o->common, o->api_url, o->campaign);
            checks.insert(checks.end(), api.begin(), api.end());
            checks.push_back(check_target_or_receiver(o->url));
            if (is_http_url(o->url)) {
                checks.push_back(check_state_file(
                    o->http.state_path.empty() ? state::default_state_path() : o->http.state_path));
            }
            return report_checks(checks);
        });
    });
    add_command(app, "webhook", "What a first webhook run needs", chosen, [](CLI::App& sub) {
        auto o = std::make_shared<WebhookOptions>();
        add_webhook(sub, *o);
        return std::function<int()>([o] {
            std::vector<DoctorCheck> checks{check_tls(o->common),
                                            check_log_dir(o->common, o->campaign)};
            const auto api = check_dialfire(o->common, o->api_url, o->campaign);
            checks.insert(checks.end(), api.begin(), api.end());
            checks.push_back(check_target_or_receiver(o->url));
            checks.push_back(check_state_file(o->state_path.empty() ? state::default_state_path()
                                                                    : o->state_path));
            return report_checks(checks);
        });
    });
    add_command(app, "bulk-history", "What a first bulk-history run needs", chosen,
                [](CLI::App& sub) {
                    auto o = std::make_shared<BulkHistoryOptions>();
                    add_bulk_history(sub, *o);
                    return std::function<int()>([o] {
                        std::vector<DoctorCheck> checks{check_tls(o->common),
                                                        check_log_dir(o->common, "bulk-history")};
                        const auto api = check_bitrix24(*o);
                        checks.insert(checks.end(), api.begin(), api.end());
                        checks.push_back(check_target(o->url));
                        return report_checks(checks);
                    });
                });
    add_command(app, "callcenter", "What a first callcenter run needs", chosen, [](CLI::App& sub) {
        auto o = std::make_shared<CallcenterOptions>();
        add_callcenter(sub, *o);
        return std::function<int()>([o] {
            std::vector<DoctorCheck> checks{check_tls(o->common),
                                            check_log_dir(o->common, "callcenter")};
            const auto api = check_callcenter(*o);
            checks.insert(checks.end(), api.begin(), api.end());
            checks.push_back(check_target_or_receiver(o->url));
            if (is_http_url(o->url)) {
                checks.push_back(check_state_file(
                    o->http.state_path.empty() ? state::default_state_path() : o->http.state_path));
            }
            return report_checks(checks);
        });
    });
    add_command(app, "leads", "What a first leads run needs", chosen, [](CLI::App& sub) {
        auto o = std::make_shared<LeadsOptions>();
        add_leads(sub, *o);
        return std::function<int()>([o] {
            std::vector<DoctorCheck> checks{check_tls(o->common),
                                            check_log_dir(o->common, "leads-" + o->source),
                                            check_lead_source(*o)};
            const auto pipedrive = check_pipedrive(*o);
            checks.insert(checks.end(), pipedrive.begin(), pipedrive.end());
            checks.push_back(check_state_file(o->state_path.empty() ? state::default_state_path()
                                                                    : o->state_path));
            return report_checks(checks);
        });
    });
    add_command(app, "contacts-sync", "What a first contacts-sync run needs", chosen,
                [](CLI::App& sub) {
                    auto o = std::make_shared<ContactsSyncOptions>();
                    add_contacts_sync(sub, *o);
                    return std::function<int()>([o] {
                        const std::string state_path = o->endpoints.state_path.empty()
                                                           ? state::default_state_path()
                                                           : o->endpoints.state_path;
                        std::vector<DoctorCheck> checks{check_tls(o->common),
                                                        check_log_dir(o->common, "contacts-sync")};
                        // Before the state file check, which creates a missing file.
                        const auto apis = check_contacts_sync(*o);
                        checks.insert(checks.end(), apis.begin(), apis.end());
                        checks.push_back(check_state_file(state_path));
                        return report_checks(checks);
                    });
                });
    add_command(
        app, "refresh-tokens", "What a first refresh-tokens run needs", chosen, [](CLI::App& sub) {
            auto o = std::make_shared<RefreshTokensOptions>();
            add_refresh_tokens(sub, *o);
            return std::function<int()>([o] {
                return report_checks(
                    {check_tls(o->common), check_log_dir(o->common, "refresh-tokens"),
                     check_state_file(o->endpoints.state_path.empty() ? state::default_state_path()
                                                                      : o->endpoints.state_path)});
            });
        });
    return [chosen] { return (*chosen)(); };
}

} // namespace crmsync::cli
