#include "cmd/status.hpp"

#include "cmd/targets.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/sql/schema_manager.hpp"
#include "lib/state/accounts.hpp"
#include "lib/state/contacts_store.hpp"
#include "lib/state/episodes.hpp"
#include "lib/state/leads_ledger.hpp"
#include "lib/state/outbox.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <map>

namespace crmsync::cli {
namespace {

// A job key as it may be shown: a URL inside it (a webhook job's receiver, which often
// carries a token) in its redacted form. The stored key stays as it is (see webhook_job_key).
std::string shown_job(const std::string& job) {
    const auto scheme_end = job.find("://");
    if (scheme_end == std::string::npos) {
        return job;
    }
    auto start = scheme_end;
    while (start > 0 && std::isalpha(static_cast<unsigned char>(job[start - 1]))) {
        --start;
    }
    return job.substr(0, start) + util::redact_http_url(job.substr(start));
}

nlohmann::json target_jobs(const std::string& url) {
    auto db = open_target(parse_target(url));
    sql::SchemaManager schema(*db);
    nlohmann::json jobs = nlohmann::json::array();
    if (schema.existing_columns("crmsync_state").empty()) {
        return jobs;
    }
    const auto& d = db->dialect();
    std::map<std::string, long> rejects;
    if (!schema.existing_columns("crmsync_rejects").empty()) {
        for (const auto& row : db->query(d.reject_counts_query())) {
            rejects[row[0].value_or("")] = std::stol(row[1].value_or("0"));
        }
    }
    for (const auto& row : db->query(d.job_states_query())) {
        const std::string job = row[0].value_or("");
        jobs.push_back({{"job", shown_job(job)},
                        {"checkpoint", row[1].value_or("")},
                        {"progress", row[2].value_or("")},
                        {"updated_at", row[3].value_or("")},
                        {"rejects", rejects[job]}});
    }
    return jobs;
}

nlohmann::json state_jobs(const std::string& path) {
    state::StateStore store(path);
    state::Outbox outbox(store);
    state::LeadsLedger ledger(store);
    const auto lead_jobs = ledger.jobs();
    nlohmann::json jobs = nlohmann::json::array();
    for (const auto& job : store.jobs()) {
        const auto counts = outbox.counts(job);
        nlohmann::json entry = {{"job", shown_job(job)},
                                {"checkpoint", store.checkpoint(job).value_or("")},
                                {"pending", counts.pending},
                                {"dead", counts.dead},
                                {"delivered", counts.delivered},
                                {"oldest_pending", counts.oldest_pending.value_or("")}};
        if (std::find(lead_jobs.begin(), lead_jobs.end(), job) != lead_jobs.end()) {
            nlohmann::json steps = nlohmann::json::object();
            for (const auto& [step, n] : ledger.counts(job)) {
                steps[std::string(state::to_string(step))] = n;
            }
            nlohmann::json parked = nlohmann::json::array();
            for (const auto& lead : ledger.parked(job)) {
                parked.push_back({{"source", lead.source},
                                  {"id", lead.lead_id},
                                  {"answer", lead.last_error},
                                  {"at", lead.updated_at}});
            }
            entry["leads"] = steps;
            entry["parked"] = parked;
        }
        jobs.push_back(std::move(entry));
    }
    return jobs;
}

// The OAuth accounts without their secrets: what monitoring needs to see a token going bad.
nlohmann::json state_accounts(const std::string& path) {
    state::StateStore store(path);
    state::AccountStore accounts(store);
    // contacts-sync's queue per Google account (the seed's pendingConnections).
    const auto queues = state::ContactsStore(store).queue_lengths();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : accounts.list()) {
        const auto queue = queues.find(util::ascii_lower(a.email));
        out.push_back({{"id", a.id},
                       {"provider", a.provider},
                       {"email", a.email},
                       {"owner", a.owner},
                       {"active", a.active},
                       {"status", a.status},
                       {"expires_at", a.expires_at ? util::format_iso8601(*a.expires_at) : ""},
                       {"refreshed_at", a.refreshed_at},
                       {"last_error", a.last_error},
                       {"pending_connections", queue == queues.end() ? 0 : queue->second}});
    }
    return out;
}

// Each job's error episode as the notices keep it: failing since when, how often, why.
nlohmann::json state_episodes(const std::string& path) {
    state::StateStore store(path);
    state::EpisodeTable episodes(store);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : episodes.list()) {
        out.push_back({{"job", shown_job(e.job)},
                       {"command", e.command},
                       {"failing", e.is_error},
                       {"since", e.error_since},
                       {"failures", e.failures},
                       {"last_failure", e.last_failure},
                       {"last_error", e.last_error},
                       {"notice_sent", e.error_sent}});
    }
    return out;
}

