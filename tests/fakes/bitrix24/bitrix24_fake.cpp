#include "tests/fakes/bitrix24/bitrix24_fake.hpp"

#include "tests/fakes/bitrix24/portal.hpp"
#include "tests/fakes/bitrix24/rest_methods.hpp"
#include "tests/fakes/bitrix24/rest_params.hpp"
#include "tests/fakes/bitrix24/rest_time.hpp"
#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/json_writer.hpp"
#include "tests/fakes/common/request_log.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>

namespace crmsync::fakes {
namespace {

using bitrix24::CallResult;
using bitrix24::Params;

constexpr std::size_t k_max_batch_commands = 50; // §1.6
constexpr std::size_t k_max_recorded_requests = 20'000;
constexpr std::size_t k_max_recorded_body = 2048;
constexpr std::size_t k_stats_recent = 50;               // Requests listed by GET /_fake/stats.
constexpr std::int64_t k_operating_window_seconds = 600; // §1.7: ten one-minute buckets
constexpr std::int64_t k_us_per_second = 1'000'000;
constexpr std::size_t k_max_payload = std::size_t{16} * 1024 * 1024;
constexpr std::string_view k_content_type = "application/json; charset=utf-8";
constexpr std::string_view k_rest_prefix = "/rest/";
constexpr std::string_view k_json_suffix = ".json";
constexpr std::string_view k_batch = "batch";

struct Reply {
    int status = 200;
    std::string body;
    std::string error; ///< For the statistics: "error" of a failure.
};

// §1.7 system errors: code and text for the HTTP statuses a fault may name.
std::pair<std::string, std::string> default_error(int status) {
    switch (status) {
    case 503:
        // [S] issue b24-rest-docs#193: the real text, without the docs' old typo.
        return {"QUERY_LIMIT_EXCEEDED", "Too many requests"};
    case 429:
        return {"OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit"};
    case 401:
        return {"NO_AUTH_FOUND", "Wrong authorization data"};
    case 403:
        return {"ACCESS_DENIED", "REST API is available only on commercial plans"};
    default:
        return {"INTERNAL_SERVER_ERROR", "Internal server error"};
    }
}

std::string default_description(std::string_view code) {
    static const std::map<std::string_view, std::string_view> k_texts{
        {"QUERY_LIMIT_EXCEEDED", "Too many requests"},
        {"OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit"},
        {"NO_AUTH_FOUND", "Wrong authorization data"},
        {"expired_token", "The access token provided has expired"},
        {"insufficient_scope", "The request requires higher privileges than provided by the "
                               "access token"},
        {"ACCESS_DENIED", "REST API is available only on commercial plans"},
        {"OVERLOAD_LIMIT", "REST API is blocked due to overload"},
        {"INTERNAL_SERVER_ERROR", "Internal server error"},
        {"ERROR_UNEXPECTED_ANSWER", "Server returned an unexpected response"},
        {"PORTAL_DELETED", "Portal was deleted"},
        {"INVALID_REQUEST", "Https required"},
    };
    const auto it = k_texts.find(code);
    return it == k_texts.end() ? std::string(code) : std::string(it->second);
}

std::string error_body(std::string_view error, std::string_view description) {
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("error").str(error);
    w.key("error_description").str(description);
    w.end_object();
    return body;
}

Reply error_reply(int status, std::string error, std::string_view description) {
    auto body = error_body(error, description);
    return {status, std::move(body), std::move(error)};
}

std::string to_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

// Method names may end in ".json" (§1.1). [U] Case-insensitivity is not documented; PHP
// portals lower-case the name before the lookup, so the fake does too.
std::string normalize_method(std::string_view name) {
    auto method = to_lower(name);
    if (method.ends_with(k_json_suffix)) {
        method.resize(method.size() - k_json_suffix.size());
    }
    return method;
}

struct Route {
    std::string rest_method;
    std::optional<std::string> user_id; ///< Set for the webhook form.
    std::optional<std::string> code;
};

// "/rest/{user}/{code}/{method}" or "/rest/{method}"; nullopt for other shapes.
std::optional<Route> parse_route(std::string_view path) {
    if (!path.starts_with(k_rest_prefix)) {
        return std::nullopt;
    }
    path.remove_prefix(k_rest_prefix.size());
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            parts.push_back(path.substr(start, i - start));
            start = i + 1;
        }
    }
    Route route;
    if (parts.size() == 3) {
        route.user_id = std::string(parts[0]);
        route.code = std::string(parts[1]);
        route.rest_method = normalize_method(parts[2]);
    } else if (parts.size() == 1) {
        route.rest_method = normalize_method(parts[0]);
    } else {
        return std::nullopt;
    }
    return route;
}

