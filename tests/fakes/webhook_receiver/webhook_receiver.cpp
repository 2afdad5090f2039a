#include "tests/fakes/webhook_receiver/webhook_receiver.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_max_recorded_requests = 100'000;
constexpr std::size_t k_default_listed_requests = 100; // GET /_fake/requests without ?limit=
constexpr std::size_t k_control_threads = 2;
constexpr std::string_view k_ok_body = "{}";

// httplib stores the peer and local addresses among the request headers; they were not sent.
bool is_httplib_pseudo_header(std::string_view name) {
    return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
           name == "LOCAL_PORT";
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::optional<std::string> header_of(const httplib::Request& req, const std::string& name) {
    if (!req.has_header(name)) {
        return std::nullopt;
    }
    return req.get_header_value(name);
}

std::string error_body(std::string_view error, std::string_view detail) {
    return nlohmann::json{{"error", error}, {"detail", detail}}.dump();
}

std::int64_t to_ms(std::chrono::system_clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

nlohmann::json to_json(const ReceivedWebhook& r) {
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [name, value] : r.headers) {
        headers.push_back({name, value});
    }
    return {{"seq", r.seq},
            {"method", r.method},
            {"path", r.path},
            {"query", r.query},
            {"headers", headers},
            {"body", r.body},
            {"id", r.id},
            {"signature", signature_check_name(r.signature)},
            {"status", r.status},
            {"fault", r.fault ? fault_kind_name(*r.fault) : ""},
            {"received_at", format_iso_ms(to_ms(r.received_at))},
            {"remote_port", r.remote_port}};
}

} // namespace

std::optional<std::string> ReceivedWebhook::header(std::string_view name) const {
    const auto wanted = lower(name);
    for (const auto& [key, value] : headers) {
        if (key == wanted) {
            return value;
        }
    }
    return std::nullopt;
}

struct WebhookReceiver::Impl {
    explicit Impl(WebhookReceiverOptions opts) : options(std::move(opts)) {
        if (options.secret) {
            key = webhook_key(*options.secret);
        }
    }

    [[nodiscard]] std::int64_t now_ms() const;
    void setup_routes(AbortableServer& server);
    void setup_control_routes(AbortableServer& server);
    void handle(const httplib::Request& req, httplib::Response& res);
    [[nodiscard]] ReceivedWebhook make_record(const httplib::Request& req) const;
    std::uint64_t push_record(ReceivedWebhook record);
    void finish_record(std::uint64_t seq, int status, std::optional<FaultKind> fault);
    [[nodiscard]] std::uint64_t generation() const;
    /// False if the receiver went down or stopped during the sleep.
    bool sleep_unless_interrupted(std::chrono::milliseconds delay, std::uint64_t since);
    void unlisten_locked(); // Callers hold lifecycle_mutex.
    void listen_locked();   // Callers hold lifecycle_mutex.
    void cancel_revival();
    void go_down();
    void come_up();
    void go_down_for(std::chrono::milliseconds duration);
    template <typename Predicate>
    bool wait_records(std::chrono::milliseconds timeout, Predicate ready) const;
    [[nodiscard]] std::map<std::string, std::size_t> acknowledged_locked() const;

    WebhookReceiverOptions options;

    mutable std::mutex config_mutex;
    std::optional<std::string> key; // HMAC key bytes of the secret.
    std::chrono::milliseconds response_delay{0};

    FaultQueue<Fault> faults;

    mutable std::mutex records_mutex;
    mutable std::condition_variable records_cv;
    std::deque<ReceivedWebhook> records;
    std::uint64_t next_seq = 1;

    FakeClock clock;

    // Sleeping handlers watch the generation; going down or stopping bumps it.
    mutable std::mutex sleep_mutex;
    std::condition_variable sleep_cv;
    std::uint64_t listen_generation = 0;

    std::mutex lifecycle_mutex;
    HttpListener listener;
    int port = 0;
    bool started = false;
    bool stopped = false;

    std::mutex mode_mutex; // Serialises go_down, come_up, go_down_for and stop.
    std::mutex revival_mutex;
    std::condition_variable revival_cv;
    bool revival_cancelled = false;
    std::thread revival;

    HttpListener control;
    ShutdownHook shutdown_hook;
};

std::int64_t WebhookReceiver::Impl::now_ms() const { return clock.now_ms(); }

