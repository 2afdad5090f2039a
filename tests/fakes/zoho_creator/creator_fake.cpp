#include "tests/fakes/zoho_creator/creator_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"
#include "tests/fakes/zoho_creator/creator_criteria.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

constexpr std::size_t k_max_add = 200;
constexpr long long k_default_records = 200;
constexpr long long k_max_records = 1000;
constexpr std::int64_t k_window_ms = 60'000;
// IDs look like Creator's: 19 digits.
constexpr std::uint64_t k_first_id = 3'888'833'000'000'114'027ULL;

const char* const k_path_prefix = "/creator/v2.1/data/";

json coded(int code, const std::string& message) { return {{"code", code}, {"message", message}}; }

json body_for_status(int status, int code) {
    switch (status) {
    case 401:
        return coded(code != 0 ? code : 1030, "Authorization Failure. The access token is either "
                                              "invalid or has expired.");
    case 429:
        return coded(code != 0 ? code : 2955, "You have reached your API call limit for a minute. "
                                              "Please try again after sometime.");
    case 200:
        return coded(code != 0 ? code : 4000, "Account's Developer API limit has been reached.");
    default:
        // The body of a 5xx from Creator is not documented; an assumption.
        return coded(code != 0 ? code : status, "Internal Server Error");
    }
}

// A record key that is not a field the caller may set.
bool system_field(const std::string& key) {
    return key == "ID" || key == "Added_Time" || key == "Modified_Time";
}

std::string hex(const std::string& text) {
    static const char* const digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : text) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::optional<std::string> unhex(const std::string& text) {
    if (text.size() % 2 != 0) {
        return std::nullopt;
    }
    std::string out;
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const auto value = [](char c) -> int {
            if (c >= '0' && c <= '9') {
                return c - '0';
            }
            if (c >= 'a' && c <= 'f') {
                return c - 'a' + 10;
            }
            return -1;
        };
        const int hi = value(text[i]);
        const int lo = value(text[i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out += static_cast<char>(hi * 16 + lo);
    }
    return out;
}

struct Record {
    std::string id;
    json fields = json::object();
    std::int64_t added_ms = 0;
    std::int64_t modified_ms = 0;
};

// An API answer that ends the request early.
struct Answer {
    int status;
    json body;
};

} // namespace

CreatorFault creator_fault_from_json(const json& j) {
    CreatorFault fault;
    assign_fault_action(fault, read_fault_json(j, [&fault](const json& m) {
                            fault.method = m.value("method", std::string());
                            fault.path_prefix = m.value("path_prefix", std::string());
                            fault.code = m.value("code", 0);
                        }));
    return fault;
}

struct CreatorFake::Impl {
    CreatorFakeOptions options;
    HttpListener listener;
    FaultQueue<CreatorFault> faults;
    RequestLog<CreatorRequest> log{100000};
    FakeClock clock;
    ShutdownHook shutdown_hook;
    mutable std::mutex mutex;
    std::map<std::string, Record> records; // by ID; IDs have equal length, so in number order
    std::uint64_t next_id = 0;
    std::set<std::string, std::less<>> tokens;
    TokenValidator validator;
    std::set<std::string, std::less<>> rejected_emails;
    std::map<std::string, std::deque<std::int64_t>, std::less<>> windows; // per token
    std::size_t request_total = 0;
    std::size_t throttled = 0;

    [[nodiscard]] std::string app_path() const {
        return k_path_prefix + options.owner + "/" + options.app;
    }

    [[nodiscard]] json view_locked(const Record& r) const {
        json out = r.fields;
        if (out.contains("Name") && out["Name"].is_object()) {
            auto& name = out["Name"];
            std::string display;
            for (const char* part : {"prefix", "first_name", "last_name", "suffix"}) {
                if (!name.contains(part) || !name[part].is_string()) {
                    name[part] = "";
                }
                const auto text = name[part].get<std::string>();
                if (!text.empty()) {
                    display += (display.empty() ? "" : " ") + text;
                }
            }
            name["zc_display_value"] = display;
        }
        out["ID"] = r.id;
        out["Added_Time"] = format_creator_time(r.added_ms, options.utc_offset_minutes);
        out["Modified_Time"] = format_creator_time(r.modified_ms, options.utc_offset_minutes);
        return out;
    }