std::int64_t history_end_of(const Bitrix24Options& options) {
    using std::chrono::duration_cast;
    const auto end = options.history_end.value_or(std::chrono::system_clock::now());
    return duration_cast<std::chrono::seconds>(end.time_since_epoch()).count();
}

// The `time` block of §1.2. Seconds as floats with microseconds, dates in the portal's zone.
struct Timing {
    std::int64_t start_us = 0;
    std::int64_t finish_us = 0;
    std::int64_t processing_us = 0;
    double operating = 0;
    std::int64_t operating_reset_at = 0;
};

void write_time(JsonWriter& w, const Timing& t, int offset_minutes) {
    const auto seconds = [](std::int64_t us) {
        return static_cast<double>(us) / static_cast<double>(k_us_per_second);
    };
    w.begin_object();
    w.key("start").decimal(seconds(t.start_us), 6);
    w.key("finish").decimal(seconds(t.finish_us), 6);
    w.key("duration").decimal(seconds(t.finish_us - t.start_us), 6);
    w.key("processing").decimal(seconds(t.processing_us), 6);
    w.key("date_start").str(bitrix24::format_time(t.start_us / k_us_per_second, offset_minutes));
    w.key("date_finish").str(bitrix24::format_time(t.finish_us / k_us_per_second, offset_minutes));
    w.key("operating_reset_at").integer(t.operating_reset_at);
    w.key("operating").decimal(t.operating, 6);
    w.end_object();
}

// Navigates a batch reference's path ([FIELD][0]...) inside an earlier sub-call's result.
std::string reference_value(const nlohmann::json& result, const std::vector<std::string>& path) {
    const nlohmann::json* node = &result;
    for (const auto& segment : path) {
        if (node->is_object() && node->contains(segment)) {
            node = &(*node)[segment];
        } else if (node->is_array() && !segment.empty() &&
                   std::all_of(segment.begin(), segment.end(),
                               [](char c) { return c >= '0' && c <= '9'; }) &&
                   std::stoull(segment) < node->size()) {
            node = &(*node)[std::stoull(segment)];
        } else {
            return "";
        }
    }
    if (node->is_string()) {
        return node->get<std::string>();
    }
    if (node->is_boolean()) {
        return node->get<bool>() ? "1" : "";
    }
    if (node->is_number()) {
        return node->dump();
    }
    return ""; // [U] Arrays and objects: real portals expand them; no client here needs it.
}

} // namespace

Bitrix24Fault bitrix24_fault_from_json(const nlohmann::json& json) {
    Bitrix24Fault fault;
    assign_fault_action(fault, read_fault_json(json, [&fault](const nlohmann::json& j) {
                            fault.rest_method =
                                normalize_method(j.value("rest_method", std::string()));
                            fault.error = j.value("error", std::string());
                            fault.error_description = j.value("error_description", std::string());
                        }));
    return fault;
}

struct Bitrix24Fake::Impl {
    explicit Impl(Bitrix24Options opts)
        : options(std::move(opts)), portal(options, history_end_of(options)) {
        bucket_on = options.rate_limit;
    }

    [[nodiscard]] std::int64_t now_us() const { return clock.now_us(); }
    [[nodiscard]] std::int64_t now_ms() const { return clock.now_ms(); }
    [[nodiscard]] bitrix24::MethodContext context() const {
        return {options.utc_offset_minutes, options.history_numbers_as_strings, &raw_history};
    }

    void setup_routes(AbortableServer& server);
    void setup_control_routes(AbortableServer& server);
    void serve(const httplib::Request& req, httplib::Response& res);
    [[nodiscard]] Params request_params(const httplib::Request& req) const;
    [[nodiscard]] bool authorized(const Route& route, const Params& params) const;
    bool admit();
    Reply run_method(const std::string& method, const Params& params, std::int64_t start_us);
    Reply run_batch(const Params& params, std::int64_t start_us);
    CallResult call(const std::string& method, const Params& params, Timing& timing);
    Timing account(const std::string& method, std::int64_t start_us, std::int64_t processing_us);
    [[nodiscard]] Bitrix24Fault resolve(Bitrix24Fault fault) const;

    std::optional<Bitrix24Fault> take_fault(const std::string& method, bool sub_call);
    void record(const httplib::Request& req, const std::string& rest_method, const Reply& reply,
                std::optional<Bitrix24FaultKind> fault);
    void count_call(const std::string& method);
    void finish(httplib::Response& res, const Reply& reply) const;

    Bitrix24Options options;

    mutable std::shared_mutex data_mutex;
    bitrix24::Portal portal;
    std::map<std::int64_t, bitrix24::RawHistoryField> raw_history; // under data_mutex

    FaultQueue<Bitrix24Fault> faults;
    mutable std::mutex page_faults_mutex;
    std::multimap<std::int64_t, Bitrix24Fault> page_faults; // by filter >ID
    std::optional<CallResult> take_page_fault(const std::string& method, const Params& params);