std::string or_none(const nlohmann::json& value) {
    const auto text = value.get<std::string>();
    return text.empty() ? "none" : text;
}

} // namespace

void add_status(CLI::App& app, StatusOptions& o) {
    app.add_option("--url", o.url, "Target database holding crmsync_state (db_sync jobs)")
        ->envname("DBSYNC_URL");
    app.add_option("--state", o.state,
                   "State file (webhook jobs); default: the default state file");
    app.add_flag("--json", o.json, "Print JSON instead of text");
}

int run_status(const StatusOptions& o) {
    nlohmann::json out = nlohmann::json::object();
    if (!o.url.empty()) {
        out["target"] = target_jobs(o.url);
    }
    std::string state = o.state;
    if (state.empty() && std::filesystem::exists(state::default_state_path())) {
        state = state::default_state_path();
    }
    if (!state.empty()) {
        out["state"] = state_jobs(state);
        out["accounts"] = state_accounts(state);
        out["episodes"] = state_episodes(state);
    }
    if (o.json) {
        std::cout << out.dump(2) << "\n";
        return k_exit_ok;
    }
    if (out.empty()) {
        std::cout << "nothing to show: pass --url TARGET for db_sync jobs or --state FILE for "
                     "webhook jobs\n";
    }
    for (const auto& j : out.value("target", nlohmann::json::array())) {
        std::cout << fmt::format("{}  checkpoint {}  updated {}  rejects {}  {}\n",
                                 j["job"].get<std::string>(), or_none(j["checkpoint"]),
                                 j["updated_at"].get<std::string>(), j["rejects"].get<long>(),
                                 j["progress"].get<std::string>());
    }
    for (const auto& j : out.value("state", nlohmann::json::array())) {
        std::cout << fmt::format("{}  checkpoint {}  pending {}  dead {}  delivered {}  oldest "
                                 "pending {}\n",
                                 j["job"].get<std::string>(), or_none(j["checkpoint"]),
                                 j["pending"].get<long>(), j["dead"].get<long>(),
                                 j["delivered"].get<long>(), or_none(j["oldest_pending"]));
        if (j.contains("leads")) {
            std::string steps;
            for (const auto& [step, n] : j["leads"].items()) {
                steps += fmt::format("  {} {}", step, n.get<long>());
            }
            std::cout << "  leads:" << steps << "\n";
            for (const auto& p : j["parked"]) {
                std::cout << fmt::format("  parked {}/{} at {}: {}\n",
                                         p["source"].get<std::string>(), p["id"].get<std::string>(),
                                         p["at"].get<std::string>(),
                                         p["answer"].get<std::string>());
            }
        }
    }
    for (const auto& a : out.value("accounts", nlohmann::json::array())) {
        std::cout << fmt::format(
            "account {} {} {}  {}{}  token expires {}  refreshed {}{}{}\n",
            a["id"].get<std::int64_t>(), a["provider"].get<std::string>(),
            a["email"].get<std::string>(), a["status"].get<std::string>(),
            a["active"].get<bool>() ? "" : " (disabled)", or_none(a["expires_at"]),
            or_none(a["refreshed_at"]),
            a["provider"] == "google"
                ? fmt::format("  queued contacts {}", a.value("pending_connections", 0L))
                : std::string(),
            a["last_error"].get<std::string>().empty()
                ? ""
                : "  last error: " + a["last_error"].get<std::string>());
    }
    for (const auto& e : out.value("episodes", nlohmann::json::array())) {
        if (e["failing"].get<bool>()) {
            std::cout << fmt::format("failing {} ({}) since {}, {} failures, last: {}\n",
                                     e["job"].get<std::string>(), e["command"].get<std::string>(),
                                     or_none(e["since"]), e["failures"].get<long>(),
                                     e["last_error"].get<std::string>());
        }
    }
    return k_exit_ok;
}

} // namespace crmsync::cli