void WebhookReceiver::Impl::setup_routes(AbortableServer& server) {
    const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
        handle(req, res);
    };
    server.Post(".*", handler);
    server.Get(".*", handler);
    server.Put(".*", handler);
    server.Patch(".*", handler);
    server.Delete(".*", handler);
    server.Options(".*", handler);
    // httplib answers malformed requests itself (400, 413, ...) without calling a handler.
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            res.set_content(error_body("bad_request", "rejected by the HTTP layer"),
                            "application/json");
            const auto seq = push_record(make_record(req));
            finish_record(seq, res.status, std::nullopt);
            return httplib::Server::HandlerResponse::Handled;
        }));
}

ReceivedWebhook WebhookReceiver::Impl::make_record(const httplib::Request& req) const {
    ReceivedWebhook r;
    r.method = req.method;
    r.path = req.path;
    if (const auto q = req.target.find('?'); q != std::string::npos) {
        r.query = req.target.substr(q + 1);
    }
    for (const auto& [name, value] : req.headers) {
        if (!is_httplib_pseudo_header(name)) {
            r.headers.emplace_back(lower(name), value);
        }
    }
    r.body = req.body;
    r.id = req.get_header_value(options.id_header);
    {
        std::lock_guard lock(config_mutex);
        if (key) {
            r.signature = verify_webhook(*key, header_of(req, "webhook-id"),
                                         header_of(req, "webhook-timestamp"),
                                         header_of(req, "webhook-signature"), req.body,
                                         now_ms() / k_ms_per_second, options.timestamp_tolerance);
        }
    }
    r.received_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms()));
    r.remote_port = req.remote_port;
    return r;
}

void WebhookReceiver::Impl::handle(const httplib::Request& req, httplib::Response& res) {
    const auto since = generation();
    auto record = make_record(req);
    const auto signature = record.signature;
    const auto seq = push_record(std::move(record));

    const auto fault = faults.take(req.method, req.path);
    const auto kind = fault ? std::optional(fault->kind) : std::nullopt;
    const auto reset = [&] {
        AbortableServer::abort_current_connection();
        // A body keeps the error handler from recording the request a second time.
        res.status = 500;
        res.set_content(error_body("reset", "connection reset by the fake"), "application/json");
        finish_record(seq, 0, kind);
    };
    if (kind == FaultKind::reset) {
        reset();
        return;
    }
    auto delay = [this] {
        std::lock_guard lock(config_mutex);
        return response_delay;
    }();
    if (kind == FaultKind::slow) {
        delay += std::chrono::milliseconds(fault->delay_ms);
    }
    if (delay.count() > 0 && !sleep_unless_interrupted(delay, since)) {
        reset();
        return;
    }

    int status = 200;
    std::string body(k_ok_body);
    if (kind == FaultKind::status) {
        status = fault->status;
        body = error_body("injected_fault", "fault injected by the fake");
        if (fault->retry_after) {
            res.set_header("Retry-After", *fault->retry_after);
        }
    } else if (kind == FaultKind::malformed) {
        body = "<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>";
    } else if (req.method != "POST") {
        status = 405;
        body = error_body("method_not_allowed", "webhooks are delivered with POST");
        res.set_header("Allow", "POST");
    } else if (signature != SignatureCheck::not_checked && signature != SignatureCheck::valid) {
        status = 401;
        body = error_body("invalid_signature", signature_check_name(signature));
    }
    if (kind == FaultKind::truncate) {
        body.resize(body.size() / 2);
    }
    res.status = status;
    res.set_content(body, "application/json");
    finish_record(seq, status, kind);
}

std::uint64_t WebhookReceiver::Impl::push_record(ReceivedWebhook record) {
    std::lock_guard lock(records_mutex);
    record.seq = next_seq++;
    const auto seq = record.seq;
    records.push_back(std::move(record));
    if (records.size() > k_max_recorded_requests) {
        records.pop_front();
    }
    records_cv.notify_all();
    return seq;
}

void WebhookReceiver::Impl::finish_record(std::uint64_t seq, int status,
                                          std::optional<FaultKind> fault) {
    std::lock_guard lock(records_mutex);
    // Records are in seq order with no gaps, unless clear() or the cap removed this one.
    if (!records.empty() && seq >= records.front().seq) {
        const auto index = seq - records.front().seq;
        if (index < records.size()) {
            records[index].status = status;
            records[index].fault = fault;
            records[index].finished = true;
        }
    }
    records_cv.notify_all();
}