    std::mutex bucket_mutex;
    bool bucket_on = false;
    double bucket_level = 0;
    std::int64_t bucket_last_us = 0;

    std::mutex operating_mutex;
    struct Operating {
        double seconds = 0;
        std::int64_t reset_at = 0;
    };
    std::map<std::string, Operating, std::less<>> operating;

    RequestLog<Bitrix24Request> request_log{k_max_recorded_requests}; // Keyed by REST method.
    mutable std::mutex calls_mutex;
    std::map<std::string, std::size_t, std::less<>> call_counts;

    FakeClock clock;
    StopFlag stop_flag;
    ShutdownHook shutdown_hook;
    HttpListener listener;
    bool started = false;
};

Params Bitrix24Fake::Impl::request_params(const httplib::Request& req) const {
    Params params = Params::object();
    if (const auto q = req.target.find('?'); q != std::string::npos) {
        bitrix24::merge_params(params, bitrix24::parse_php_query(req.target.substr(q + 1)));
    }
    if (req.body.empty()) {
        return params;
    }
    const auto type = to_lower(req.get_header_value("Content-Type"));
    if (type.find("json") != std::string::npos) {
        // [U] A body that is not a JSON object is read as no parameters, as PHP's json_decode
        // failing would leave them; the method then reports what is missing.
        const auto body = Params::parse(req.body, nullptr, false);
        bitrix24::merge_params(params, body);
    } else if (type.find("application/x-www-form-urlencoded") != std::string::npos) {
        bitrix24::merge_params(params, bitrix24::parse_php_query(req.body));
    }
    return params;
}

bool Bitrix24Fake::Impl::authorized(const Route& route, const Params& params) const {
    if (route.user_id && route.code) {
        return *route.user_id == std::to_string(options.user_id) &&
               *route.code == options.webhook_code;
    }
    const auto* token = bitrix24::find_param(params, "auth");
    return !options.oauth_token.empty() && token != nullptr && token->is_string() &&
           token->get<std::string>() == options.oauth_token;
}

// §1.7 leaky bucket. [U] Whether refused requests also fill the bucket is not documented;
// here they do not, so a client that backs off recovers at the drain rate.
bool Bitrix24Fake::Impl::admit() {
    std::lock_guard lock(bucket_mutex);
    if (!bucket_on) {
        return true;
    }
    const auto now = now_us();
    if (bucket_last_us != 0 && now > bucket_last_us) {
        const auto drained = static_cast<double>(now - bucket_last_us) /
                             static_cast<double>(k_us_per_second) * options.rate_limit_per_second;
        bucket_level = std::max(0.0, bucket_level - drained);
    }
    bucket_last_us = std::max(bucket_last_us, now);
    if (bucket_level + 1 > options.rate_limit_burst) {
        return false;
    }
    bucket_level += 1;
    return true;
}

Timing Bitrix24Fake::Impl::account(const std::string& method, std::int64_t start_us,
                                   std::int64_t processing_us) {
    Timing t;
    t.start_us = start_us;
    t.processing_us = processing_us;
    t.finish_us = std::max(now_us(), start_us + processing_us);
    const auto now_s = t.finish_us / k_us_per_second;
    std::lock_guard lock(operating_mutex);
    auto& op = operating[method];
    if (now_s >= op.reset_at) {
        op.seconds = 0;
        op.reset_at = now_s + k_operating_window_seconds;
    }
    // §1.6: the outer batch call is not counted in `operating`, each sub-call is.
    if (method != k_batch) {
        op.seconds += static_cast<double>(processing_us) / static_cast<double>(k_us_per_second);
    }
    t.operating = op.seconds;
    t.operating_reset_at = op.reset_at;
    return t;
}

std::optional<CallResult> Bitrix24Fake::Impl::take_page_fault(const std::string& method,
                                                              const Params& params) {
    if (method != "crm.stagehistory.list") {
        return std::nullopt;
    }
    std::lock_guard lock(page_faults_mutex);
    if (page_faults.empty()) {
        return std::nullopt;
    }
    const auto* filter = bitrix24::find_param(params, "filter");
    const auto* after =
        filter != nullptr && filter->is_object() ? bitrix24::find_param(*filter, ">ID") : nullptr;
    if (after == nullptr || !after->is_primitive()) {
        return std::nullopt;
    }
    const auto it = page_faults.find(bitrix24::php_intval(*after));
    if (it == page_faults.end()) {
        return std::nullopt;
    }
    const auto fault = resolve(it->second);
    if (--it->second.count <= 0) {
        page_faults.erase(it);
    }
    return bitrix24::failure(fault.status, fault.error, fault.error_description);
}

