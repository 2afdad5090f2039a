#include "tests/fakes/pipedrive/pipedrive_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

std::string failure_body(const std::string& error, const std::string& info = "") {
    return json{{"success", false},
                {"error", error},
                {"error_info", info},
                {"data", nullptr},
                {"additional_data", nullptr}}
        .dump();
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

long long number_param(const httplib::Request& req, const char* name, long long fallback) {
    if (!req.has_param(name)) {
        return fallback;
    }
    try {
        return std::stoll(req.get_param_value(name));
    } catch (const std::exception&) {
        return -1;
    }
}

std::vector<std::string> values_of(const json& list) {
    std::vector<std::string> out;
    if (!list.is_array()) {
        return out;
    }
    for (const auto& entry : list) {
        if (entry.is_string()) {
            out.push_back(entry.get<std::string>());
        } else if (entry.is_object() && entry.contains("value") && entry["value"].is_string()) {
            out.push_back(entry["value"].get<std::string>());
        }
    }
    return out;
}

// A deterministic UUID-shaped id for the n-th lead.
std::string lead_uuid(std::size_t n) {
    char text[48];
    std::snprintf(text, sizeof text, "adf21080-0e10-11eb-879b-%012zx", n);
    return text;
}

} // namespace

struct PipedriveFake::Impl {
    PipedriveFakeOptions options;
    HttpListener listener;
    FaultQueue<Fault> faults;
    RequestLog<PipedriveRequest> log{200000};
    mutable std::mutex mutex;
    std::map<std::int64_t, json> persons; // by id
    // Lower-cased e-mails and phones -> person ids: exact searches stay fast at bench sizes.
    std::map<std::string, std::set<std::int64_t>> by_email;
    std::map<std::string, std::set<std::int64_t>> by_phone;

    void index(std::int64_t id, const json& person) {
        for (const auto& e : values_of(person["emails"])) {
            by_email[lower(e)].insert(id);
        }
        for (const auto& p : values_of(person["phones"])) {
            by_phone[lower(p)].insert(id);
        }
    }
    std::vector<json> leads;
    std::int64_t next_person = 1;
    std::function<bool(const std::string&, const std::string&, HookPoint)> hook;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::map<long, long> window_use; // window index -> tokens spent
    long throttled = 0;

    json person_json(std::int64_t id, const std::string& name,
                     const std::vector<std::string>& emails,
                     const std::vector<std::string>& phones) const {
        json e = json::array();
        for (std::size_t i = 0; i < emails.size(); ++i) {
            e.push_back({{"value", emails[i]}, {"primary", i == 0}, {"label", "work"}});
        }
        json p = json::array();
        for (std::size_t i = 0; i < phones.size(); ++i) {
            p.push_back({{"value", phones[i]}, {"primary", i == 0}, {"label", "work"}});
        }
        return {{"id", id},        {"name", name},
                {"emails", e},     {"phones", p},
                {"owner_id", 1},   {"org_id", nullptr},
                {"visible_to", 3}, {"add_time", "2026-12-03T10:00:00Z"}};
    }

    bool authorized(const httplib::Request& req) const {
        return req.get_header_value("x-api-token") == options.token ||
               (req.has_param("api_token") && req.get_param_value("api_token") == options.token);
    }

    // Spends one token of the current window; false when it is spent. Fills the headers.
    bool spend(httplib::Response& res) {
        if (options.burst_limit <= 0) {
            return true;
        }
        const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count();
        const long window = static_cast<long>(elapsed / options.window_ms);
        const long long to_reset_ms =
            static_cast<long long>(window + 1) * options.window_ms - elapsed;
        const long reset_s = static_cast<long>((to_reset_ms + 999) / 1000);
        std::lock_guard lock(mutex);
        auto& used = window_use[window];
        const bool ok = used < options.burst_limit;
        if (ok) {
            ++used;
        } else {
            ++throttled;
        }
        if (options.rate_headers) {
            res.set_header("x-ratelimit-limit", std::to_string(options.burst_limit));
            res.set_header("x-ratelimit-remaining", std::to_string(options.burst_limit - used));
            res.set_header("x-ratelimit-reset", std::to_string(reset_s));
        }
        if (!ok) {
            res.set_header("Retry-After", std::to_string(reset_s));
        }
        return ok;
    }