std::uint64_t WebhookReceiver::Impl::generation() const {
    std::lock_guard lock(sleep_mutex);
    return listen_generation;
}

bool WebhookReceiver::Impl::sleep_unless_interrupted(std::chrono::milliseconds delay,
                                                     std::uint64_t since) {
    std::unique_lock lock(sleep_mutex);
    return !sleep_cv.wait_for(lock, delay, [&] { return listen_generation != since; });
}

void WebhookReceiver::Impl::unlisten_locked() {
    {
        std::lock_guard lock(sleep_mutex);
        ++listen_generation;
    }
    sleep_cv.notify_all();
    listener.stop();
}

void WebhookReceiver::Impl::listen_locked() {
    if (!started || stopped || listener.running()) {
        return;
    }
    listener.start(
        port, [this](AbortableServer& server) { setup_routes(server); }, options.worker_threads);
}

void WebhookReceiver::Impl::cancel_revival() {
    {
        std::lock_guard lock(revival_mutex);
        revival_cancelled = true;
    }
    revival_cv.notify_all();
    if (revival.joinable()) {
        revival.join();
    }
}

void WebhookReceiver::Impl::go_down() {
    std::lock_guard mode(mode_mutex);
    cancel_revival();
    std::lock_guard lock(lifecycle_mutex);
    unlisten_locked();
}

void WebhookReceiver::Impl::come_up() {
    std::lock_guard mode(mode_mutex);
    cancel_revival();
    std::lock_guard lock(lifecycle_mutex);
    listen_locked();
}

void WebhookReceiver::Impl::go_down_for(std::chrono::milliseconds duration) {
    std::lock_guard mode(mode_mutex);
    cancel_revival();
    {
        std::lock_guard lock(lifecycle_mutex);
        unlisten_locked();
    }
    {
        std::lock_guard lock(revival_mutex);
        revival_cancelled = false;
    }
    revival = std::thread([this, duration] {
        {
            std::unique_lock lock(revival_mutex);
            if (revival_cv.wait_for(lock, duration, [this] { return revival_cancelled; })) {
                return;
            }
        }
        std::lock_guard lock(lifecycle_mutex);
        try {
            listen_locked();
        } catch (const std::exception&) {
            // The port was taken meanwhile; the receiver stays down, as is_up() reports.
        }
    });
}

template <typename Predicate>
bool WebhookReceiver::Impl::wait_records(std::chrono::milliseconds timeout, Predicate ready) const {
    std::unique_lock lock(records_mutex);
    return records_cv.wait_for(lock, timeout, [&] { return ready(); });
}

std::map<std::string, std::size_t> WebhookReceiver::Impl::acknowledged_locked() const {
    std::map<std::string, std::size_t> acknowledged;
    for (const auto& r : records) {
        if (!r.id.empty() && r.acknowledged()) {
            ++acknowledged[r.id];
        }
    }
    return acknowledged;
}