CallResult Bitrix24Fake::Impl::call(const std::string& method, const Params& params,
                                    Timing& timing) {
    count_call(method);
    if (auto fault = take_page_fault(method, params)) {
        return *fault;
    }
    const auto start = now_us();
    const auto steady = std::chrono::steady_clock::now();
    CallResult result;
    {
        std::shared_lock lock(data_mutex);
        result = bitrix24::call_method(portal, method, params, context());
    }
    const auto processing = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - steady)
                                .count();
    timing = account(method, start, processing);
    return result;
}

Reply Bitrix24Fake::Impl::run_method(const std::string& method, const Params& params,
                                     std::int64_t start_us) {
    Timing timing;
    const auto result = call(method, params, timing);
    if (result.failed) {
        return error_reply(result.status, result.error, result.error_description);
    }
    timing.start_us = start_us;
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("result").raw(result.result);
    if (result.next) {
        w.key("next").integer(*result.next);
    }
    if (result.total) {
        w.key("total").integer(*result.total);
    }
    w.key("time");
    write_time(w, timing, options.utc_offset_minutes);
    w.end_object();
    return {200, std::move(body), ""};
}

// §1.6. Sub-call parameters use query syntax; `$result[key][FIELD]...` inside a value is
// replaced by that field of an earlier sub-call's result, after parsing, as Bitrix24 does.
Reply Bitrix24Fake::Impl::run_batch(const Params& params, std::int64_t start_us) {
    count_call(std::string(k_batch));
    std::vector<std::pair<std::string, std::string>> commands;
    if (const auto* cmd = bitrix24::find_param(params, "cmd");
        cmd != nullptr && (cmd->is_object() || cmd->is_array())) {
        std::size_t index = 0;
        for (const auto& item : cmd->items()) {
            const auto key = cmd->is_array() ? std::to_string(index) : item.key();
            ++index;
            commands.emplace_back(key, item.value().is_string() ? item.value().get<std::string>()
                                                                : std::string());
        }
    }
    if (commands.size() > k_max_batch_commands) {
        return error_reply(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded");
    }
    const auto* halt_param = bitrix24::find_param(params, "halt");
    const bool halt = halt_param != nullptr && bitrix24::php_intval(*halt_param) != 0;

    std::vector<std::pair<std::string, std::string>> results;
    std::vector<std::pair<std::string, std::string>> errors;
    std::vector<std::pair<std::string, std::string>> totals;
    std::vector<std::pair<std::string, std::string>> nexts;
    std::vector<std::pair<std::string, std::string>> times;
    std::map<std::string, nlohmann::json> parsed_results;

    const auto substitute = [&](Params& node, auto& self) -> void {
        if (node.is_object() || node.is_array()) {
            for (auto& child : node) {
                self(child, self);
            }
            return;
        }
        if (!node.is_string()) {
            return;
        }
        const auto text = node.get<std::string>();
        static constexpr std::string_view k_marker = "$result[";
        std::string out;
        std::size_t pos = 0;
        while (pos < text.size()) {
            const auto found = text.find(k_marker, pos);
            if (found == std::string::npos) {
                break;
            }
            out += text.substr(pos, found - pos);
            auto cursor = found + k_marker.size() - 1;
            std::vector<std::string> path;
            while (cursor < text.size() && text[cursor] == '[') {
                const auto close = text.find(']', cursor);
                if (close == std::string::npos) {
                    break;
                }
                path.push_back(text.substr(cursor + 1, close - cursor - 1));
                cursor = close + 1;
            }
            if (path.empty()) {
                out += k_marker;
                pos = found + k_marker.size();
                continue;
            }
            const auto key = path.front();
            path.erase(path.begin());
            auto it = parsed_results.find(key);
            if (it == parsed_results.end()) {
                for (const auto& [k, json] : results) {
                    if (k == key) {
                        it =
                            parsed_results.emplace(key, nlohmann::json::parse(json, nullptr, false))
                                .first;
                        break;
                    }
                }
            }
            if (it != parsed_results.end()) {
                out += reference_value(it->second, path);
            }
            pos = cursor;
        }
        out += text.substr(std::min(pos, text.size()));
        node = out;
    };

    for (const auto& [key, command] : commands) {
        const auto question = command.find('?');
        const auto method = normalize_method(command.substr(0, question));
        auto sub_params = question == std::string::npos
                              ? Params::object()
                              : bitrix24::parse_php_query(command.substr(question + 1));
        substitute(sub_params, substitute);
        CallResult result;
        Timing timing;
        if (method == k_batch) {
            count_call(method);
            result = bitrix24::failure(405, "ERROR_BATCH_METHOD_NOT_ALLOWED",
                                       "Method is not allowed for batch usage");
        } else if (auto fault = take_fault(method, true)) {
            count_call(method);
            const auto resolved = resolve(*fault);
            result = bitrix24::failure(resolved.status, resolved.error, resolved.error_description);
        } else {
            result = call(method, sub_params, timing);
        }
        if (result.failed) {
            errors.emplace_back(key, error_body(result.error, result.error_description));
            if (halt) {
                break;
            }
            continue;
        }
        results.emplace_back(key, result.result);
        if (result.total) {
            totals.emplace_back(key, std::to_string(*result.total));
        }
        if (result.next) {
            nexts.emplace_back(key, std::to_string(*result.next));
        }
        std::string time;
        JsonWriter tw(time);
        write_time(tw, timing, options.utc_offset_minutes);
        times.emplace_back(key, std::move(time));
    }

    const auto timing = account(std::string(k_batch), start_us, now_us() - start_us);
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("result").begin_object();
    w.key("result").raw(bitrix24::php_array_json(results));
    w.key("result_error").raw(bitrix24::php_array_json(errors));
    w.key("result_total").raw(bitrix24::php_array_json(totals));
    w.key("result_next").raw(bitrix24::php_array_json(nexts));
    w.key("result_time").raw(bitrix24::php_array_json(times));
    w.end_object();
    w.key("time");
    write_time(w, timing, options.utc_offset_minutes);
    w.end_object();
    return {200, std::move(body), ""};
}

Bitrix24Fault Bitrix24Fake::Impl::resolve(Bitrix24Fault fault) const {
    if (fault.error.empty()) {
        auto [code, text] = default_error(fault.status);
        fault.error = std::move(code);
        if (fault.error_description.empty()) {
            fault.error_description = std::move(text);
        }
    }
    if (fault.error_description.empty()) {
        fault.error_description = default_description(fault.error);
    }
    return fault;
}

std::optional<Bitrix24Fault> Bitrix24Fake::Impl::take_fault(const std::string& method,
                                                            bool sub_call) {
    return faults.take([&](const Bitrix24Fault& f) {
        return sub_call ? f.kind == Bitrix24FaultKind::status && !f.rest_method.empty() &&
                              f.rest_method != k_batch && f.rest_method == method
                        : f.rest_method.empty() || f.rest_method == method;
    });
}

void Bitrix24Fake::Impl::count_call(const std::string& method) {
    std::lock_guard lock(calls_mutex);
    ++call_counts[method];
}

void Bitrix24Fake::Impl::record(const httplib::Request& req, const std::string& rest_method,
                                const Reply& reply, std::optional<Bitrix24FaultKind> fault) {
    Bitrix24Request r;
    r.http_method = req.method;
    r.path = req.path;
    r.rest_method = rest_method;
    r.query = query_of(req);
    r.body = req.body.substr(0, k_max_recorded_body);
    r.status = reply.status;
    r.error = reply.error;
    r.fault = fault;
    r.at_ms = now_ms();
    r.remote_port = req.remote_port;
    request_log.add(rest_method, std::move(r));
}

void Bitrix24Fake::Impl::finish(httplib::Response& res, const Reply& reply) const {
    res.status = reply.status;
    res.set_header("Date", format_http_date(now_ms()));
    res.set_content(reply.body, std::string(k_content_type));
}

void Bitrix24Fake::Impl::serve(const httplib::Request& req, httplib::Response& res) {
    const auto start_us = now_us();
    const auto route = parse_route(req.path);
    const auto rest_method = route ? route->rest_method : std::string();
    const auto fault = take_fault(rest_method, false);
    const auto kind = fault ? std::optional(fault->kind) : std::nullopt;
    if (kind == Bitrix24FaultKind::reset) {
        AbortableServer::abort_current_connection();
        Reply reply = error_reply(500, "INTERNAL_SERVER_ERROR", "connection reset by the fake");
        finish(res, reply);
        reply.status = 0;
        record(req, rest_method, reply, kind);
        return;
    }
    Reply reply;
    if (kind == Bitrix24FaultKind::status) {
        const auto resolved = resolve(*fault);
        reply = error_reply(resolved.status, resolved.error, resolved.error_description);
        if (resolved.retry_after) {
            res.set_header("Retry-After", *resolved.retry_after);
        }
    } else if (kind == Bitrix24FaultKind::malformed) {
        reply = {200, "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", ""};
    } else {
        if (kind == Bitrix24FaultKind::slow) {
            stop_flag.sleep_for(std::chrono::milliseconds(fault->delay_ms));
        }
        const auto params = request_params(req);
        if (!route || !authorized(*route, params)) {
            reply = error_reply(401, "NO_AUTH_FOUND", "Wrong authorization data");
        } else if (!admit()) {
            // [U] Authentication comes first, so a bad webhook does not drain the bucket; a
            // batch is one request for the bucket, whatever its length (the reason it exists).
            reply = error_reply(503, "QUERY_LIMIT_EXCEEDED", "Too many requests");
        } else if (rest_method == k_batch) {
            reply = run_batch(params, start_us);
        } else {
            reply = run_method(rest_method, params, start_us);
        }
        if (kind == Bitrix24FaultKind::truncate) {
            reply.body.resize(reply.body.size() / 2);
        }
    }
    finish(res, reply);
    record(req, rest_method, reply, kind);
}

void Bitrix24Fake::Impl::setup_routes(AbortableServer& server) {
    const std::string rest = "/rest/.*";
    server.Get(rest, [this](const auto& req, auto& res) { serve(req, res); });
    server.Post(rest, [this](const auto& req, auto& res) { serve(req, res); });

    // Unmatched routes and httplib's own 4xx answers get a JSON body and a Date header too.
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
            if (!res.has_header("Date")) {
                res.set_header("Date", format_http_date(now_ms()));
            }
            if (!res.body.empty()) {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            const auto reply = error_reply(res.status, res.status == 404 ? "NOT_FOUND" : "ERROR",
                                           res.status == 404 ? "no such page" : "request failed");
            res.set_content(reply.body, std::string(k_content_type));
            if (!req.path.starts_with("/_fake/")) {
                record(req, "", reply, std::nullopt);
            }
            return httplib::Server::HandlerResponse::Handled;
        }));
    if (options.control_endpoints) {
        setup_control_routes(server);
    }
}