    std::pair<int, std::string> search(const httplib::Request& req) {
        const std::string term = req.has_param("term") ? req.get_param_value("term") : "";
        if (term.empty()) {
            return {400, failure_body("term is required")};
        }
        const std::string fields =
            req.has_param("fields") ? req.get_param_value("fields") : "email,phone,name";
        const bool exact =
            req.has_param("exact_match") && req.get_param_value("exact_match") == "true";
        const long long limit = number_param(req, "limit", 100);
        if (limit < 1 || limit > 500) {
            return {400, failure_body("limit must be between 1 and 500")};
        }
        long long offset = 0;
        if (req.has_param("cursor")) {
            offset = number_param(req, "cursor", 0);
            if (offset < 0) {
                return {400, failure_body("invalid cursor")};
            }
        }
        const auto wanted = lower(term);
        const auto hit = [&](const std::string& value) {
            const auto v = lower(value);
            return exact ? v == wanted : v.find(wanted) != std::string::npos;
        };
        json items = json::array();
        long long matched = 0;
        bool more = false;
        std::lock_guard lock(mutex);
        // Exact matches on e-mail or phone only look at the persons the index names.
        std::set<std::int64_t> candidates;
        const bool indexed = exact && fields.find("name") == std::string::npos;
        if (indexed) {
            for (const auto* idx :
                 {fields.find("email") != std::string::npos ? &by_email : nullptr,
                  fields.find("phone") != std::string::npos ? &by_phone : nullptr}) {
                if (idx != nullptr) {
                    if (const auto it = idx->find(wanted); it != idx->end()) {
                        candidates.insert(it->second.begin(), it->second.end());
                    }
                }
            }
        }
        std::vector<std::int64_t> ids;
        if (indexed) {
            ids.assign(candidates.begin(), candidates.end());
        } else {
            for (const auto& entry : persons) {
                ids.push_back(entry.first);
            }
        }
        for (const auto id : ids) {
            const auto& person = persons.at(id);
            bool found = false;
            if (fields.find("email") != std::string::npos) {
                for (const auto& e : values_of(person["emails"])) {
                    found = found || hit(e);
                }
            }
            if (fields.find("phone") != std::string::npos) {
                for (const auto& p : values_of(person["phones"])) {
                    found = found || hit(p);
                }
            }
            if (fields.find("name") != std::string::npos) {
                found = found || hit(person["name"].get<std::string>());
            }
            if (!found) {
                continue;
            }
            if (matched++ < offset) {
                continue;
            }
            if (static_cast<long long>(items.size()) >= limit) {
                more = true;
                break;
            }
            items.push_back({{"result_score", 1.0},
                             {"item",
                              {{"id", id},
                               {"type", "person"},
                               {"name", person["name"]},
                               {"phones", values_of(person["phones"])},
                               {"emails", values_of(person["emails"])},
                               {"visible_to", 3},
                               {"owner", {{"id", 1}}},
                               {"organization", nullptr},
                               {"custom_fields", json::array()},
                               {"notes", json::array()}}}});
        }
        json next = more ? json(std::to_string(offset + limit)) : json();
        return {200, json{{"success", true},
                          {"data", {{"items", items}}},
                          {"additional_data", {{"next_cursor", next}}}}
                         .dump()};
    }

