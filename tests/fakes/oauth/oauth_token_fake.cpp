#include "tests/fakes/oauth/oauth_token_fake.hpp"

#include "tests/fakes/dialfire/abortable_server.hpp"
#include "tests/fakes/dialfire/fake_time.hpp"
#include "tests/fakes/webhook_receiver/http_listener.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>
#include <unordered_map>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_max_recorded_requests = 100'000;
constexpr std::size_t k_stats_recent = 50; // Requests listed by GET /_fake/stats.
constexpr std::string_view k_control_prefix = "/_fake/";
constexpr std::string_view k_form_type = "application/x-www-form-urlencoded";

std::int64_t to_ms(std::chrono::system_clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

std::map<std::string, std::string> decode_params(const std::string& text) {
    httplib::Params parsed;
    httplib::detail::parse_query_text(text, parsed);
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : parsed) {
        out.emplace(name, value); // Keeps the first of repeated names.
    }
    return out;
}

std::string error_json(std::string_view error, std::string_view description) {
    return nlohmann::json{{"error", error}, {"error_description", description}}.dump();
}

std::string_view fault_name(FaultKind kind) {
    switch (kind) {
    case FaultKind::status:
        return "status";
    case FaultKind::reset:
        return "reset";
    case FaultKind::truncate:
        return "truncate";
    case FaultKind::malformed:
        return "malformed";
    case FaultKind::slow:
        return "slow";
    }
    return "status";
}

nlohmann::json to_json(const IssuedToken& t) {
    return {{"access_token", t.access_token},
            {"refresh_token", t.refresh_token},
            {"client_id", t.client_id},
            {"scope", t.scope},
            {"issued_at", format_iso_ms(to_ms(t.issued_at))},
            {"expires_at", format_iso_ms(to_ms(t.expires_at))}};
}

} // namespace

OAuthAccount oauth_account_from_json(const nlohmann::json& json) {
    if (!json.is_object()) {
        throw std::invalid_argument("an account must be a JSON object");
    }
    OAuthAccount account;
    try {
        account.client_id = json.at("client_id").get<std::string>();
        account.client_secret = json.at("client_secret").get<std::string>();
        account.refresh_token = json.at("refresh_token").get<std::string>();
        account.scope = json.value("scope", std::string());
        account.revoked = json.value("revoked", false);
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("bad account: ") + e.what());
    }
    return account;
}

struct OAuthTokenFake::Ledger::State {
    std::unordered_map<std::string, std::string> client_secrets;
    std::unordered_map<std::string, OAuthAccount> accounts; // By refresh token.
    std::vector<IssuedToken> issued;
    std::unordered_map<std::string, std::size_t> issued_index; // Access token -> issued[i].
    std::unordered_map<std::string, std::vector<std::size_t>> issued_by_refresh;
    std::mt19937_64 random{std::random_device{}()};
    std::function<std::chrono::system_clock::time_point()> clock;
};

const std::string* OAuthTokenFake::Ledger::client_secret(const std::string& client_id) const {
    const auto it = m_state.client_secrets.find(client_id);
    return it == m_state.client_secrets.end() ? nullptr : &it->second;
}

const OAuthAccount* OAuthTokenFake::Ledger::account(const std::string& refresh_token) const {
    const auto it = m_state.accounts.find(refresh_token);
    return it == m_state.accounts.end() ? nullptr : &it->second;
}

std::size_t
OAuthTokenFake::Ledger::issued_after(const std::string& refresh_token,
                                     std::chrono::system_clock::time_point after) const {
    const auto it = m_state.issued_by_refresh.find(refresh_token);
    if (it == m_state.issued_by_refresh.end()) {
        return 0;
    }
    return static_cast<std::size_t>(
        std::count_if(it->second.begin(), it->second.end(),
                      [&](std::size_t i) { return m_state.issued[i].issued_at > after; }));
}

const IssuedToken& OAuthTokenFake::Ledger::issue(const OAuthAccount& account,
                                                 std::string access_token,
                                                 std::chrono::seconds lifetime) {
    IssuedToken token;
    token.access_token = std::move(access_token);
    token.refresh_token = account.refresh_token;
    token.client_id = account.client_id;
    token.scope = account.scope;
    token.issued_at = now();
    token.expires_at = token.issued_at + lifetime;
    const auto index = m_state.issued.size();
    m_state.issued_index[token.access_token] = index;
    m_state.issued_by_refresh[token.refresh_token].push_back(index);
    m_state.issued.push_back(std::move(token));
    return m_state.issued.back();
}