namespace {

nlohmann::json entry_json(const Bitrix24HistoryEntry& e) {
    return {{"ID", e.id},
            {"TYPE_ID", e.type_id},
            {"OWNER_ID", e.owner_id},
            {"CREATED_TIME", e.created},
            {"CATEGORY_ID", e.category_id},
            {"STAGE_SEMANTIC_ID", std::string(1, e.semantic_id)},
            {"STAGE_ID", e.stage_id}};
}

nlohmann::json stage_json(const Bitrix24Stage& s) {
    return {{"ID", s.id},     {"ENTITY_ID", s.entity_id}, {"STATUS_ID", s.status_id},
            {"NAME", s.name}, {"SORT", s.sort},           {"CATEGORY_ID", s.category_id}};
}

Bitrix24Semantics semantics_from(const std::string& name) {
    if (name == "process") {
        return Bitrix24Semantics::process;
    }
    if (name == "success") {
        return Bitrix24Semantics::success;
    }
    if (name == "failure") {
        return Bitrix24Semantics::failure;
    }
    if (name == "apology") {
        return Bitrix24Semantics::apology;
    }
    throw std::invalid_argument("unknown semantics '" + name + "'");
}

} // namespace

void Bitrix24Fake::Impl::setup_control_routes(AbortableServer& server) {
    ControlRoutes routes(
        server,
        [this](httplib::Response& res, int status, const std::string& body) {
            finish(res, Reply{status, body, ""});
        },
        [](std::string_view message) { return error_body("bad_request", message); });
    const auto body_json = [](const httplib::Request& req) {
        return req.body.empty() ? nlohmann::json::object() : nlohmann::json::parse(req.body);
    };
    const auto now_s = [this] { return now_ms() / 1000; };
    routes.faults<Bitrix24Fault>(faults, bitrix24_fault_from_json);
    routes.post("/_fake/add_history", [this, now_s](const httplib::Request& req) {
        const auto n = req.has_param("n") ? std::stoul(req.get_param_value("n")) : 1UL;
        std::vector<Bitrix24HistoryEntry> added;
        {
            std::unique_lock lock(data_mutex);
            added = portal.add_history(n, now_s());
        }
        auto rows = nlohmann::json::array();
        for (const auto& e : added) {
            rows.push_back(entry_json(e));
        }
        return nlohmann::json{{"added", rows}};
    });
    routes.post("/_fake/move_deal", [this, body_json, now_s](const httplib::Request& req) {
        const auto json = body_json(req);
        std::unique_lock lock(data_mutex);
        return entry_json(portal.move_deal(json.at("deal_id").get<std::int64_t>(),
                                           json.at("status_id").get<std::string>(), now_s()));
    });
    routes.post("/_fake/stages/add", [this, body_json](const httplib::Request& req) {
        const auto json = body_json(req);
        Bitrix24StageSpec spec;
        spec.code = json.value("code", std::string());
        spec.name = json.at("name").get<std::string>();
        spec.sort = json.value("sort", 10);
        spec.semantics = semantics_from(json.value("semantics", std::string("process")));
        spec.color = json.value("color", std::string("#ACE9FB"));
        spec.system = json.value("system", false);
        std::unique_lock lock(data_mutex);
        return stage_json(portal.add_stage(json.value("category_id", 0), std::move(spec)));
    });
    routes.post("/_fake/stages/rename", [this, body_json](const httplib::Request& req) {
        const auto json = body_json(req);
        std::unique_lock lock(data_mutex);
        return nlohmann::json{{"found", portal.rename_stage(json.at("status_id").get<std::string>(),
                                                            json.at("name").get<std::string>())}};
    });
    routes.post("/_fake/stages/resort", [this, body_json](const httplib::Request& req) {
        const auto json = body_json(req);
        std::unique_lock lock(data_mutex);
        return nlohmann::json{{"found", portal.resort_stage(json.at("status_id").get<std::string>(),
                                                            json.at("sort").get<int>())}};
    });
    routes.post("/_fake/stages/delete", [this, body_json](const httplib::Request& req) {
        const auto json = body_json(req);
        std::unique_lock lock(data_mutex);
        return nlohmann::json{
            {"found", portal.delete_stage(json.at("status_id").get<std::string>())}};
    });
    routes.post("/_fake/rate_limit", [this](const httplib::Request& req) {
        const auto on = req.get_param_value("on");
        if (on != "true" && on != "false" && on != "on" && on != "off") {
            throw std::invalid_argument("on must be true|false|on|off");
        }
        const bool enable = on == "true" || on == "on";
        {
            std::lock_guard lock(bucket_mutex);
            bucket_on = enable;
            bucket_level = 0;
            bucket_last_us = 0;
        }
        return nlohmann::json{{"rate_limit", enable}};
    });
    routes.clock(clock, [this](std::int64_t now) {
        return bitrix24::format_time(now / 1000, options.utc_offset_minutes);
    });
    routes.get("/_fake/stats", [this](const httplib::Request&) {
        nlohmann::json out;
        std::size_t total = 0;
        out["requests"] = nlohmann::json::object();
        for (const auto& [method, count] : request_log.counts()) {
            out["requests"][method.empty() ? "(none)" : method] = count;
            total += count;
        }
        out["total"] = total;
        out["calls"] = nlohmann::json::object();
        {
            std::lock_guard lock(calls_mutex);
            for (const auto& [method, count] : call_counts) {
                out["calls"][method.empty() ? "(none)" : method] = count;
            }
        }
        auto recent = nlohmann::json::array();
        for (const auto& r : request_log.recent(k_stats_recent)) {
            recent.push_back({{"http_method", r.http_method},
                              {"rest_method", r.rest_method},
                              {"query", r.query},
                              {"status", r.status},
                              {"error", r.error},
                              {"fault", r.fault ? fault_kind_name(*r.fault) : ""}});
        }
        out["recent"] = std::move(recent);
        out["pending_faults"] = faults.pending();
        {
            std::shared_lock lock(data_mutex);
            out["history_rows"] = portal.history().size();
            out["last_history_id"] = portal.history().empty() ? 0 : portal.history().back().id;
            out["deals"] = portal.deal_count();
        }
        {
            std::lock_guard lock(bucket_mutex);
            out["rate_limit"] = bucket_on;
        }
        return out;
    });
    routes.shutdown(shutdown_hook);
}