    std::pair<int, std::string> create_person(const httplib::Request& req) {
        const auto body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
            body["name"].get<std::string>().empty()) {
            return {400,
                    failure_body("Name must be given", "Please check developers.pipedrive.com")};
        }
        std::lock_guard lock(mutex);
        const auto id = next_person++;
        persons[id] = person_json(id, body["name"].get<std::string>(),
                                  values_of(body.value("emails", json())),
                                  values_of(body.value("phones", json())));
        index(id, persons[id]);
        return {200, json{{"success", true}, {"data", persons[id]}}.dump()};
    }

    std::pair<int, std::string> list_leads(const httplib::Request& req) {
        const long long person = number_param(req, "person_id", 0);
        const long long limit = number_param(req, "limit", 100);
        const long long start = number_param(req, "start", 0);
        if (limit < 1 || limit > 500 || start < 0) {
            return {400, failure_body("invalid paging")};
        }
        json data = json::array();
        long long matched = 0;
        bool more = false;
        std::lock_guard lock(mutex);
        for (const auto& lead : leads) {
            if (person != 0 && lead["person_id"] != json(person)) {
                continue;
            }
            if (matched++ < start) {
                continue;
            }
            if (static_cast<long long>(data.size()) >= limit) {
                more = true;
                break;
            }
            data.push_back(lead);
        }
        json pagination = {{"start", start}, {"limit", limit}, {"more_items_in_collection", more}};
        if (more) {
            pagination["next_start"] = start + limit;
        }
        return {200, json{{"success", true},
                          {"data", data},
                          {"additional_data", {{"pagination", pagination}}}}
                         .dump()};
    }

    std::pair<int, std::string> create_lead(const httplib::Request& req) {
        const auto body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("title") || !body["title"].is_string() ||
            body["title"].get<std::string>().empty()) {
            return {400, failure_body("Validation failed: title: Required")};
        }
        if (!body.contains("person_id") || !body["person_id"].is_number_integer()) {
            return {400, failure_body("Validation failed: person_id or organization_id required")};
        }
        std::lock_guard lock(mutex);
        if (persons.count(body["person_id"].get<std::int64_t>()) == 0) {
            return {400, failure_body("Person not found")};
        }
        json lead = {{"id", lead_uuid(leads.size() + 1)},
                     {"title", body["title"]},
                     {"owner_id", 1},
                     {"creator_id", 1},
                     {"label_ids", json::array()},
                     {"person_id", body["person_id"]},
                     {"organization_id", nullptr},
                     {"source_name", "API"},
                     {"origin", "API"},
                     {"is_archived", false},
                     {"was_seen", false},
                     {"value", nullptr},
                     {"add_time", "2026-12-03T10:00:00.000Z"},
                     {"visible_to", "3"}};
        leads.push_back(lead);
        return {201, json{{"success", true}, {"data", lead}}.dump()};
    }

    void serve(const httplib::Request& req, httplib::Response& res,
               std::pair<int, std::string> (Impl::*handler)(const httplib::Request&)) {
        std::function<bool(const std::string&, const std::string&, HookPoint)> h;
        {
            std::lock_guard lock(mutex);
            h = hook;
        }
        const auto record = [&](int status) {
            log.add(req.method + " " + req.path,
                    {req.method, req.path, query_of(req), req.body, status});
        };
        const auto fault = faults.take(req.method, req.path);
        if (fault && fault->kind == FaultKind::reset) {
            record(0);
            AbortableServer::abort_current_connection();
            return;
        }
        if (fault && fault->kind == FaultKind::slow) {
            std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
        }
        if (fault && fault->kind == FaultKind::status) {
            if (fault->retry_after) {
                res.set_header("Retry-After", *fault->retry_after);
            }
            const auto body = fault->status == 429 ? failure_body("Request over limit")
                                                   : failure_body("fault injected by the fake");
            res.status = fault->status;
            res.set_content(body, "application/json");
            record(fault->status);
            return;
        }
        if (fault && fault->kind == FaultKind::malformed) {
            res.status = 200;
            res.set_content("<html><body>502 Bad Gateway</body></html>", "text/html");
            record(200);
            return;
        }
        if (!authorized(req)) {
            res.status = 401;
            res.set_content(json{{"success", false},
                                 {"error", "unauthorized access"},
                                 {"errorCode", 401},
                                 {"error_info", "Please check developers.pipedrive.com"}}
                                .dump(),
                            "application/json");
            record(401);
            return;
        }
        if (!spend(res)) {
            res.status = 429;
            res.set_content(failure_body("Request over limit"), "application/json");
            record(429);
            return;
        }
        if (h && !h(req.method, req.path, HookPoint::before)) {
            record(0);
            AbortableServer::abort_current_connection();
            return;
        }
        auto [status, body] = (this->*handler)(req);
        if (h && !h(req.method, req.path, HookPoint::after)) {
            record(0);
            AbortableServer::abort_current_connection();
            return;
        }
        if (fault && fault->kind == FaultKind::truncate) {
            body.resize(body.size() / 2);
        }
        res.status = status;
        res.set_content(body, "application/json");
        record(status);
    }
};

PipedriveFake::PipedriveFake(PipedriveFakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = std::move(options);
}

PipedriveFake::~PipedriveFake() { stop(); }