std::chrono::system_clock::time_point OAuthTokenFake::Ledger::now() const {
    return m_state.clock();
}

std::string OAuthTokenFake::Ledger::random_hex(std::size_t n) {
    static constexpr std::string_view k_hex = "0123456789abcdef";
    std::string out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        out += k_hex[m_state.random() % k_hex.size()];
    }
    return out;
}

struct OAuthTokenFake::Impl {
    explicit Impl(Setup s) : setup(std::move(s)) {
        state.clock = [this] {
            return std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms()));
        };
    }

    [[nodiscard]] std::int64_t now_ms() const {
        return to_ms(std::chrono::system_clock::now()) + clock_offset_ms.load();
    }

    void setup_routes(AbortableServer& server, OAuthTokenFake& fake);
    void setup_control_routes(AbortableServer& server);
    void serve(const httplib::Request& req, httplib::Response& res, OAuthTokenFake& fake);
    std::optional<Fault> take_fault(const std::string& method, const std::string& path);
    [[nodiscard]] std::size_t pending() const;
    void record(const httplib::Request& req, TokenParams params, int status, std::string error,
                std::optional<FaultKind> fault);
    void finish(httplib::Response& res, int status, const std::string& body) const;
    void sleep_unless_stopping(std::chrono::milliseconds delay);
    void add_account_locked(OAuthAccount account);
    [[nodiscard]] std::optional<IssuedToken> validate_locked(const std::string& token) const;

    Setup setup;

    mutable std::mutex data_mutex;
    Ledger::State state;

    mutable std::mutex fault_mutex;
    std::deque<Fault> faults;

    mutable std::mutex stats_mutex;
    std::deque<TokenRequest> recorded;
    std::map<std::string, std::size_t, std::less<>> count_by_path;

    std::atomic<std::int64_t> clock_offset_ms{0};

    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stopping = false;

    std::mutex shutdown_mutex;
    std::function<void()> shutdown_handler;

    HttpListener listener;
    bool started = false;
};

void OAuthTokenFake::Impl::setup_routes(AbortableServer& server, OAuthTokenFake& fake) {
    std::vector<std::string> paths{setup.token_path};
    paths.insert(paths.end(), setup.extra_paths.begin(), setup.extra_paths.end());
    for (const auto& path : paths) {
        server.Post(path, [this, &fake](const httplib::Request& req, httplib::Response& res) {
            serve(req, res, fake);
        });
    }
    // Unmatched routes and httplib's own 4xx answers get a JSON body too, and are recorded.
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            const auto error = res.status == 404 ? "not_found" : "invalid_request";
            res.set_content(
                error_json(error, res.status == 404 ? "no such endpoint" : "request failed"),
                setup.content_type);
            if (!req.path.starts_with(k_control_prefix)) {
                record(req, {}, res.status, error, std::nullopt);
            }
            return httplib::Server::HandlerResponse::Handled;
        }));
    if (setup.control_endpoints) {
        setup_control_routes(server);
    }
}

void OAuthTokenFake::Impl::serve(const httplib::Request& req, httplib::Response& res,
                                 OAuthTokenFake& fake) {
    TokenParams params;
    if (const auto q = req.target.find('?'); q != std::string::npos) {
        params.query = decode_params(req.target.substr(q + 1));
    }
    if (req.get_header_value("Content-Type").starts_with(k_form_type)) {
        params.form = decode_params(req.body);
    }
    const auto fault = take_fault(req.method, req.path);
    const auto kind = fault ? std::optional(fault->kind) : std::nullopt;
    if (kind == FaultKind::reset) {
        AbortableServer::abort_current_connection();
        finish(res, 500, error_json("reset", "connection reset by the fake"));
        record(req, std::move(params), 0, "", kind);
        return;
    }
    if (kind == FaultKind::status) {
        if (fault->retry_after) {
            res.set_header("Retry-After", *fault->retry_after);
        }
        finish(res, fault->status, error_json("injected_fault", "fault injected by the fake"));
        record(req, std::move(params), fault->status, "", kind);
        return;
    }
    if (kind == FaultKind::malformed) {
        finish(res, 200, "<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>");
        record(req, std::move(params), 200, "", kind);
        return;
    }
    if (kind == FaultKind::slow) {
        sleep_unless_stopping(std::chrono::milliseconds(fault->delay_ms));
    }
    TokenAnswer answer;
    {
        std::lock_guard lock(data_mutex);
        Ledger ledger(state);
        answer = fake.answer(params, ledger);
    }
    std::string error;
    const auto parsed = nlohmann::json::parse(answer.body, nullptr, false);
    if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
        error = parsed["error"].get<std::string>();
    }
    if (kind == FaultKind::truncate) {
        answer.body.resize(answer.body.size() / 2);
    }
    finish(res, answer.status, answer.body);
    record(req, std::move(params), answer.status, std::move(error), kind);
}