// ---- Bitrix24Fake -----------------------------------------------------------------------------

Bitrix24Fake::Bitrix24Fake(Bitrix24Options options)
    : m_impl(std::make_unique<Impl>(std::move(options))) {}

Bitrix24Fake::~Bitrix24Fake() { stop(); }

int Bitrix24Fake::start(int port) {
    auto& impl = *m_impl;
    if (impl.started) {
        throw std::logic_error("Bitrix24Fake::start called twice");
    }
    impl.started = true;
    return impl.listener.start(
        port, [&impl](AbortableServer& server) { impl.setup_routes(server); },
        impl.options.worker_threads, k_max_payload);
}

void Bitrix24Fake::stop() {
    m_impl->stop_flag.raise();
    m_impl->listener.stop();
}

int Bitrix24Fake::port() const { return m_impl->listener.port(); }

std::string Bitrix24Fake::base_url() const {
    return host_url() + "/rest/" + std::to_string(m_impl->options.user_id) + "/" +
           m_impl->options.webhook_code + "/";
}

std::string Bitrix24Fake::host_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

const Bitrix24Options& Bitrix24Fake::options() const { return m_impl->options; }

std::vector<Bitrix24Category> Bitrix24Fake::categories() const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->portal.categories();
}

std::vector<Bitrix24Stage> Bitrix24Fake::stages() const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->portal.deal_stages();
}