    // The field errors of a record's values, empty when it may be stored.
    [[nodiscard]] json field_errors_locked(const json& fields) const {
        json errors = json::object();
        if (fields.contains("Email")) {
            const auto& email = fields["Email"];
            if (!email.is_string()) {
                errors["Email"] = "Enter a valid email address";
            } else {
                const auto text = email.get<std::string>();
                if ((!text.empty() && text.find('@') == std::string::npos) ||
                    rejected_emails.contains(text)) {
                    errors["Email"] = "Enter a valid email address";
                }
            }
        }
        if (fields.contains("Name") && !fields["Name"].is_object()) {
            errors["Name"] = "Invalid value for the Name field";
        }
        return errors;
    }

    Record& insert_locked(const json& fields) {
        Record r;
        r.id = std::to_string(k_first_id + 1009 * next_id++);
        for (const auto& [key, value] : fields.items()) {
            if (!system_field(key)) {
                r.fields[key] = value;
            }
        }
        r.added_ms = r.modified_ms = clock.now_ms();
        auto& stored = records[r.id];
        stored = std::move(r);
        return stored;
    }

    // Only the given fields change; a composite (Name) changes by subfield.
    void update_locked(Record& r, const json& fields) {
        for (const auto& [key, value] : fields.items()) {
            if (system_field(key)) {
                continue;
            }
            if (value.is_object() && r.fields.contains(key) && r.fields[key].is_object()) {
                r.fields[key].update(value);
            } else {
                r.fields[key] = value;
            }
        }
        r.modified_ms = clock.now_ms();
    }

    // Auth and the per-minute limit; throws Answer.
    void admit(const httplib::Request& req) {
        const auto authorization = req.get_header_value("Authorization");
        const std::string prefix = "Zoho-oauthtoken ";
        const auto token =
            authorization.starts_with(prefix) ? authorization.substr(prefix.size()) : "";
        bool valid = false;
        TokenValidator check;
        {
            std::lock_guard lock(mutex);
            valid = !token.empty() && tokens.contains(token);
            check = validator;
        }
        if (!valid && !token.empty() && check) {
            valid = check(token); // may call another fake: not under our lock
        }
        if (!valid) {
            throw Answer{401, body_for_status(401, 0)};
        }
        std::lock_guard lock(mutex);
        ++request_total;
        if (options.per_minute_limit <= 0) {
            return;
        }
        auto& window = windows[token];
        const auto now = clock.now_ms();
        while (!window.empty() && window.front() <= now - k_window_ms) {
            window.pop_front();
        }
        if (static_cast<long long>(window.size()) >= options.per_minute_limit) {
            ++throttled;
            throw Answer{429, body_for_status(429, 0)};
        }
        window.push_back(now);
    }

    // 404s for a path of another owner, app, form or report.
    void check_path(const httplib::Request& req, const std::string& kind) const {
        if (req.matches[1].str() != options.owner) {
            throw Answer{404, coded(1040, "No such account owner")};
        }
        if (req.matches[2].str() != options.app) {
            throw Answer{404, coded(2892, "No application named " + req.matches[2].str() +
                                              " found for this account.")};
        }
        if (kind == "form" && req.matches[3].str() != options.form) {
            throw Answer{404, coded(2893, "No form named " + req.matches[3].str() +
                                              " found in this application.")};
        }
        if (kind == "report" && req.matches[3].str() != options.report) {
            throw Answer{404, coded(2894, "No report named " + req.matches[3].str() +
                                              " found in this application.")};
        }
    }

    static json parse_body(const httplib::Request& req) {
        auto body = json::parse(req.body, nullptr, false);
        if (body.is_discarded() || !body.is_object() || !body.contains("data")) {
            throw Answer{400, coded(3020, "API request's body is either missing or incomplete.")};
        }
        return body;
    }