std::optional<Fault> OAuthTokenFake::Impl::take_fault(const std::string& method,
                                                      const std::string& path) {
    std::lock_guard lock(fault_mutex);
    for (auto it = faults.begin(); it != faults.end(); ++it) {
        if ((!it->method.empty() && it->method != method) || !path.starts_with(it->path_prefix)) {
            continue;
        }
        auto fault = *it;
        if (--it->count <= 0) {
            faults.erase(it);
        }
        return fault;
    }
    return std::nullopt;
}

std::size_t OAuthTokenFake::Impl::pending() const {
    std::lock_guard lock(fault_mutex);
    std::size_t total = 0;
    for (const auto& f : faults) {
        total += static_cast<std::size_t>(std::max(f.count, 0));
    }
    return total;
}

void OAuthTokenFake::Impl::record(const httplib::Request& req, TokenParams params, int status,
                                  std::string error, std::optional<FaultKind> fault) {
    TokenRequest r;
    r.method = req.method;
    r.path = req.path;
    if (const auto q = req.target.find('?'); q != std::string::npos) {
        r.query = req.target.substr(q + 1);
    }
    r.params = std::move(params);
    r.status = status;
    r.error = std::move(error);
    r.fault = fault;
    r.at_ms = now_ms();
    r.remote_port = req.remote_port;
    std::lock_guard lock(stats_mutex);
    ++count_by_path[r.path];
    recorded.push_back(std::move(r));
    if (recorded.size() > k_max_recorded_requests) {
        recorded.pop_front();
    }
}

void OAuthTokenFake::Impl::finish(httplib::Response& res, int status,
                                  const std::string& body) const {
    res.status = status;
    res.set_header("Date", format_http_date(now_ms()));
    for (const auto& [name, value] : setup.headers) {
        res.set_header(name, value);
    }
    res.set_content(body, setup.content_type);
}

void OAuthTokenFake::Impl::sleep_unless_stopping(std::chrono::milliseconds delay) {
    std::unique_lock lock(stop_mutex);
    stop_cv.wait_for(lock, delay, [this] { return stopping; });
}

void OAuthTokenFake::Impl::add_account_locked(OAuthAccount account) {
    if (account.client_id.empty() || account.refresh_token.empty()) {
        throw std::invalid_argument("an account needs a client_id and a refresh_token");
    }
    const auto known = state.client_secrets.find(account.client_id);
    if (known != state.client_secrets.end() && known->second != account.client_secret) {
        throw std::invalid_argument("client " + account.client_id +
                                    " is registered with another secret");
    }
    const auto existing = state.accounts.find(account.refresh_token);
    if (existing != state.accounts.end() && existing->second.client_id != account.client_id) {
        throw std::invalid_argument("the refresh token belongs to client " +
                                    existing->second.client_id);
    }
    state.client_secrets[account.client_id] = account.client_secret;
    state.accounts[account.refresh_token] = std::move(account);
}

std::optional<IssuedToken> OAuthTokenFake::Impl::validate_locked(const std::string& token) const {
    const auto it = state.issued_index.find(token);
    if (it == state.issued_index.end()) {
        return std::nullopt;
    }
    const auto& issued = state.issued[it->second];
    const auto account = state.accounts.find(issued.refresh_token);
    if (state.clock() >= issued.expires_at ||
        (account != state.accounts.end() && account->second.revoked)) {
        return std::nullopt;
    }
    return issued;
}