void WebhookReceiver::Impl::setup_control_routes(AbortableServer& server) {
    ControlRoutes routes(
        server, [](std::string_view message) { return error_body("bad_request", message); });
    routes.get("/_fake/stats", [this](const httplib::Request&) {
        nlohmann::json by_status = nlohmann::json::object();
        std::size_t total = 0;
        std::size_t acknowledged = 0;
        std::set<std::string> distinct;
        {
            std::lock_guard lock(records_mutex);
            total = records.size();
            for (const auto& r : records) {
                const auto key_text = std::to_string(r.status);
                by_status[key_text] = by_status.value(key_text, 0) + 1;
                if (!r.id.empty()) {
                    distinct.insert(r.id);
                }
            }
            acknowledged = acknowledged_locked().size();
        }
        std::int64_t delay_ms = 0;
        {
            std::lock_guard lock(config_mutex);
            delay_ms = response_delay.count();
        }
        return nlohmann::json{
            {"up", listener.running()},         {"total", total},
            {"by_status", by_status},           {"distinct_ids", distinct.size()},
            {"acknowledged_ids", acknowledged}, {"pending_faults", faults.pending()},
            {"response_delay_ms", delay_ms}};
    });
    routes.get("/_fake/requests", [this](const httplib::Request& req) {
        const auto limit = req.has_param("limit") ? std::stoul(req.get_param_value("limit"))
                                                  : k_default_listed_requests;
        nlohmann::json out = nlohmann::json::array();
        std::lock_guard lock(records_mutex);
        const auto skip = records.size() > limit ? records.size() - limit : 0;
        for (auto it = records.begin() + static_cast<std::ptrdiff_t>(skip); it != records.end();
             ++it) {
            out.push_back(to_json(*it));
        }
        return out;
    });
    routes.del("/_fake/requests", [this](const httplib::Request&) {
        std::lock_guard lock(records_mutex);
        records.clear();
        return nlohmann::json::object();
    });
    routes.get("/_fake/ids", [this](const httplib::Request&) {
        nlohmann::json order = nlohmann::json::array();
        nlohmann::json counts = nlohmann::json::object();
        std::lock_guard lock(records_mutex);
        for (const auto& r : records) {
            if (r.id.empty()) {
                continue;
            }
            if (!counts.contains(r.id)) {
                order.push_back(r.id);
            }
            counts[r.id] = counts.value(r.id, 0) + 1;
        }
        return nlohmann::json{
            {"distinct", order}, {"count", counts}, {"acknowledged", acknowledged_locked()}};
    });
    routes.faults<Fault>(faults, fault_from_json);
    routes.post("/_fake/down", [this](const httplib::Request& req) {
        if (req.has_param("for_ms")) {
            go_down_for(std::chrono::milliseconds(std::stoll(req.get_param_value("for_ms"))));
        } else {
            go_down();
        }
        return nlohmann::json{{"up", false}};
    });
    routes.post("/_fake/up", [this](const httplib::Request&) {
        come_up();
        return nlohmann::json{{"up", listener.running()}};
    });
    routes.post("/_fake/restore", [this](const httplib::Request&) {
        faults.clear();
        {
            std::lock_guard lock(config_mutex);
            response_delay = std::chrono::milliseconds(0);
        }
        come_up();
        return nlohmann::json{{"up", listener.running()}};
    });
    routes.post("/_fake/delay", [this](const httplib::Request& req) {
        const auto ms = std::stoll(req.get_param_value("ms"));
        std::lock_guard lock(config_mutex);
        response_delay = std::chrono::milliseconds(std::max<std::int64_t>(ms, 0));
        return nlohmann::json{{"response_delay_ms", response_delay.count()}};
    });
    routes.post("/_fake/secret", [this](const httplib::Request& req) {
        const auto json = nlohmann::json::parse(req.body);
        std::optional<std::string> fresh;
        if (json.contains("secret") && !json["secret"].is_null()) {
            fresh = webhook_key(json["secret"].get<std::string>());
        }
        std::lock_guard lock(config_mutex);
        key = std::move(fresh);
        return nlohmann::json{{"checking", key.has_value()}};
    });
    routes.clock(clock, format_iso_ms);
    routes.shutdown(shutdown_hook);
}

// ---- WebhookReceiver --------------------------------------------------------------------------

WebhookReceiver::WebhookReceiver(WebhookReceiverOptions options)
    : m_impl(std::make_unique<Impl>(std::move(options))) {}

WebhookReceiver::~WebhookReceiver() { stop(); }

int WebhookReceiver::start(int port) {
    auto& impl = *m_impl;
    std::lock_guard lock(impl.lifecycle_mutex);
    if (impl.started) {
        throw std::logic_error("WebhookReceiver::start called twice");
    }
    impl.port = impl.listener.start(
        port, [&impl](AbortableServer& server) { impl.setup_routes(server); },
        impl.options.worker_threads);
    impl.started = true;
    return impl.port;
}

void WebhookReceiver::stop() {
    auto& impl = *m_impl;
    {
        std::lock_guard mode(impl.mode_mutex);
        impl.cancel_revival();
        std::lock_guard lock(impl.lifecycle_mutex);
        impl.stopped = true;
        impl.unlisten_locked();
    }
    impl.control.stop();
}

int WebhookReceiver::port() const { return m_impl->port; }

std::string WebhookReceiver::base_url() const {
    return "http://127.0.0.1:" + std::to_string(m_impl->port);
}

void WebhookReceiver::go_down() { m_impl->go_down(); }

void WebhookReceiver::come_up() { m_impl->come_up(); }