std::optional<Bitrix24Stage> Bitrix24Fake::stage(const std::string& status_id) const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->portal.deal_stage(status_id);
}

std::vector<Bitrix24HistoryEntry> Bitrix24Fake::history() const {
    std::shared_lock lock(m_impl->data_mutex);
    std::vector<Bitrix24HistoryEntry> out;
    out.reserve(m_impl->portal.history().size());
    for (const auto& row : m_impl->portal.history()) {
        out.push_back(m_impl->portal.entry(row));
    }
    return out;
}

std::size_t Bitrix24Fake::history_size() const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->portal.history().size();
}

std::int64_t Bitrix24Fake::last_history_id() const {
    std::shared_lock lock(m_impl->data_mutex);
    const auto& rows = m_impl->portal.history();
    return rows.empty() ? 0 : rows.back().id;
}

std::size_t Bitrix24Fake::deal_count() const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->portal.deal_count();
}

std::optional<Bitrix24Deal> Bitrix24Fake::deal(std::int64_t id) const {
    std::shared_lock lock(m_impl->data_mutex);
    if (m_impl->portal.deal(id) == nullptr) {
        return std::nullopt;
    }
    return m_impl->portal.deal_info(id);
}

std::vector<Bitrix24HistoryEntry> Bitrix24Fake::add_history(std::size_t n) {
    const auto now = m_impl->now_ms() / 1000;
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->portal.add_history(n, now);
}