void OAuthTokenFake::Impl::setup_control_routes(AbortableServer& server) {
    // Every control answer is JSON; a thrown exception (bad input) becomes a 400.
    const auto json_route = [](auto body) {
        return [body](const httplib::Request& req, httplib::Response& res) {
            try {
                res.set_content(body(req).dump(), "application/json");
            } catch (const std::exception& e) {
                res.status = 400;
                res.set_content(error_json("bad_request", e.what()), "application/json");
            }
        };
    };
    server.Post("/_fake/accounts", json_route([this](const httplib::Request& req) {
                    auto json = nlohmann::json::parse(req.body);
                    if (!json.is_array()) {
                        json = nlohmann::json::array({json});
                    }
                    std::vector<OAuthAccount> accounts;
                    for (const auto& item : json) {
                        accounts.push_back(oauth_account_from_json(item));
                    }
                    std::lock_guard lock(data_mutex);
                    for (auto& account : accounts) {
                        add_account_locked(std::move(account));
                    }
                    return nlohmann::json{{"accounts", state.accounts.size()}};
                }));
    server.Post("/_fake/revoke", json_route([this](const httplib::Request& req) {
                    const auto token = req.get_param_value("refresh_token");
                    const bool revoked = req.get_param_value("revoked") != "false";
                    std::lock_guard lock(data_mutex);
                    state.accounts.at(token).revoked = revoked;
                    return nlohmann::json{{"revoked", revoked}};
                }));
    server.Post("/_fake/faults", json_route([this](const httplib::Request& req) {
                    auto json = nlohmann::json::parse(req.body);
                    if (!json.is_array()) {
                        json = nlohmann::json::array({json});
                    }
                    std::vector<Fault> parsed;
                    for (const auto& item : json) {
                        parsed.push_back(fault_from_json(item));
                    }
                    std::lock_guard lock(fault_mutex);
                    faults.insert(faults.end(), parsed.begin(), parsed.end());
                    return nlohmann::json{{"injected", parsed.size()}};
                }));
    server.Delete("/_fake/faults", json_route([this](const httplib::Request&) {
                      std::lock_guard lock(fault_mutex);
                      faults.clear();
                      return nlohmann::json::object();
                  }));
    server.Post("/_fake/clock", json_route([this](const httplib::Request& req) {
                    clock_offset_ms = std::stoll(req.get_param_value("offset_ms"));
                    return nlohmann::json{{"now", format_iso_ms(now_ms())}};
                }));
    server.Get("/_fake/stats", json_route([this](const httplib::Request&) {
                   nlohmann::json paths = nlohmann::json::object();
                   nlohmann::json recent = nlohmann::json::array();
                   std::size_t total = 0;
                   {
                       std::lock_guard lock(stats_mutex);
                       for (const auto& [path, count] : count_by_path) {
                           paths[path] = count;
                           total += count;
                       }
                       const auto skip =
                           recorded.size() > k_stats_recent ? recorded.size() - k_stats_recent : 0;
                       for (auto it = recorded.begin() + static_cast<std::ptrdiff_t>(skip);
                            it != recorded.end(); ++it) {
                           recent.push_back({{"method", it->method},
                                             {"path", it->path},
                                             {"status", it->status},
                                             {"error", it->error},
                                             {"fault", it->fault ? fault_name(*it->fault) : ""}});
                       }
                   }
                   nlohmann::json issued = nlohmann::json::object();
                   {
                       std::lock_guard lock(data_mutex);
                       for (const auto& [refresh, indexes] : state.issued_by_refresh) {
                           issued[refresh] = indexes.size();
                       }
                   }
                   return nlohmann::json{{"total", total},
                                         {"paths", paths},
                                         {"tokens_issued", issued},
                                         {"pending_faults", pending()},
                                         {"recent", recent}};
               }));
    server.Get("/_fake/token", json_route([this](const httplib::Request& req) {
                   std::lock_guard lock(data_mutex);
                   const auto token = validate_locked(req.get_param_value("access_token"));
                   if (!token) {
                       return nlohmann::json{{"valid", false}};
                   }
                   auto out = to_json(*token);
                   out["valid"] = true;
                   return out;
               }));
    server.Post("/_fake/shutdown", json_route([this](const httplib::Request&) {
                    std::function<void()> handler;
                    {
                        std::lock_guard lock(shutdown_mutex);
                        handler = shutdown_handler;
                    }
                    if (handler) {
                        handler();
                    }
                    return nlohmann::json{{"shutdown", true}};
                }));
}