    json add(const httplib::Request& req, int& status) {
        const auto body = parse_body(req);
        auto data = body["data"];
        if (data.is_object()) {
            data = json::array({data});
        }
        if (!data.is_array() || data.empty()) {
            throw Answer{400, coded(3020, "API request's body is either missing or incomplete.")};
        }
        if (data.size() > k_max_add) {
            return coded(3950, "A maximum of 200 records can be added per request");
        }
        std::vector<std::string> asked;
        const auto& result = body.value("result", json::object());
        if (result.is_object() && result.contains("fields") && result["fields"].is_array()) {
            for (const auto& f : result["fields"]) {
                if (f.is_string()) {
                    asked.push_back(f.get<std::string>());
                }
            }
        }
        json answers = json::array();
        std::lock_guard lock(mutex);
        for (const auto& fields : data) {
            if (!fields.is_object()) {
                answers.push_back({{"code", 3001},
                                   {"error", json::array({"Invalid record"})},
                                   {"message", "Data validation failure"}});
                continue;
            }
            auto errors = field_errors_locked(fields);
            if (!errors.empty()) {
                answers.push_back({{"code", 3001},
                                   {"error", std::move(errors)},
                                   {"message", "Data validation failure"}});
                continue;
            }
            const auto& r = insert_locked(fields);
            json out = json::object();
            for (const auto& f : asked) {
                if (r.fields.contains(f)) {
                    out[f] = r.fields[f];
                }
            }
            out["ID"] = r.id;
            answers.push_back({{"code", 3000},
                               {"data", std::move(out)},
                               {"message", "Data Added Successfully!"}});
        }
        status = 200;
        return {{"result", std::move(answers)}};
    }

    json list(const httplib::Request& req, httplib::Response& res, int& status) {
        const auto criteria_text = req.has_param("criteria") ? req.get_param_value("criteria") : "";
        long long max = k_default_records;
        if (req.has_param("max_records")) {
            try {
                max = std::stoll(req.get_param_value("max_records"));
            } catch (const std::exception&) {
                max = 0;
            }
            if (max < 1 || max > k_max_records) {
                throw Answer{400, coded(1000, "Invalid value for max_records")};
            }
        }
        std::string after;
        if (const auto cursor = req.get_header_value("record_cursor"); !cursor.empty()) {
            // The cursor carries the last ID answered and the criteria it belongs to.
            const auto text = unhex(cursor);
            const auto bar = text ? text->find('|') : std::string::npos;
            if (bar == std::string::npos || text->substr(bar + 1) != criteria_text) {
                throw Answer{400, coded(1000, "Invalid record_cursor")};
            }
            after = text->substr(0, bar);
        }
        std::lock_guard lock(mutex);
        std::optional<Criteria> criteria;
        try {
            criteria.emplace(criteria_text, options.utc_offset_minutes);
        } catch (const CriteriaError& e) {
            throw Answer{400, coded(1000, std::string("Invalid criteria: ") + e.what())};
        }
        const auto time_of = [this](const json& record,
                                    const std::string& field) -> std::optional<std::int64_t> {
            const auto it = records.find(record.value("ID", std::string()));
            if (it == records.end()) {
                return std::nullopt;
            }
            return field == "Added_Time" ? it->second.added_ms : it->second.modified_ms;
        };
        json data = json::array();
        bool more = false;
        for (auto it = after.empty() ? records.begin() : records.upper_bound(after);
             it != records.end(); ++it) {
            auto view = view_locked(it->second);
            if (!criteria->matches(view, time_of)) {
                continue;
            }
            if (static_cast<long long>(data.size()) == max) {
                more = true;
                break;
            }
            data.push_back(std::move(view));
        }
        if (data.empty()) {
            status = options.no_records_status;
            return coded(3100, "No records found for the given criteria.");
        }
        if (more) {
            res.set_header("record_cursor",
                           hex(data.back()["ID"].get<std::string>() + "|" + criteria_text));
        }
        status = 200;
        return {{"code", 3000}, {"data", std::move(data)}};
    }

    json by_id(const httplib::Request& req) {
        const auto id = req.matches[4].str();
        std::lock_guard lock(mutex);
        const auto it = records.find(id);
        if (it == records.end()) {
            return coded(3190, "No record with ID " + id + " found.");
        }
        if (req.method == "GET") {
            return {{"code", 3000}, {"data", view_locked(it->second)}};
        }
        if (req.method == "DELETE") {
            records.erase(it);
            return {{"code", 3000},
                    {"data", {{"ID", id}}},
                    {"message", "Record Deleted Successfully!"}};
        }
        const auto body = parse_body(req);
        const auto& fields = body["data"];
        if (!fields.is_object()) {
            throw Answer{400, coded(3020, "API request's body is either missing or incomplete.")};
        }
        if (const auto errors = field_errors_locked(fields); !errors.empty()) {
            return {{"code", 3070},
                    {"error", errors},
                    {"message", "Data validation failure: " + errors.dump()}};
        }
        update_locked(it->second, fields);
        json out = json::object();
        for (const auto& [key, value] : fields.items()) {
            if (!system_field(key)) {
                out[key] = it->second.fields[key];
            }
        }
        out["ID"] = id;
        return {
            {"code", 3000}, {"data", std::move(out)}, {"message", "Data Updated Successfully!"}};
    }