void Bitrix24Fake::send_history_field_raw(std::int64_t history_id, std::string field,
                                          std::string json) {
    std::unique_lock lock(m_impl->data_mutex);
    m_impl->raw_history[history_id] = {std::move(field), std::move(json)};
}

Bitrix24HistoryEntry Bitrix24Fake::move_deal(std::int64_t deal_id, const std::string& status_id) {
    const auto now = m_impl->now_ms() / 1000;
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->portal.move_deal(deal_id, status_id, now);
}

bool Bitrix24Fake::rename_stage(const std::string& status_id, std::string name) {
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->portal.rename_stage(status_id, std::move(name));
}

bool Bitrix24Fake::resort_stage(const std::string& status_id, int sort) {
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->portal.resort_stage(status_id, sort);
}

bool Bitrix24Fake::delete_stage(const std::string& status_id) {
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->portal.delete_stage(status_id);
}

Bitrix24Stage Bitrix24Fake::add_stage(int category_id, Bitrix24StageSpec spec) {
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->portal.add_stage(category_id, std::move(spec));
}

void Bitrix24Fake::set_rate_limit(bool on) {
    std::lock_guard lock(m_impl->bucket_mutex);
    m_impl->bucket_on = on;
    m_impl->bucket_level = 0;
    m_impl->bucket_last_us = 0;
}

void Bitrix24Fake::inject(Bitrix24Fault fault) {
    fault.rest_method = normalize_method(fault.rest_method);
    m_impl->faults.push(std::move(fault));
}

void Bitrix24Fake::fail_history_after(std::int64_t after_id, Bitrix24Fault fault) {
    std::lock_guard lock(m_impl->page_faults_mutex);
    m_impl->page_faults.emplace(after_id, std::move(fault));
}

void Bitrix24Fake::clear_faults() {
    m_impl->faults.clear();
    std::lock_guard lock(m_impl->page_faults_mutex);
    m_impl->page_faults.clear();
}

std::size_t Bitrix24Fake::pending_faults() const {
    std::size_t total = m_impl->faults.pending();
    std::lock_guard lock(m_impl->page_faults_mutex);
    for (const auto& [after, fault] : m_impl->page_faults) {
        total += static_cast<std::size_t>(std::max(fault.count, 0));
    }
    return total;
}

namespace {

std::size_t sum_counts(const std::map<std::string, std::size_t, std::less<>>& counts,
                       std::string_view rest_method) {
    std::size_t total = 0;
    for (const auto& [method, count] : counts) {
        if (rest_method.empty() || method == rest_method) {
            total += count;
        }
    }
    return total;
}

} // namespace

std::size_t Bitrix24Fake::request_count(std::string_view rest_method) const {
    return sum_counts(m_impl->request_log.counts(), rest_method);
}

std::size_t Bitrix24Fake::call_count(std::string_view rest_method) const {
    std::lock_guard lock(m_impl->calls_mutex);
    return sum_counts(m_impl->call_counts, rest_method);
}

std::vector<Bitrix24Request> Bitrix24Fake::requests() const {
    return m_impl->request_log.records();
}

void Bitrix24Fake::reset_stats() {
    m_impl->request_log.clear();
    std::lock_guard lock(m_impl->calls_mutex);
    m_impl->call_counts.clear();
}

void Bitrix24Fake::set_clock_offset(std::chrono::milliseconds offset) {
    m_impl->clock.set_offset(offset);
}

std::chrono::system_clock::time_point Bitrix24Fake::now() const { return m_impl->clock.now(); }

void Bitrix24Fake::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

} // namespace crmsync::fakes
