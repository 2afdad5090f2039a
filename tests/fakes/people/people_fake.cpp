#include "tests/fakes/people/people_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/base64.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace crmsync::fakes {
namespace {

using nlohmann::json;

constexpr long long k_default_page = 100;
constexpr long long k_max_page = 1000;
constexpr std::int64_t k_quota_window_ms = 60'000;
// Resource names look like Google's: "people/c" and 19 digits.
constexpr std::uint64_t k_first_contact_number = 7'142'462'727'258'425'368ULL;

// The person fields of the discovery document (people-disc, Person); "metadata" is read-only.
const std::set<std::string, std::less<>> k_person_fields{
    "addresses",   "ageRanges",      "biographies", "birthdays",     "calendarUrls", "clientData",
    "coverPhotos", "emailAddresses", "events",      "externalIds",   "genders",      "imClients",
    "interests",   "locales",        "locations",   "memberships",   "metadata",     "miscKeywords",
    "names",       "nicknames",      "occupations", "organizations", "phoneNumbers", "photos",
    "relations",   "sipAddresses",   "skills",      "urls",          "userDefined"};
// Fields that hold at most one value (apis.md §2.3).
const std::set<std::string, std::less<>> k_singleton_fields{"names", "biographies", "birthdays",
                                                            "genders"};

json rpc_error(int code, const std::string& status, const std::string& message,
               const std::string& reason = "") {
    json error = {{"code", code}, {"message", message}, {"status", status}};
    if (!reason.empty()) {
        error["details"] = json::array({{{"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
                                         {"reason", reason},
                                         {"domain", "googleapis.com"},
                                         {"metadata", {{"service", "people.googleapis.com"}}}}});
    }
    return {{"error", std::move(error)}};
}

json unauthenticated() {
    return rpc_error(401, "UNAUTHENTICATED",
                     "Request had invalid authentication credentials. Expected OAuth 2 access "
                     "token, login cookie or other valid authentication credential. See "
                     "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                     "ACCESS_TOKEN_TYPE_UNSUPPORTED");
}

json quota_exceeded() {
    return rpc_error(429, "RESOURCE_EXHAUSTED",
                     "Quota exceeded for quota metric 'Read requests' and limit 'Read requests "
                     "per minute per user' of service 'people.googleapis.com' for consumer "
                     "'project_number:123456789'.",
                     "RATE_LIMIT_EXCEEDED");
}

json expired_sync_token(int status) {
    // The observed body (apis.md §2.2). In 410 mode only the code differs: an assumption for
    // clients that must accept both.
    auto body = rpc_error(
        status, "FAILED_PRECONDITION",
        "Sync token is expired. Clear local cache and retry call without the sync token.");
    body["error"]["details"] = json::array({{{"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
                                             {"reason", "EXPIRED_SYNC_TOKEN"},
                                             {"domain", "people.googleapis.com"}}});
    return body;
}

json invalid_argument(const std::string& message) {
    return rpc_error(400, "INVALID_ARGUMENT", message);
}

json not_found() { return rpc_error(404, "NOT_FOUND", "Requested entity was not found."); }

json body_for_status(int status) {
    switch (status) {
    case 400:
        return invalid_argument("Request contains an invalid argument.");
    case 401:
        return unauthenticated();
    case 403:
        return rpc_error(403, "PERMISSION_DENIED", "The caller does not have permission");
    case 404:
        return not_found();
    case 429:
        return quota_exceeded();
    case 500:
        return rpc_error(500, "INTERNAL", "Internal error encountered.");
    case 503:
        return rpc_error(503, "UNAVAILABLE", "The service is currently unavailable.");
    default:
        return rpc_error(status, status >= 500 ? "UNKNOWN" : "FAILED_PRECONDITION", "Error");
    }
}

// An API error the handlers throw; the dispatcher turns it into the answer.
struct ApiError {
    int status;
    json body;
};

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, sep)) {
        parts.push_back(part);
    }
    return parts;
}

// A comma list of person fields; throws ApiError for a missing or unknown one.
std::set<std::string, std::less<>> field_mask(const httplib::Request& req, const char* name,
                                              bool required) {
    if (!req.has_param(name) || req.get_param_value(name).empty()) {
        if (required) {
            throw ApiError{400, invalid_argument(std::string(name) + " mask is required. Please "
                                                                     "specify one or more valid "
                                                                     "paths.")};
        }
        return {};
    }
    std::set<std::string, std::less<>> fields;
    for (auto field : split(req.get_param_value(name), ',')) {
        field.erase(0, field.find_first_not_of(' '));
        field.erase(field.find_last_not_of(' ') + 1);
        if (field.starts_with("person.")) {
            field.erase(0, 7);
        }
        if (!k_person_fields.contains(field)) {
            throw ApiError{400, invalid_argument("Invalid " + std::string(name) + " mask path: \"" +
                                                 field + "\".")};
        }
        fields.insert(field);
    }
    return fields;
}

struct Contact {
    std::string resource_name;
    std::string source_id;
    json fields = json::object(); // top-level person fields except metadata
    std::uint64_t version = 0;
    std::int64_t update_ms = 0;
    std::uint64_t seq = 0; // the user's change counter at the last change
    bool deleted = false;