    void serve(const httplib::Request& req, httplib::Response& res, const std::string& kind) {
        const auto fault = faults.take(req.method, req.path);
        const auto record = [&](int status, const json* body) {
            const int code = body != nullptr && body->is_object() ? body->value("code", 0) : 0;
            log.add(req.path, {req.method, req.path, query_of(req),
                               req.get_header_value("record_cursor"), req.body, status, code});
        };
        const auto answer = [&](int status, const json& body) {
            res.status = status;
            res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                            "application/json;charset=UTF-8");
            if (fault && fault->kind == FaultKind::truncate) {
                res.body.resize(res.body.size() / 2);
            }
            record(status, &body);
        };
        if (fault) {
            switch (fault->kind) {
            case FaultKind::reset:
                AbortableServer::abort_current_connection();
                record(0, nullptr);
                return;
            case FaultKind::status:
                if (fault->retry_after) {
                    res.set_header("Retry-After", *fault->retry_after);
                }
                answer(fault->status, body_for_status(fault->status, fault->code));
                return;
            case FaultKind::malformed:
                res.status = 200;
                res.set_content("<html><body>502 Bad Gateway</body></html>", "text/html");
                record(200, nullptr);
                return;
            case FaultKind::slow:
                std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
                break;
            case FaultKind::truncate:
                break;
            }
        }
        try {
            check_path(req, kind);
            admit(req);
            int status = 200;
            json body;
            if (kind == "form") {
                body = add(req, status);
            } else if (kind == "report") {
                body = list(req, res, status);
            } else {
                body = by_id(req);
            }
            answer(status, body);
        } catch (const Answer& a) {
            answer(a.status, a.body);
        }
    }
};

CreatorFake::CreatorFake(CreatorFakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = std::move(options);
}

CreatorFake::~CreatorFake() { stop(); }

int CreatorFake::start(int port) {
    auto& impl = *m_impl;
    return impl.listener.start(
        port,
        [this, &impl](AbortableServer& server) {
            const auto handle = [&impl](const std::string& kind) {
                return [&impl, kind](const httplib::Request& req, httplib::Response& res) {
                    impl.serve(req, res, kind);
                };
            };
            const std::string data = R"(/creator/v2\.1/data/([^/]+)/([^/]+))";
            server.Post(data + "/form/([^/]+)", handle("form"));
            server.Get(data + "/report/([^/]+)", handle("report"));
            server.Get(data + "/report/([^/]+)/([^/]+)", handle("id"));
            server.Patch(data + "/report/([^/]+)/([^/]+)", handle("id"));
            server.Delete(data + "/report/([^/]+)/([^/]+)", handle("id"));

            ControlRoutes control(
                server, [](std::string_view m) { return coded(1000, std::string(m)).dump(); });
            control.faults<CreatorFault>(impl.faults, creator_fault_from_json);
            control.clock(impl.clock, [&impl](std::int64_t now) {
                std::lock_guard lock(impl.mutex);
                return format_creator_time(now, impl.options.utc_offset_minutes);
            });
            control.shutdown(impl.shutdown_hook);
            control.post("/_fake/tokens", [this](const httplib::Request& req) {
                add_token(json::parse(req.body).at("token").get<std::string>());
                return json::object();
            });
            control.post("/_fake/records", [this](const httplib::Request& req) {
                return add_record(json::parse(req.body));
            });
            control.get("/_fake/records", [this](const httplib::Request&) {
                return json{{"records", records()}};
            });
            control.post(R"(/_fake/records/([0-9]+))", [this](const httplib::Request& req) {
                return edit_record(req.matches[1].str(), json::parse(req.body));
            });
            control.del(R"(/_fake/records/([0-9]+))", [this](const httplib::Request& req) {
                delete_record(req.matches[1].str());
                return json::object();
            });
            control.post("/_fake/settings", [this](const httplib::Request& req) {
                const auto body = json::parse(req.body);
                if (body.contains("per_minute_limit")) {
                    set_per_minute_limit(body["per_minute_limit"].get<int>());
                }
                if (body.contains("time_zone")) {
                    set_time_zone(body["time_zone"].get<std::string>());
                }
                if (body.contains("no_records_status")) {
                    set_no_records_status(body["no_records_status"].get<int>());
                }
                for (const auto& email : body.value("reject_emails", json::array())) {
                    reject_email(email.get<std::string>());
                }
                std::lock_guard lock(m_impl->mutex);
                return json{{"per_minute_limit", m_impl->options.per_minute_limit},
                            {"utc_offset_minutes", m_impl->options.utc_offset_minutes},
                            {"no_records_status", m_impl->options.no_records_status},
                            {"reject_emails", m_impl->rejected_emails}};
            });
            control.get("/_fake/stats", [this](const httplib::Request&) {
                std::lock_guard lock(m_impl->mutex);
                return json{{"requests", m_impl->request_total},
                            {"throttled", m_impl->throttled},
                            {"records", m_impl->records.size()},
                            {"paths", m_impl->log.counts()}};
            });
        },
        impl.options.worker_threads);
}