int PipedriveFake::start(int port) {
    auto& impl = *m_impl;
    impl.started = std::chrono::steady_clock::now();
    return impl.listener.start(
        port,
        [&impl](AbortableServer& server) {
            const auto route = [&impl](auto handler) {
                return [&impl, handler](const httplib::Request& req, httplib::Response& res) {
                    impl.serve(req, res, handler);
                };
            };
            server.Get("/api/v2/persons/search", route(&Impl::search));
            server.Post("/api/v2/persons", route(&Impl::create_person));
            for (const char* prefix : {"/api/v1", "/v1"}) {
                server.Get(std::string(prefix) + "/leads", route(&Impl::list_leads));
                server.Post(std::string(prefix) + "/leads", route(&Impl::create_lead));
            }
            ControlRoutes control(server,
                                  [](std::string_view m) { return failure_body(std::string(m)); });
            control.faults<Fault>(impl.faults, fault_from_json);
            control.get("/_fake/stats", [&impl](const httplib::Request&) {
                std::lock_guard lock(impl.mutex);
                long requests = 0;
                long full = 0;
                for (const auto& [window, used] : impl.window_use) {
                    requests += used;
                    full += used >= impl.options.burst_limit ? 1 : 0;
                }
                return json{
                    {"persons", impl.persons.size()},
                    {"leads", impl.leads.size()},
                    {"burst_limit", impl.options.burst_limit},
                    {"window_ms", impl.options.window_ms},
                    {"budget_requests", requests},
                    {"throttled", impl.throttled},
                    {"windows_used", impl.window_use.size()},
                    {"full_windows", full},
                    {"first_window", impl.window_use.empty() ? -1 : impl.window_use.begin()->first},
                    {"last_window",
                     impl.window_use.empty() ? -1 : impl.window_use.rbegin()->first}};
            });
        },
        impl.options.worker_threads);
}

void PipedriveFake::stop() { m_impl->listener.stop(); }

int PipedriveFake::port() const { return m_impl->listener.port(); }

std::string PipedriveFake::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::int64_t PipedriveFake::add_person(const std::string& name,
                                       const std::vector<std::string>& emails,
                                       const std::vector<std::string>& phones) {
    std::lock_guard lock(m_impl->mutex);
    const auto id = m_impl->next_person++;
    m_impl->persons[id] = m_impl->person_json(id, name, emails, phones);
    m_impl->index(id, m_impl->persons[id]);
    return id;
}

std::vector<json> PipedriveFake::persons() const {
    std::lock_guard lock(m_impl->mutex);
    std::vector<json> out;
    for (const auto& [id, p] : m_impl->persons) {
        out.push_back(p);
    }
    return out;
}

std::vector<json> PipedriveFake::leads() const {
    std::lock_guard lock(m_impl->mutex);
    return m_impl->leads;
}

std::size_t PipedriveFake::duplicate_persons() const {
    std::lock_guard lock(m_impl->mutex);
    std::set<std::string> seen;
    std::size_t duplicates = 0;
    for (const auto& [id, p] : m_impl->persons) {
        bool duplicate = false;
        std::vector<std::string> keys;
        for (const auto& e : values_of(p["emails"])) {
            keys.push_back("e:" + lower(e));
        }
        for (const auto& ph : values_of(p["phones"])) {
            keys.push_back("p:" + ph);
        }
        for (const auto& key : keys) {
            duplicate = !seen.insert(key).second || duplicate;
        }
        duplicates += duplicate ? 1 : 0;
    }
    return duplicates;
}

std::size_t PipedriveFake::duplicate_leads() const {
    std::lock_guard lock(m_impl->mutex);
    std::set<std::string> seen;
    std::size_t duplicates = 0;
    for (const auto& lead : m_impl->leads) {
        duplicates += seen.insert(lead["title"].get<std::string>()).second ? 0 : 1;
    }
    return duplicates;
}

void PipedriveFake::set_hook(
    std::function<bool(const std::string&, const std::string&, HookPoint)> hook) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->hook = std::move(hook);
}

void PipedriveFake::inject(Fault fault) { m_impl->faults.push(std::move(fault)); }

void PipedriveFake::clear_faults() { m_impl->faults.clear(); }

std::vector<PipedriveRequest> PipedriveFake::requests() const { return m_impl->log.records(); }

std::size_t PipedriveFake::count(const std::string& method, const std::string& path_prefix) const {
    return m_impl->log.count_with_prefix(method + " " + path_prefix);
}

PipedriveBudgetStats PipedriveFake::budget_stats() const {
    std::lock_guard lock(m_impl->mutex);
    PipedriveBudgetStats stats;
    stats.throttled = m_impl->throttled;
    for (const auto& [window, used] : m_impl->window_use) {
        stats.requests += used;
        stats.full_windows += used >= m_impl->options.burst_limit ? 1 : 0;
    }
    stats.windows_used = static_cast<long>(m_impl->window_use.size());
    if (!m_impl->window_use.empty()) {
        stats.first_window = m_impl->window_use.begin()->first;
        stats.last_window = m_impl->window_use.rbegin()->first;
    }
    return stats;
}

} // namespace crmsync::fakes