    [[nodiscard]] std::string etag() const {
        return "%EgUBAgkLNxoE" + base64_encode(resource_name + "/" + std::to_string(version));
    }
    [[nodiscard]] std::string source_etag() const {
        return "#" + base64_encode(source_id + "/" + std::to_string(version));
    }
};

struct User {
    std::string name;
    std::string refresh_token;
    std::map<std::string, Contact, std::less<>> contacts;
    std::uint64_t seq = 0;
    std::uint64_t token_generation = 0; // sync tokens of older generations are expired
    std::deque<std::int64_t> window;    // accepted requests of the last 60 s, fake clock
    std::size_t requests = 0;
    std::size_t throttled = 0;
};

// Google computes displayName and friends from the name parts.
void complete_name(json& name) {
    const auto given = name.value("givenName", std::string());
    const auto family = name.value("familyName", std::string());
    if (given.empty() && family.empty()) {
        return;
    }
    const auto display = given.empty() ? family : family.empty() ? given : given + " " + family;
    name["displayName"] = display;
    name["unstructuredName"] = display;
    name["displayNameLastFirst"] = given.empty()    ? family
                                   : family.empty() ? given
                                                    : family + ", " + given;
}

// Gives every entry of every list field its metadata: the contact source, and exactly one
// primary entry (the one the caller marked, else the first).
void decorate(json& fields, const std::string& source_id) {
    for (auto& [key, value] : fields.items()) {
        if (!value.is_array()) {
            continue;
        }
        std::size_t primary = 0;
        for (std::size_t i = 0; i < value.size(); ++i) {
            const auto& entry = value[i];
            if (entry.is_object() && entry.contains("metadata") &&
                entry["metadata"].value("primary", false)) {
                primary = i;
                break;
            }
        }
        for (std::size_t i = 0; i < value.size(); ++i) {
            auto& entry = value[i];
            if (!entry.is_object()) {
                continue;
            }
            entry["metadata"] = {{"primary", i == primary},
                                 {"source", {{"type", "CONTACT"}, {"id", source_id}}}};
            if (key == "names") {
                complete_name(entry);
            }
            if (key == "phoneNumbers" && entry.contains("value") && entry["value"].is_string()) {
                const auto text = entry["value"].get<std::string>();
                if (text.starts_with("+")) {
                    std::string canonical = "+";
                    for (const char c : text) {
                        if (c >= '0' && c <= '9') {
                            canonical += c;
                        }
                    }
                    entry["canonicalForm"] = canonical;
                }
            }
        }
    }
}

// The writable person fields of a request body; throws ApiError for a bad one.
json writable_fields(const json& person, const std::set<std::string, std::less<>>* only) {
    if (!person.is_object()) {
        throw ApiError{400, invalid_argument("Invalid JSON payload received. Expected an "
                                             "object.")};
    }
    json fields = json::object();
    for (const auto& [key, value] : person.items()) {
        if (key == "metadata" || !k_person_fields.contains(key)) {
            continue;
        }
        if (only != nullptr && !only->contains(key)) {
            continue;
        }
        if (!value.is_array()) {
            throw ApiError{
                400, invalid_argument("Invalid value at 'person." + key + "', expected a list.")};
        }
        if (k_singleton_fields.contains(key) && value.size() > 1) {
            throw ApiError{400, invalid_argument("Only one " + key + " field is allowed.")};
        }
        fields[key] = value;
    }
    return fields;
}

json person_json(const Contact& c, const std::set<std::string, std::less<>>& mask) {
    if (c.deleted) {
        return {{"resourceName", c.resource_name},
                {"etag", c.etag()},
                {"metadata", {{"deleted", true}}}};
    }
    json person = {{"resourceName", c.resource_name}, {"etag", c.etag()}};
    const bool all = mask.empty();
    if (all || mask.contains("metadata")) {
        person["metadata"] = {
            {"sources", json::array({{{"type", "CONTACT"},
                                      {"id", c.source_id},
                                      {"etag", c.source_etag()},
                                      {"updateTime", format_iso_ms(c.update_ms)}}})},
            {"objectType", "PERSON"}};
    }
    for (const auto& [key, value] : c.fields.items()) {
        if ((all || mask.contains(key)) && !value.empty()) {
            person[key] = value;
        }
    }
    return person;
}

// Page and sync tokens are opaque to clients; inside, "|"-separated numbers.
struct PageCursor {
    bool delta = false;      // a syncToken listing
    std::uint64_t base = 0;  // delta: the sync token's seq
    std::uint64_t start = 0; // the user's seq when the listing began
    std::uint64_t after = 0; // last seq answered
    std::string user;
};

std::string encode_page(const PageCursor& c) {
    return base64_encode("p|" + c.user + "|" + (c.delta ? "d" : "f") + "|" +
                         std::to_string(c.base) + "|" + std::to_string(c.start) + "|" +
                         std::to_string(c.after));
}

std::optional<PageCursor> decode_page(const std::string& token) {
    const auto text = base64_decode(token);
    if (!text) {
        return std::nullopt;
    }
    const auto parts = split(*text, '|');
    if (parts.size() != 6 || parts[0] != "p" || (parts[2] != "d" && parts[2] != "f")) {
        return std::nullopt;
    }
    try {
        return PageCursor{parts[2] == "d", std::stoull(parts[3]), std::stoull(parts[4]),
                          std::stoull(parts[5]), parts[1]};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

struct SyncToken {
    std::string user;
    std::uint64_t seq = 0;
    std::uint64_t generation = 0;
    std::int64_t issued_ms = 0;
};

std::string encode_sync(const SyncToken& t) {
    return base64_encode("s|" + t.user + "|" + std::to_string(t.seq) + "|" +
                         std::to_string(t.generation) + "|" + std::to_string(t.issued_ms));
}

std::optional<SyncToken> decode_sync(const std::string& token) {
    const auto text = base64_decode(token);
    if (!text) {
        return std::nullopt;
    }
    const auto parts = split(*text, '|');
    if (parts.size() != 5 || parts[0] != "s") {
        return std::nullopt;
    }
    try {
        return SyncToken{parts[1], std::stoull(parts[2]), std::stoull(parts[3]),
                         std::stoll(parts[4])};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

bool flag(const httplib::Request& req, const char* name) {
    return req.has_param(name) && req.get_param_value(name) == "true";
}

} // namespace

struct PeopleFake::Impl {
    PeopleFakeOptions options;
    HttpListener listener;
    FaultQueue<Fault> faults;
    RequestLog<PeopleRequest> log{100000};
    FakeClock clock;
    ShutdownHook shutdown_hook;
    mutable std::mutex mutex;
    std::map<std::string, User, std::less<>> users;
    std::map<std::string, std::string, std::less<>> token_users; // access token -> user
    TokenResolver resolver;
    std::uint64_t next_contact = 0;

    static void answer(httplib::Response& res, int status, const json& body) {
        res.status = status;
        res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                        "application/json; charset=UTF-8");
    }

    User& user_locked(const std::string& name) {
        const auto it = users.find(name);
        if (it == users.end()) {
            throw std::out_of_range("unknown user '" + name + "'");
        }
        return it->second;
    }

    Contact& contact_locked(User& user, const std::string& resource_name) {
        const auto it = user.contacts.find(resource_name);
        if (it == user.contacts.end() || it->second.deleted) {
            throw std::out_of_range("unknown contact '" + resource_name + "'");
        }
        return it->second;
    }

    void touch_locked(User& user, Contact& c) {
        ++c.version;
        c.seq = ++user.seq;
        c.update_ms = clock.now_ms();
    }

    Contact& create_locked(User& user, json fields) {
        const auto number = k_first_contact_number + 7919 * next_contact++;
        Contact c;
        c.resource_name = "people/c" + std::to_string(number);
        std::ostringstream hex;
        hex << std::hex << number;
        c.source_id = hex.str().substr(0, 16);
        decorate(fields, c.source_id);
        c.fields = std::move(fields);
        touch_locked(user, c);
        auto& stored = user.contacts[c.resource_name];
        stored = std::move(c);
        return stored;
    }

    void edit_locked(User& user, Contact& c, const json& fields,
                     const std::set<std::string, std::less<>>& replaced) {
        for (const auto& key : replaced) {
            if (key == "metadata") {
                continue;
            }
            if (fields.contains(key)) {
                c.fields[key] = fields[key];
            } else {
                c.fields.erase(key);
            }
        }
        decorate(c.fields, c.source_id);
        touch_locked(user, c);
    }

    // Who the caller is, or an ApiError 401. Called without the lock: the resolver may block.
    std::string authenticate(const httplib::Request& req) {
        std::string token;
        const auto authorization = req.get_header_value("Authorization");
        if (authorization.starts_with("Bearer ")) {
            token = authorization.substr(7);
        } else if (req.has_param("access_token")) {
            token = req.get_param_value("access_token");
        }
        if (token.empty()) {
            throw ApiError{401, unauthenticated()};
        }
        TokenResolver resolve;
        {
            std::lock_guard lock(mutex);
            if (const auto it = token_users.find(token); it != token_users.end()) {
                return it->second;
            }
            resolve = resolver;
        }
        if (resolve) {
            if (const auto refresh = resolve(token); refresh && !refresh->empty()) {
                std::lock_guard lock(mutex);
                for (const auto& [name, user] : users) {
                    if (user.refresh_token == *refresh) {
                        return name;
                    }
                }
            }
        }
        throw ApiError{401, unauthenticated()};
    }

    // Counts the request and applies the per-minute limit; under the lock.
    void meter_locked(User& user) {
        ++user.requests;
        const auto limit = options.per_minute_limit;
        if (limit <= 0) {
            return;
        }
        const auto now = clock.now_ms();
        while (!user.window.empty() && user.window.front() <= now - k_quota_window_ms) {
            user.window.pop_front();
        }
        if (static_cast<long long>(user.window.size()) >= limit) {
            ++user.throttled;
            throw ApiError{429, quota_exceeded()};
        }
        user.window.push_back(now);
    }

    json list(User& user, const httplib::Request& req) {
        const auto mask = field_mask(req, "personFields", true);
        long long size = k_default_page;
        if (req.has_param("pageSize")) {
            try {
                size = std::stoll(req.get_param_value("pageSize"));
            } catch (const std::exception&) {
                size = -1;
            }
            if (size < 0 || size > k_max_page) {
                throw ApiError{400, invalid_argument("Invalid pageSize: must be between 1 and "
                                                     "1000.")};
            }
            if (size == 0) {
                size = k_default_page;
            }
        }
        std::optional<SyncToken> sync;
        if (req.has_param("syncToken") && !req.get_param_value("syncToken").empty()) {
            sync = decode_sync(req.get_param_value("syncToken"));
            if (!sync || sync->user != user.name || sync->seq > user.seq) {
                throw ApiError{400, invalid_argument("Request contains an invalid argument.")};
            }
            const auto age = clock.now_ms() - sync->issued_ms;
            if (sync->generation != user.token_generation ||
                age > std::chrono::duration_cast<std::chrono::milliseconds>(
                          options.sync_token_lifetime)
                          .count()) {
                throw ApiError{options.expired_sync_token_status,
                               expired_sync_token(options.expired_sync_token_status)};
            }
        }
        PageCursor cursor{sync.has_value(), sync ? sync->seq : 0, user.seq, sync ? sync->seq : 0,
                          user.name};
        if (req.has_param("pageToken") && !req.get_param_value("pageToken").empty()) {
            const auto page = decode_page(req.get_param_value("pageToken"));
            // "All other parameters provided to connections.list must match the first call."
            if (!page || page->user != user.name || page->delta != sync.has_value() ||
                (sync && page->base != sync->seq)) {
                throw ApiError{400, invalid_argument("Invalid pageToken.")};
            }
            cursor = *page;
        }
        std::vector<const Contact*> changed;
        std::size_t total = 0;
        for (const auto& [name, c] : user.contacts) {
            const bool listed = cursor.delta ? c.seq > cursor.base : !c.deleted;
            if (!listed) {
                continue;
            }
            ++total;
            if (c.seq > cursor.after) {
                changed.push_back(&c);
            }
        }
        std::sort(changed.begin(), changed.end(),
                  [](const Contact* a, const Contact* b) { return a->seq < b->seq; });
        json connections = json::array();
        const auto count = std::min<std::size_t>(changed.size(), static_cast<std::size_t>(size));
        for (std::size_t i = 0; i < count; ++i) {
            connections.push_back(person_json(*changed[i], mask));
        }
        json body = {{"totalItems", total}, {"totalPeople", total}};
        if (!connections.empty()) {
            body["connections"] = std::move(connections);
        }
        if (changed.size() > count) {
            cursor.after = changed[count - 1]->seq;
            body["nextPageToken"] = encode_page(cursor);
        } else if (flag(req, "requestSyncToken") || sync) {
            // An assumption: a delta listing returns the next token even without
            // requestSyncToken, so a client that forgets it can still continue.
            body["nextSyncToken"] =
                encode_sync({user.name, cursor.start, user.token_generation, clock.now_ms()});
        }
        return body;
    }

    static json parse_body(const httplib::Request& req) {
        try {
            return json::parse(req.body);
        } catch (const json::exception&) {
            throw ApiError{400, invalid_argument("Invalid JSON payload received.")};
        }
    }

    json create(User& user, const httplib::Request& req) {
        const auto mask = field_mask(req, "personFields", false);
        auto fields = writable_fields(parse_body(req), nullptr);
        return person_json(create_locked(user, std::move(fields)), mask);
    }

    json update(User& user, const httplib::Request& req, const std::string& resource_name) {
        const auto replaced = field_mask(req, "updatePersonFields", true);
        const auto mask = field_mask(req, "personFields", false);
        const auto body = parse_body(req);
        auto fields = writable_fields(body, &replaced);
        const auto it = user.contacts.find(resource_name);
        if (it == user.contacts.end() || it->second.deleted) {
            throw ApiError{404, not_found()};
        }
        auto& c = it->second;
        if (!body.contains("etag") || !body["etag"].is_string()) {
            throw ApiError{400, invalid_argument("Request must set person.etag.")};
        }
        const auto& sources = body.value("metadata", json::object()).value("sources", json());
        if (!sources.is_array() || sources.empty()) {
            throw ApiError{400, invalid_argument("Request must set person.metadata.sources.")};
        }
        if (body["etag"].get<std::string>() != c.etag()) {
            throw ApiError{400, rpc_error(400, "FAILED_PRECONDITION",
                                          "Request person.etag is different than the current "
                                          "person.etag. Clear local cache and get the latest "
                                          "person.",
                                          "failedPrecondition")};
        }
        edit_locked(user, c, fields, replaced);
        return person_json(c, mask);
    }

    void serve(const httplib::Request& req, httplib::Response& res,
               const std::function<json(User&)>& handle) {
        const auto fault = faults.take(req.method, req.path);
        std::string user_name;
        const auto record = [&](int status) {
            log.add(req.path, {req.method, req.path, query_of(req), user_name, status});
        };
        if (fault) {
            switch (fault->kind) {
            case FaultKind::reset:
                AbortableServer::abort_current_connection();
                record(0);
                return;
            case FaultKind::status:
                if (fault->retry_after) {
                    res.set_header("Retry-After", *fault->retry_after);
                }
                answer(res, fault->status, body_for_status(fault->status));
                record(fault->status);
                return;
            case FaultKind::malformed:
                res.status = 200;
                res.set_content("<html><body>502 Bad Gateway</body></html>", "text/html");
                record(200);
                return;
            case FaultKind::slow:
                std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
                break;
            case FaultKind::truncate:
                break;
            }
        }
        int status = 200;
        json body;
        try {
            user_name = authenticate(req);
            std::lock_guard lock(mutex);
            auto& user = user_locked(user_name);
            meter_locked(user);
            body = handle(user);
        } catch (const ApiError& e) {
            status = e.status;
            body = e.body;
            if (status == 401) {
                res.set_header("WWW-Authenticate", "Bearer realm=\"https://accounts.google.com/\", "
                                                   "error=\"invalid_token\"");
            }
        }
        answer(res, status, body);
        if (fault && fault->kind == FaultKind::truncate) {
            res.body.resize(res.body.size() / 2);
        }
        record(status);
    }

    void routes(AbortableServer& server);
};

void PeopleFake::Impl::routes(AbortableServer& server) {
    server.Get("/v1/people/me/connections",
               [this](const httplib::Request& req, httplib::Response& res) {
                   serve(req, res, [&](User& user) { return list(user, req); });
               });
    server.Post("/v1/people:createContact",
                [this](const httplib::Request& req, httplib::Response& res) {
                    serve(req, res, [&](User& user) { return create(user, req); });
                });
    server.Patch(R"(/v1/(people/[^/:]+):updateContact)", [this](const httplib::Request& req,
                                                                httplib::Response& res) {
        serve(req, res, [&](User& user) { return update(user, req, req.matches[1].str()); });
    });
    server.Delete(R"(/v1/(people/[^/:]+):deleteContact)",
                  [this](const httplib::Request& req, httplib::Response& res) {
                      serve(req, res, [&](User& user) {
                          const auto it = user.contacts.find(req.matches[1].str());
                          if (it == user.contacts.end() || it->second.deleted) {
                              throw ApiError{404, not_found()};
                          }
                          it->second.deleted = true;
                          it->second.fields = json::object();
                          touch_locked(user, it->second);
                          return json::object();
                      });
                  });
    server.Get(R"(/v1/(people/[^/:]+))",
               [this](const httplib::Request& req, httplib::Response& res) {
                   serve(req, res, [&](User& user) {
                       const auto mask = field_mask(req, "personFields", true);
                       const auto it = user.contacts.find(req.matches[1].str());
                       if (it == user.contacts.end() || it->second.deleted) {
                           throw ApiError{404, not_found()};
                       }
                       return person_json(it->second, mask);
                   });
               });
}

PeopleFake::PeopleFake(PeopleFakeOptions options) : m_impl(std::make_unique<Impl>()) {
    m_impl->options = options;
}

PeopleFake::~PeopleFake() { stop(); }

int PeopleFake::start(int port) {
    auto& impl = *m_impl;
    return impl.listener.start(
        port,
        [this, &impl](AbortableServer& server) {
            impl.routes(server);
            ControlRoutes control(
                server, [](std::string_view m) { return invalid_argument(std::string(m)).dump(); });
            control.faults<Fault>(impl.faults, fault_from_json);
            control.clock(impl.clock, format_iso_ms);
            control.shutdown(impl.shutdown_hook);
            control.post("/_fake/users", [this](const httplib::Request& req) {
                const auto body = json::parse(req.body);
                const auto user = body.at("user").get<std::string>();
                const auto refresh = body.value("refresh_token", std::string());
                add_user(user, body.value("access_token", std::string()), refresh);
                for (const auto& token : body.value("access_tokens", json::array())) {
                    add_user(user, token.get<std::string>(), refresh);
                }
                return json::object();
            });
            control.post(R"(/_fake/users/([^/]+)/contacts)", [this](const httplib::Request& req) {
                return add_contact(req.matches[1].str(), json::parse(req.body));
            });
            control.get(R"(/_fake/users/([^/]+)/contacts)", [this](const httplib::Request& req) {
                const auto user = req.matches[1].str();
                json deleted = json::array();
                {
                    std::lock_guard lock(m_impl->mutex);
                    for (const auto& [name, c] : m_impl->user_locked(user).contacts) {
                        if (c.deleted) {
                            deleted.push_back(name);
                        }
                    }
                }
                return json{{"contacts", contacts(user)}, {"deleted", deleted}};
            });
            control.post(R"(/_fake/users/([^/]+)/contacts/(people/[^/]+))",
                         [this](const httplib::Request& req) {
                             return edit_contact(req.matches[1].str(), req.matches[2].str(),
                                                 json::parse(req.body));
                         });
            control.del(R"(/_fake/users/([^/]+)/contacts/(people/[^/]+))",
                        [this](const httplib::Request& req) {
                            delete_contact(req.matches[1].str(), req.matches[2].str());
                            return json::object();
                        });
            control.post(R"(/_fake/users/([^/]+)/expire_sync_tokens)",
                         [this](const httplib::Request& req) {
                             expire_sync_tokens(req.matches[1].str());
                             return json::object();
                         });
            control.post("/_fake/settings", [this](const httplib::Request& req) {
                const auto body = json::parse(req.body);
                if (body.contains("per_minute_limit")) {
                    set_per_minute_limit(body["per_minute_limit"].get<int>());
                }
                if (body.contains("expired_sync_token_status")) {
                    set_expired_sync_token_status(body["expired_sync_token_status"].get<int>());
                }
                std::lock_guard lock(m_impl->mutex);
                return json{
                    {"per_minute_limit", m_impl->options.per_minute_limit},
                    {"expired_sync_token_status", m_impl->options.expired_sync_token_status}};
            });
            control.get("/_fake/stats", [this](const httplib::Request&) {
                json users = json::object();
                std::vector<std::string> names;
                {
                    std::lock_guard lock(m_impl->mutex);
                    for (const auto& [name, user] : m_impl->users) {
                        names.push_back(name);
                    }
                }
                for (const auto& name : names) {
                    const auto s = stats(name);
                    users[name] = {{"requests", s.requests},
                                   {"throttled", s.throttled},
                                   {"contacts", s.contacts}};
                }
                return json{{"users", users}, {"paths", m_impl->log.counts()}};
            });
        },
        impl.options.worker_threads);
}

void PeopleFake::stop() { m_impl->listener.stop(); }

int PeopleFake::port() const { return m_impl->listener.port(); }

std::string PeopleFake::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

void PeopleFake::add_user(const std::string& user, const std::string& access_token,
                          const std::string& refresh_token) {
    if (user.empty()) {
        throw std::invalid_argument("a user needs a name");
    }
    std::lock_guard lock(m_impl->mutex);
    if (!access_token.empty()) {
        const auto it = m_impl->token_users.find(access_token);
        if (it != m_impl->token_users.end() && it->second != user) {
            throw std::invalid_argument("the access token belongs to user '" + it->second + "'");
        }
    }
    auto& u = m_impl->users[user];
    u.name = user;
    if (!refresh_token.empty()) {
        u.refresh_token = refresh_token;
    }
    if (!access_token.empty()) {
        m_impl->token_users[access_token] = user;
    }
}

void PeopleFake::set_token_resolver(TokenResolver resolver) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->resolver = std::move(resolver);
}

json PeopleFake::add_contact(const std::string& user, const json& person) {
    std::lock_guard lock(m_impl->mutex);
    auto& u = m_impl->user_locked(user);
    try {
        return person_json(m_impl->create_locked(u, writable_fields(person, nullptr)), {});
    } catch (const ApiError& e) {
        throw std::invalid_argument(e.body["error"].value("message", std::string("bad person")));
    }
}

json PeopleFake::edit_contact(const std::string& user, const std::string& resource_name,
                              const json& fields) {
    std::lock_guard lock(m_impl->mutex);
    auto& u = m_impl->user_locked(user);
    auto& c = m_impl->contact_locked(u, resource_name);
    try {
        const auto writable = writable_fields(fields, nullptr);
        std::set<std::string, std::less<>> replaced;
        for (const auto& [key, value] : writable.items()) {
            replaced.insert(key);
        }
        m_impl->edit_locked(u, c, writable, replaced);
    } catch (const ApiError& e) {
        throw std::invalid_argument(e.body["error"].value("message", std::string("bad fields")));
    }
    return person_json(c, {});
}

void PeopleFake::delete_contact(const std::string& user, const std::string& resource_name) {
    std::lock_guard lock(m_impl->mutex);
    auto& u = m_impl->user_locked(user);
    auto& c = m_impl->contact_locked(u, resource_name);
    c.deleted = true;
    c.fields = json::object();
    m_impl->touch_locked(u, c);
}

std::vector<json> PeopleFake::contacts(const std::string& user) const {
    std::lock_guard lock(m_impl->mutex);
    const auto& u = m_impl->user_locked(user);
    std::vector<const Contact*> live;
    for (const auto& [name, c] : u.contacts) {
        if (!c.deleted) {
            live.push_back(&c);
        }
    }
    std::sort(live.begin(), live.end(),
              [](const Contact* a, const Contact* b) { return a->seq < b->seq; });
    std::vector<json> out;
    out.reserve(live.size());
    for (const auto* c : live) {
        out.push_back(person_json(*c, {}));
    }
    return out;
}

void PeopleFake::expire_sync_tokens(const std::string& user) {
    std::lock_guard lock(m_impl->mutex);
    ++m_impl->user_locked(user).token_generation;
}

void PeopleFake::set_per_minute_limit(int limit) {
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.per_minute_limit = limit;
}

void PeopleFake::set_expired_sync_token_status(int status) {
    if (status != 400 && status != 410) {
        throw std::invalid_argument("expired_sync_token_status must be 400 or 410");
    }
    std::lock_guard lock(m_impl->mutex);
    m_impl->options.expired_sync_token_status = status;
}

void PeopleFake::inject(Fault fault) { m_impl->faults.push(std::move(fault)); }

void PeopleFake::clear_faults() { m_impl->faults.clear(); }

std::size_t PeopleFake::pending_faults() const { return m_impl->faults.pending(); }

PeopleUserStats PeopleFake::stats(const std::string& user) const {
    std::lock_guard lock(m_impl->mutex);
    const auto& u = m_impl->user_locked(user);
    PeopleUserStats s{u.requests, u.throttled, 0};
    for (const auto& [name, c] : u.contacts) {
        s.contacts += c.deleted ? 0 : 1;
    }
    return s;
}

std::vector<PeopleRequest> PeopleFake::requests() const { return m_impl->log.records(); }

void PeopleFake::set_clock_offset(std::chrono::milliseconds offset) {
    m_impl->clock.set_offset(offset);
}

void PeopleFake::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

} // namespace crmsync::fakes