void WebhookReceiver::go_down_for(std::chrono::milliseconds duration) {
    m_impl->go_down_for(duration);
}

bool WebhookReceiver::is_up() const { return m_impl->listener.running(); }

void WebhookReceiver::fail_next(int n, int status, std::optional<std::string> retry_after) {
    Fault fault;
    fault.kind = FaultKind::status;
    fault.status = status;
    fault.retry_after = std::move(retry_after);
    fault.count = n;
    inject(std::move(fault));
}

void WebhookReceiver::reset_next(int n) {
    Fault fault;
    fault.kind = FaultKind::reset;
    fault.count = n;
    inject(std::move(fault));
}

void WebhookReceiver::slow_next(int n, std::chrono::milliseconds delay) {
    Fault fault;
    fault.kind = FaultKind::slow;
    fault.delay_ms = static_cast<int>(delay.count());
    fault.count = n;
    inject(std::move(fault));
}

void WebhookReceiver::inject(Fault fault) {
    if (fault.count <= 0) {
        return;
    }
    m_impl->faults.push(std::move(fault));
}

void WebhookReceiver::clear_faults() { m_impl->faults.clear(); }

std::size_t WebhookReceiver::pending_faults() const { return m_impl->faults.pending(); }

void WebhookReceiver::set_response_delay(std::chrono::milliseconds delay) {
    std::lock_guard lock(m_impl->config_mutex);
    m_impl->response_delay = std::max(delay, std::chrono::milliseconds(0));
}

void WebhookReceiver::restore() {
    clear_faults();
    set_response_delay(std::chrono::milliseconds(0));
    m_impl->come_up();
}

void WebhookReceiver::set_secret(std::optional<std::string> secret) {
    std::optional<std::string> fresh;
    if (secret) {
        fresh = webhook_key(*secret);
    }
    std::lock_guard lock(m_impl->config_mutex);
    m_impl->key = std::move(fresh);
}

std::vector<ReceivedWebhook> WebhookReceiver::requests() const {
    std::lock_guard lock(m_impl->records_mutex);
    return {m_impl->records.begin(), m_impl->records.end()};
}

std::size_t WebhookReceiver::request_count() const {
    std::lock_guard lock(m_impl->records_mutex);
    return m_impl->records.size();
}

std::vector<std::string> WebhookReceiver::distinct_ids() const {
    std::lock_guard lock(m_impl->records_mutex);
    std::vector<std::string> ids;
    std::set<std::string> seen;
    for (const auto& r : m_impl->records) {
        if (!r.id.empty() && seen.insert(r.id).second) {
            ids.push_back(r.id);
        }
    }
    return ids;
}

std::size_t WebhookReceiver::count_by_id(const std::string& id) const {
    std::lock_guard lock(m_impl->records_mutex);
    return static_cast<std::size_t>(std::count_if(m_impl->records.begin(), m_impl->records.end(),
                                                  [&](const auto& r) { return r.id == id; }));
}

std::map<std::string, std::size_t> WebhookReceiver::acknowledged_ids() const {
    std::lock_guard lock(m_impl->records_mutex);
    return m_impl->acknowledged_locked();
}

bool WebhookReceiver::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
    return m_impl->wait_records(timeout, [&] {
        return static_cast<std::size_t>(
                   std::count_if(m_impl->records.begin(), m_impl->records.end(),
                                 [](const auto& r) { return r.finished; })) >= n;
    });
}

bool WebhookReceiver::wait_for_acknowledged(std::size_t n,
                                            std::chrono::milliseconds timeout) const {
    return m_impl->wait_records(timeout, [&] { return m_impl->acknowledged_locked().size() >= n; });
}

void WebhookReceiver::clear() {
    std::lock_guard lock(m_impl->records_mutex);
    m_impl->records.clear();
}

void WebhookReceiver::set_clock_offset(std::chrono::milliseconds offset) {
    m_impl->clock.set_offset(offset);
}

std::chrono::system_clock::time_point WebhookReceiver::now() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(m_impl->now_ms()));
}

int WebhookReceiver::start_control(int port) {
    auto& impl = *m_impl;
    return impl.control.start(
        port, [&impl](AbortableServer& server) { impl.setup_control_routes(server); },
        k_control_threads);
}

void WebhookReceiver::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

} // namespace crmsync::fakes
