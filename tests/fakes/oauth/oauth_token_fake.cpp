#include "tests/fakes/oauth/oauth_token_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/request_log.hpp"

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

    [[nodiscard]] std::int64_t now_ms() const { return clock.now_ms(); }

    void setup_routes(AbortableServer& server, OAuthTokenFake& fake);
    void setup_control_routes(AbortableServer& server);
    void serve(const httplib::Request& req, httplib::Response& res, OAuthTokenFake& fake);
    void record(const httplib::Request& req, TokenParams params, int status, std::string error,
                std::optional<FaultKind> fault);
    void finish(httplib::Response& res, int status, const std::string& body) const;
    void add_account_locked(OAuthAccount account);
    [[nodiscard]] std::optional<IssuedToken> validate_locked(const std::string& token) const;

    Setup setup;

    mutable std::mutex data_mutex;
    Ledger::State state;

    FaultQueue<Fault> faults;
    RequestLog<TokenRequest> request_log{k_max_recorded_requests}; // Keyed by path.
    FakeClock clock;
    StopFlag stop_flag;
    ShutdownHook shutdown_hook;

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
    const auto fault = faults.take(req.method, req.path);
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
        stop_flag.sleep_for(std::chrono::milliseconds(fault->delay_ms));
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

void OAuthTokenFake::Impl::record(const httplib::Request& req, TokenParams params, int status,
                                  std::string error, std::optional<FaultKind> fault) {
    TokenRequest r;
    r.method = req.method;
    r.path = req.path;
    r.query = query_of(req);
    r.params = std::move(params);
    r.status = status;
    r.error = std::move(error);
    r.fault = fault;
    r.at_ms = now_ms();
    r.remote_port = req.remote_port;
    const auto key = r.path;
    request_log.add(key, std::move(r));
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
    ControlRoutes routes(
        server, [](std::string_view message) { return error_json("bad_request", message); });
    routes.post("/_fake/accounts", [this](const httplib::Request& req) {
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
    });
    routes.post("/_fake/revoke", [this](const httplib::Request& req) {
        const auto token = req.get_param_value("refresh_token");
        const bool revoked = req.get_param_value("revoked") != "false";
        std::lock_guard lock(data_mutex);
        state.accounts.at(token).revoked = revoked;
        return nlohmann::json{{"revoked", revoked}};
    });
    routes.faults<Fault>(faults, fault_from_json);
    routes.clock(clock, format_iso_ms);
    routes.get("/_fake/stats", [this](const httplib::Request&) {
        nlohmann::json paths = nlohmann::json::object();
        nlohmann::json recent = nlohmann::json::array();
        std::size_t total = 0;
        for (const auto& [path, count] : request_log.counts()) {
            paths[path] = count;
            total += count;
        }
        for (const auto& r : request_log.recent(k_stats_recent)) {
            recent.push_back({{"method", r.method},
                              {"path", r.path},
                              {"status", r.status},
                              {"error", r.error},
                              {"fault", r.fault ? fault_kind_name(*r.fault) : ""}});
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
                              {"pending_faults", faults.pending()},
                              {"recent", recent}};
    });
    routes.get("/_fake/token", [this](const httplib::Request& req) {
        std::lock_guard lock(data_mutex);
        const auto token = validate_locked(req.get_param_value("access_token"));
        if (!token) {
            return nlohmann::json{{"valid", false}};
        }
        auto out = to_json(*token);
        out["valid"] = true;
        return out;
    });
    routes.shutdown(shutdown_hook);
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
    m_impl->stop_flag.raise();
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

void OAuthTokenFake::inject(Fault fault) { m_impl->faults.push(std::move(fault)); }

void OAuthTokenFake::clear_faults() { m_impl->faults.clear(); }

std::size_t OAuthTokenFake::pending_faults() const { return m_impl->faults.pending(); }

std::size_t OAuthTokenFake::request_count(std::string_view path_prefix) const {
    return m_impl->request_log.count_with_prefix(path_prefix);
}

std::vector<TokenRequest> OAuthTokenFake::requests() const { return m_impl->request_log.records(); }

void OAuthTokenFake::reset_stats() { m_impl->request_log.clear(); }

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
    m_impl->clock.set_offset(offset);
}

std::chrono::system_clock::time_point OAuthTokenFake::now() const { return m_impl->clock.now(); }

void OAuthTokenFake::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

} // namespace crmsync::fakes