void CreatorFake::stop() { m_impl->listener.stop(); }

int CreatorFake::port() const { return m_impl->listener.port(); }

std::string CreatorFake::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::string CreatorFake::form_path() const {
    return m_impl->app_path() + "/form/" + m_impl->options.form;
}

std::string CreatorFake::report_path() const {
    return m_impl->app_path() + "/report/" + m_impl->options.report;
}

void CreatorFake::add_token(const std::string& access_token) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->tokens.insert(access_token);
}

void CreatorFake::set_token_validator(TokenValidator validator) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->validator = std::move(validator);
}

json CreatorFake::add_record(const json& fields) {
    if (!fields.is_object()) {
        throw std::invalid_argument("a record must be a JSON object");
    }
    std::lock_guard lock(m_impl->mutex);
    return m_impl->view_locked(m_impl->insert_locked(fields));
}

json CreatorFake::edit_record(const std::string& id, const json& fields) {
    if (!fields.is_object()) {
        throw std::invalid_argument("fields must be a JSON object");
    }
    std::lock_guard lock(m_impl->mutex);
    const auto it = m_impl->records.find(id);
    if (it == m_impl->records.end()) {
        throw std::out_of_range("no record with ID " + id);
    }
    m_impl->update_locked(it->second, fields);
    return m_impl->view_locked(it->second);
}

void CreatorFake::delete_record(const std::string& id) {
    std::lock_guard lock(m_impl->mutex);
    if (m_impl->records.erase(id) == 0) {
        throw std::out_of_range("no record with ID " + id);
    }
}

std::vector<json> CreatorFake::records() const {
    std::lock_guard lock(m_impl->mutex);
    std::vector<json> out;
    out.reserve(m_impl->records.size());
    for (const auto& [id, r] : m_impl->records) {
        out.push_back(m_impl->view_locked(r));
    }
    return out;
}

void CreatorFake::set_per_minute_limit(int limit) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.per_minute_limit = limit;
}

void CreatorFake::set_time_zone(const std::string& zone) {
    const auto offset = parse_utc_offset(zone);
    if (!offset) {
        throw std::invalid_argument("time zone '" + zone + "': want UTC or +HH:MM / -HH:MM");
    }
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.utc_offset_minutes = *offset;
}

void CreatorFake::set_no_records_status(int status) {
    if (status != 404 && status != 200) {
        throw std::invalid_argument("no_records_status must be 404 or 200");
    }
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.no_records_status = status;
}

void CreatorFake::reject_email(const std::string& email) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->rejected_emails.insert(email);
}

void CreatorFake::inject(CreatorFault fault) { m_impl->faults.push(std::move(fault)); }

void CreatorFake::clear_faults() { m_impl->faults.clear(); }

std::size_t CreatorFake::pending_faults() const { return m_impl->faults.pending(); }

std::size_t CreatorFake::request_count() const {
    std::lock_guard lock(m_impl->mutex);
    return m_impl->request_total;
}

std::size_t CreatorFake::throttled_count() const {
    std::lock_guard lock(m_impl->mutex);
    return m_impl->throttled;
}

std::vector<CreatorRequest> CreatorFake::requests() const { return m_impl->log.records(); }

void CreatorFake::set_clock_offset(std::chrono::milliseconds offset) {
    m_impl->clock.set_offset(offset);
}

std::int64_t CreatorFake::now_ms() const { return m_impl->clock.now_ms(); }

void CreatorFake::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

} // namespace crmsync::fakes