// ---- OAuthTokenFake ---------------------------------------------------------------------------

OAuthTokenFake::OAuthTokenFake(Setup setup) : m_impl(std::make_unique<Impl>(std::move(setup))) {}

OAuthTokenFake::~OAuthTokenFake() { stop(); }

int OAuthTokenFake::start(int port) {
    auto& impl = *m_impl;
    if (impl.started) {
        throw std::logic_error("OAuthTokenFake::start called twice");
    }
    impl.started = true;
    return impl.listener.start(
        port, [this, &impl](AbortableServer& server) { impl.setup_routes(server, *this); },
        impl.setup.worker_threads);
}

void OAuthTokenFake::stop() {
    {
        std::lock_guard lock(m_impl->stop_mutex);
        m_impl->stopping = true;
    }
    m_impl->stop_cv.notify_all();
    m_impl->listener.stop();
}

int OAuthTokenFake::port() const { return m_impl->listener.port(); }

std::string OAuthTokenFake::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port());
}

std::string OAuthTokenFake::token_url() const { return base_url() + m_impl->setup.token_path; }

void OAuthTokenFake::add_account(OAuthAccount account) {
    std::lock_guard lock(m_impl->data_mutex);
    m_impl->add_account_locked(std::move(account));
}

void OAuthTokenFake::set_revoked(const std::string& refresh_token, bool revoked) {
    std::lock_guard lock(m_impl->data_mutex);
    m_impl->state.accounts.at(refresh_token).revoked = revoked;
}

void OAuthTokenFake::inject(Fault fault) {
    std::lock_guard lock(m_impl->fault_mutex);
    m_impl->faults.push_back(std::move(fault));
}

void OAuthTokenFake::clear_faults() {
    std::lock_guard lock(m_impl->fault_mutex);
    m_impl->faults.clear();
}

std::size_t OAuthTokenFake::pending_faults() const { return m_impl->pending(); }

std::size_t OAuthTokenFake::request_count(std::string_view path_prefix) const {
    std::lock_guard lock(m_impl->stats_mutex);
    std::size_t total = 0;
    for (auto it = m_impl->count_by_path.lower_bound(path_prefix);
         it != m_impl->count_by_path.end() && it->first.starts_with(path_prefix); ++it) {
        total += it->second;
    }
    return total;
}

std::vector<TokenRequest> OAuthTokenFake::requests() const {
    std::lock_guard lock(m_impl->stats_mutex);
    return {m_impl->recorded.begin(), m_impl->recorded.end()};
}

void OAuthTokenFake::reset_stats() {
    std::lock_guard lock(m_impl->stats_mutex);
    m_impl->recorded.clear();
    m_impl->count_by_path.clear();
}

std::size_t OAuthTokenFake::tokens_issued(const std::string& refresh_token) const {
    std::lock_guard lock(m_impl->data_mutex);
    const auto it = m_impl->state.issued_by_refresh.find(refresh_token);
    return it == m_impl->state.issued_by_refresh.end() ? 0 : it->second.size();
}

std::vector<IssuedToken> OAuthTokenFake::issued_tokens() const {
    std::lock_guard lock(m_impl->data_mutex);
    return m_impl->state.issued;
}

std::optional<IssuedToken> OAuthTokenFake::validate(const std::string& access_token) const {
    std::lock_guard lock(m_impl->data_mutex);
    return m_impl->validate_locked(access_token);
}

void OAuthTokenFake::set_clock_offset(std::chrono::milliseconds offset) {
    m_impl->clock_offset_ms = offset.count();
}

std::chrono::system_clock::time_point OAuthTokenFake::now() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(m_impl->now_ms()));
}

void OAuthTokenFake::set_shutdown_handler(std::function<void()> handler) {
    std::lock_guard lock(m_impl->shutdown_mutex);
    m_impl->shutdown_handler = std::move(handler);
}

} // namespace crmsync::fakes
