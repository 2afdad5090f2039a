#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/fakes/common/json_reply.hpp"
#include "tests/fakes/common/json_writer.hpp"
#include "tests/fakes/common/request_log.hpp"
#include "tests/fakes/dialfire/campaign_generator.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_max_page_size = 1000;
constexpr std::size_t k_max_ids_per_fetch = 20;
constexpr std::size_t k_max_recorded_requests = 100'000;
constexpr std::size_t k_stats_recent = 50; // Requests listed by GET /_fake/stats.
constexpr std::uint16_t k_no_name = 0xFFFF;
constexpr std::uint8_t k_event_hi = 1;
constexpr std::size_t k_max_payload = std::size_t{16} * 1024 * 1024;
constexpr std::size_t k_max_build_threads = 8;
constexpr std::string_view k_control_prefix = "/_fake/";

// One E4 entry: a transaction with a parseable `fired`. Ordered by fired, then position.
struct Event {
    std::int64_t fired = 0;
    std::uint32_t contact = 0;
    std::uint16_t task_log = 0;
    std::uint16_t tx = 0;
    std::uint16_t task = k_no_name; // Interned name; k_no_name if the transaction has none.
    std::uint16_t type = k_no_name;
    std::uint8_t flags = 0;

    [[nodiscard]] auto key() const { return std::tuple(fired, contact, task_log, tx); }
};

bool event_less(const Event& a, const Event& b) { return a.key() < b.key(); }

struct ContactState {
    std::string id;
    std::string md5;
    std::int64_t changed = 0;
    std::size_t field_count = 0;
    std::vector<std::int64_t> touch_times;
    /// Injected contact text; served verbatim instead of the generated contact.
    std::shared_ptr<const std::string> raw;
    /// The text E3 serves with include_md5 (as crmsync asks), deflated when the contact is
    /// built or changed, so that serving it gzipped is a copy. A real API compresses on its own
    /// machines; a benchmark's emulator shares the cores with the program it measures.
    std::optional<GzipPiece> served_gzip;
};

struct Reply {
    Reply() = default;
    Reply(int status_code, std::string text, std::string gzipped_text = {})
        : status(status_code), body(std::move(text)), gzipped(std::move(gzipped_text)) {}

    int status = 200;
    std::string body;
    std::string gzipped; // when set, the answer already gzipped (body is then empty)
};

Reply error_reply(int status, std::string_view error, std::string_view message) {
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("status").integer(status);
    w.key("error").str(error);
    w.key("message").str(message);
    w.end_object();
    return {status, std::move(body)};
}

// Cursors are opaque to clients: hex of "<endpoint>:<numbers...>".
std::string encode_cursor(std::string_view endpoint, std::initializer_list<std::int64_t> values) {
    std::string plain(endpoint);
    for (const auto v : values) {
        plain += ':';
        plain += std::to_string(v);
    }
    static constexpr std::string_view k_hex = "0123456789abcdef";
    std::string out;
    for (const char c : plain) {
        out += k_hex[static_cast<unsigned char>(c) >> 4];
        out += k_hex[static_cast<unsigned char>(c) & 15U];
    }
    return out;
}

std::optional<std::vector<std::int64_t>>
decode_cursor(std::string_view endpoint, std::string_view cursor, std::size_t expected) {
    if (cursor.size() % 2 != 0) {
        return std::nullopt;
    }
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        return -1;
    };
    std::string plain;
    for (std::size_t i = 0; i < cursor.size(); i += 2) {
        const int hi = nibble(cursor[i]);
        const int lo = nibble(cursor[i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        plain += static_cast<char>(hi * 16 + lo);
    }
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= plain.size(); ++i) {
        if (i == plain.size() || plain[i] == ':') {
            parts.push_back(plain.substr(start, i - start));
            start = i + 1;
        }
    }
    if (parts.size() != expected + 1 || parts[0] != endpoint) {
        return std::nullopt;
    }
    std::vector<std::int64_t> values;
    for (std::size_t i = 1; i < parts.size(); ++i) {
        try {
            std::size_t used = 0;
            values.push_back(std::stoll(parts[i], &used));
            if (used != parts[i].size()) {
                return std::nullopt;
            }
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return values;
}

// A request parameter: nullopt if absent or empty (clients build URLs by concatenation, so
// "cursor=" means "no cursor").
std::optional<std::string> param(const httplib::Request& req, const char* name) {
    if (!req.has_param(name)) {
        return std::nullopt;
    }
    auto value = req.get_param_value(name);
    if (value.empty()) {
        return std::nullopt;
    }
    return value;
}

// Absent: the maximum. Larger than the maximum: clamped. Not a positive integer: error.
std::optional<std::size_t> page_limit(const httplib::Request& req) {
    const auto text = param(req, "limit");
    if (!text) {
        return k_max_page_size;
    }
    if (text->size() > 9 ||
        !std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    const auto value = std::stoul(*text);
    if (value == 0) {
        return std::nullopt;
    }
    return std::min<std::size_t>(value, k_max_page_size);
}

// Reads an optional time parameter into `out`; false if present but unparseable.
bool time_param(const httplib::Request& req, const char* name, std::optional<std::int64_t>& out) {
    const auto text = param(req, name);
    if (!text) {
        return true;
    }
    out = parse_api_time(*text);
    return out.has_value();
}

// Not the real meaning (unknown, see reference §2.2 E4); a stable per-event 4-digit value.
std::int64_t history_end_of(const FakeCampaignOptions& options) {
    using std::chrono::duration_cast;
    if (options.history_end) {
        return duration_cast<std::chrono::milliseconds>(options.history_end->time_since_epoch())
            .count();
    }
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return duration_cast<std::chrono::seconds>(now).count() * k_ms_per_second;
}

int fired_suffix(const Event& e) {
    const auto h = (static_cast<std::uint64_t>(e.contact) * 2654435761ULL) ^
                   (static_cast<std::uint64_t>(e.task_log) * 40503ULL) ^
                   (static_cast<std::uint64_t>(e.tx) * 97ULL);
    return static_cast<int>(h % 10000);
}

} // namespace

struct DialfireFake::Impl {
    Impl(FakeCampaignOptions options, std::int64_t history_end_ms);

    [[nodiscard]] const FakeCampaignOptions& options() const { return generator.options(); }
    [[nodiscard]] std::int64_t now_ms() const;

    // Callers hold data_mutex (shared suffices unless stated).
    [[nodiscard]] ContactModel model_of(std::size_t index) const;
    [[nodiscard]] std::string contact_text_locked(std::size_t index, bool include_md5) const;
    // E3's answer with include_md5 for these contacts, gzipped from their kept pieces; nullopt
    // when a piece is missing or the answer is small enough to go plain. Shared lock.
    [[nodiscard]] std::optional<std::string>
    kept_gzip_locked(const std::vector<std::size_t>& indexes) const;
    std::uint16_t intern(std::vector<std::string>& names,
                         std::unordered_map<std::string, std::uint16_t>& ids,
                         const std::string& name); // exclusive
    // Exclusive, except at construction: see the constructor.
    void refresh_generated(std::size_t index, std::vector<Event>& fresh);
    void events_of_raw(const nlohmann::json& contact, std::uint32_t index,
                       std::vector<Event>& fresh); // exclusive
    void replace_events(const std::vector<std::uint32_t>& changed,
                        std::vector<Event> fresh);                         // exclusive
    void set_contact_text_locked(const std::string& id, std::string text); // exclusive
    [[nodiscard]] std::string fresh_id_locked();                           // exclusive
    std::vector<std::string> touch(std::size_t n);

    void setup_routes(AbortableServer& server);
    void setup_control_routes(AbortableServer& server);
    using Handler = Reply (Impl::*)(const httplib::Request&);
    void serve(const httplib::Request& req, httplib::Response& res, Handler handler);
    [[nodiscard]] std::optional<Reply> check_access(const httplib::Request& req) const;
    Reply fields_list(const httplib::Request& req);
    Reply contacts_list(const httplib::Request& req);
    Reply contacts_fetch(const httplib::Request& req);
    Reply transactions(const httplib::Request& req);
    Reply inbound_calls(const httplib::Request& req);

    void record(const httplib::Request& req, int status, std::optional<FaultKind> fault);
    // Writes `reply` with the Date header; the body is gzipped when `req` accepts it.
    void finish(const httplib::Request& req, httplib::Response& res, const Reply& reply) const;
    // The same, never gzipped: for the control routes' small answers.
    void finish(httplib::Response& res, const Reply& reply) const;

    CampaignGenerator generator;

    mutable std::shared_mutex data_mutex;
    std::vector<FieldDef> fields;
    std::vector<ContactState> contacts;
    std::unordered_map<std::string, std::uint32_t> index_by_id;
    std::vector<Event> events;
    std::vector<std::string> task_names;
    std::unordered_map<std::string, std::uint16_t> task_ids;
    std::vector<std::string> type_names;
    std::unordered_map<std::string, std::uint16_t> type_ids;
    std::size_t touch_cursor = 0;
    std::size_t next_fresh_index = 0;
    ListPaging list_paging;                            // under data_mutex
    std::unordered_set<std::string> withheld_contacts; // under data_mutex

    FaultQueue<Fault> faults;
    RequestLog<RecordedRequest> request_log{k_max_recorded_requests}; // Keyed by path.
    FakeClock clock;
    StopFlag stop_flag;
    ShutdownHook shutdown_hook;
    HttpListener listener;
    bool started = false;
};

DialfireFake::Impl::Impl(FakeCampaignOptions opts, std::int64_t history_end_ms)
    : generator(std::move(opts), history_end_ms) {
    fields = generator.initial_fields();
    // Generated transactions use only these names; interning them up front makes
    // refresh_generated() read-only on the name tables, so the contacts can be built in parallel.
    for (const char* task : {"fc_call", "qc_check", "other_task"}) {
        intern(task_names, task_ids, task);
    }
    for (const char* type : {"update", "create", "delete"}) {
        intern(type_names, type_ids, type);
    }
    const auto count = options().contacts;
    contacts.resize(count);
    next_fresh_index = count;
    const auto workers =
        std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, k_max_build_threads);
    std::vector<std::vector<Event>> fresh(workers);
    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < workers; ++w) {
        threads.emplace_back([this, w, workers, count, &fresh] {
            for (std::size_t i = count * w / workers; i < count * (w + 1) / workers; ++i) {
                auto& state = contacts[i];
                state.id = generator.contact_id(i);
                state.field_count = fields.size();
                refresh_generated(i, fresh[w]);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    index_by_id.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        index_by_id.emplace(contacts[i].id, static_cast<std::uint32_t>(i));
    }
    for (auto& part : fresh) {
        events.insert(events.end(), part.begin(), part.end());
    }
    std::sort(events.begin(), events.end(), event_less);
}

std::int64_t DialfireFake::Impl::now_ms() const { return clock.now_ms(); }

ContactModel DialfireFake::Impl::model_of(std::size_t index) const {
    const auto& state = contacts[index];
    return generator.contact(index, state.touch_times, state.field_count, fields);
}

std::string DialfireFake::Impl::contact_text_locked(std::size_t index, bool include_md5) const {
    const auto& state = contacts[index];
    if (state.raw) {
        return *state.raw;
    }
    return serialize_contact(model_of(index), fields, include_md5);
}

std::uint16_t DialfireFake::Impl::intern(std::vector<std::string>& names,
                                         std::unordered_map<std::string, std::uint16_t>& ids,
                                         const std::string& name) {
    if (const auto it = ids.find(name); it != ids.end()) {
        return it->second;
    }
    if (names.size() >= k_no_name) {
        return k_no_name; // Absurd numbers of distinct names: treat further ones as missing.
    }
    const auto id = static_cast<std::uint16_t>(names.size());
    names.push_back(name);
    ids.emplace(name, id);
    return id;
}

void DialfireFake::Impl::refresh_generated(std::size_t index, std::vector<Event>& fresh) {
    auto& state = contacts[index];
    const auto model = model_of(index);
    state.served_gzip = gzip_piece(serialize_contact(model, fields, true, &state.md5));
    state.changed = model.changed();
    for (std::size_t t = 0; t < model.task_log.size(); ++t) {
        const auto& txs = model.task_log[t].transactions;
        for (std::size_t x = 0; x < txs.size(); ++x) {
            const auto& tx = txs[x];
            if (!tx.fired) {
                continue;
            }
            Event e;
            e.fired = *tx.fired;
            e.contact = static_cast<std::uint32_t>(index);
            e.task_log = static_cast<std::uint16_t>(t);
            e.tx = static_cast<std::uint16_t>(x);
            e.task = intern(task_names, task_ids, tx.task);
            e.type = intern(type_names, type_ids, tx.type);
            e.flags = tx.is_hi() ? k_event_hi : 0;
            fresh.push_back(e);
        }
    }
}

void DialfireFake::Impl::events_of_raw(const nlohmann::json& contact, std::uint32_t index,
                                       std::vector<Event>& fresh) {
    if (!contact.is_object()) {
        return;
    }
    const auto log = contact.find("$task_log");
    if (log == contact.end() || !log->is_array()) {
        return;
    }
    for (std::size_t t = 0; t < log->size() && t < k_no_name; ++t) {
        const auto& entry = (*log)[t];
        if (!entry.is_object() || !entry.contains("transactions") ||
            !entry["transactions"].is_array()) {
            continue;
        }
        const auto& txs = entry["transactions"];
        for (std::size_t x = 0; x < txs.size() && x < k_no_name; ++x) {
            const auto& tx = txs[x];
            if (!tx.is_object() || !tx.contains("fired") || !tx["fired"].is_string()) {
                continue;
            }
            const auto fired = parse_api_time(tx["fired"].get<std::string>());
            if (!fired) {
                continue;
            }
            Event e;
            e.fired = *fired;
            e.contact = index;
            e.task_log = static_cast<std::uint16_t>(t);
            e.tx = static_cast<std::uint16_t>(x);
            if (tx.contains("task") && tx["task"].is_string()) {
                e.task = intern(task_names, task_ids, tx["task"].get<std::string>());
            }
            if (tx.contains("type") && tx["type"].is_string()) {
                e.type = intern(type_names, type_ids, tx["type"].get<std::string>());
            }
            const bool has_user = tx.contains("user") && !tx["user"].is_null();
            const bool assigned = tx.contains("status_detail") && tx["status_detail"].is_string() &&
                                  tx["status_detail"].get<std::string>() == "$assigned";
            e.flags = has_user && !assigned ? k_event_hi : 0;
            fresh.push_back(e);
        }
    }
}

void DialfireFake::Impl::replace_events(const std::vector<std::uint32_t>& changed,
                                        std::vector<Event> fresh) {
    std::vector<bool> is_changed(contacts.size(), false);
    for (const auto index : changed) {
        is_changed[index] = true;
    }
    std::erase_if(events, [&](const Event& e) { return is_changed[e.contact]; });
    std::sort(fresh.begin(), fresh.end(), event_less);
    const auto middle = static_cast<std::ptrdiff_t>(events.size());
    events.insert(events.end(), fresh.begin(), fresh.end());
    std::inplace_merge(events.begin(), events.begin() + middle, events.end(), event_less);
}

void DialfireFake::Impl::set_contact_text_locked(const std::string& id, std::string text) {
    std::uint32_t index = 0;
    if (const auto it = index_by_id.find(id); it != index_by_id.end()) {
        index = it->second;
    } else {
        index = static_cast<std::uint32_t>(contacts.size());
        contacts.emplace_back();
        contacts.back().id = id;
        index_by_id.emplace(id, index);
    }
    auto& state = contacts[index];
    const auto parsed = nlohmann::json::parse(text, nullptr, false);
    state.md5 = md5_hex(text);
    if (parsed.is_object() && parsed.contains("$md5") && parsed["$md5"].is_string()) {
        state.md5 = parsed["$md5"].get<std::string>();
    }
    state.changed = now_ms();
    state.touch_times.clear();
    state.served_gzip = gzip_piece(text);
    state.raw = std::make_shared<const std::string>(std::move(text));
    std::vector<Event> fresh;
    events_of_raw(parsed, index, fresh);
    replace_events({index}, std::move(fresh));
}

std::string DialfireFake::Impl::fresh_id_locked() {
    for (;;) {
        auto id = generator.contact_id(next_fresh_index++);
        if (!index_by_id.contains(id)) {
            return id;
        }
    }
}

std::vector<std::string> DialfireFake::Impl::touch(std::size_t n) {
    std::unique_lock lock(data_mutex);
    const auto generated = options().contacts;
    const auto now = now_ms();
    std::vector<std::uint32_t> chosen;
    std::vector<std::string> ids;
    for (std::size_t attempts = 0; generated > 0 && ids.size() < n && attempts < n + generated;
         ++attempts) {
        const auto index = touch_cursor++ % generated;
        auto& state = contacts[index];
        if (state.raw) {
            continue;
        }
        // Strictly after everything the contact has, so touch transactions never share a
        // fired millisecond with an earlier one (even under a negative clock offset).
        const auto fired = std::max(now, state.changed + 1);
        state.touch_times.push_back(fired);
        state.changed = fired;
        state.field_count = fields.size();
        chosen.push_back(static_cast<std::uint32_t>(index));
        ids.push_back(state.id);
    }
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
    std::vector<Event> fresh;
    for (const auto index : chosen) {
        refresh_generated(index, fresh);
    }
    replace_events(chosen, std::move(fresh));
    return ids;
}

void DialfireFake::Impl::record(const httplib::Request& req, int status,
                                std::optional<FaultKind> fault) {
    RecordedRequest r;
    r.method = req.method;
    r.path = req.path;
    r.query = query_of(req);
    r.status = status;
    r.fault = fault;
    r.at_ms = now_ms();
    r.remote_port = req.remote_port;
    const auto key = r.path;
    request_log.add(key, std::move(r));
}

void DialfireFake::Impl::finish(const httplib::Request& req, httplib::Response& res,
                                const Reply& reply) const {
    res.status = reply.status;
    res.set_header("Date", format_http_date(now_ms()));
    if (!reply.gzipped.empty()) {
        set_gzipped_json_reply(res, reply.gzipped);
        return;
    }
    set_json_reply(req, res, reply.body);
}

void DialfireFake::Impl::finish(httplib::Response& res, const Reply& reply) const {
    res.status = reply.status;
    res.set_header("Date", format_http_date(now_ms()));
    res.set_content(reply.body, std::string(k_json_utf8));
}

std::optional<Reply> DialfireFake::Impl::check_access(const httplib::Request& req) const {
    if (req.matches.size() < 2 || req.matches[1].str() != options().campaign_id) {
        return error_reply(404, "not_found", "unknown campaign");
    }
    const auto auth = req.get_header_value("Authorization");
    if (auth != "Bearer " + options().token) {
        return error_reply(403, "forbidden",
                           auth.empty() ? "missing bearer token" : "invalid bearer token");
    }
    return std::nullopt;
}

void DialfireFake::Impl::serve(const httplib::Request& req, httplib::Response& res,
                               Handler handler) {
    const auto fault = faults.take(req.method, req.path);
    const auto kind = fault ? std::optional(fault->kind) : std::nullopt;
    if (kind == FaultKind::reset) {
        AbortableServer::abort_current_connection();
        finish(req, res, error_reply(500, "reset", "connection reset by the fake"));
        record(req, 0, kind);
        return;
    }
    Reply reply;
    if (kind == FaultKind::status) {
        reply = error_reply(fault->status, "injected_fault", "fault injected by the fake");
        if (fault->retry_after) {
            res.set_header("Retry-After", *fault->retry_after);
        }
    } else if (kind == FaultKind::malformed) {
        reply = {200, "<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>"};
    } else {
        if (kind == FaultKind::slow) {
            stop_flag.sleep_for(std::chrono::milliseconds(fault->delay_ms));
        }
        auto denied = check_access(req);
        reply = denied ? std::move(*denied) : (this->*handler)(req);
        if (kind == FaultKind::truncate) {
            // The text is cut, not the gzip stream: the client gets half a JSON document.
            if (!reply.gzipped.empty()) {
                reply.body = gunzip(reply.gzipped);
                reply.gzipped.clear();
            }
            reply.body.resize(reply.body.size() / 2);
        }
    }
    finish(req, res, reply);
    record(req, reply.status, kind);
}

Reply DialfireFake::Impl::fields_list(const httplib::Request&) {
    std::string body;
    JsonWriter w(body);
    std::shared_lock lock(data_mutex);
    w.begin_array();
    for (const auto& f : fields) {
        w.begin_object();
        w.key("type").str(f.type);
        w.key("fieldType").str(f.field_type);
        w.key("name").str(f.name);
        w.key("state").str(f.state);
        w.key("deleted").boolean(f.deleted);
        w.end_object();
    }
    w.end_array();
    return {200, std::move(body)};
}

Reply DialfireFake::Impl::contacts_list(const httplib::Request& req) {
    const auto limit = page_limit(req);
    if (!limit) {
        return error_reply(400, "bad_request", "limit must be a positive integer");
    }
    std::int64_t since = std::numeric_limits<std::int64_t>::min();
    if (const auto text = param(req, "changedSince")) {
        const auto parsed = parse_api_time(*text);
        if (!parsed) {
            return error_reply(400, "bad_request", "changedSince must be YYYY-MM-DD");
        }
        since = start_of_day(*parsed);
    }
    std::shared_lock lock(data_mutex);
    const auto paging = list_paging;
    std::size_t begin = 0;
    // With empty_pages, a negative cursor -(i + 1) asks for the empty page before index i.
    std::optional<std::size_t> empty_before;
    const auto cursor = param(req, "cursor");
    if (cursor) {
        const auto values = decode_cursor("e2", *cursor, 1);
        if (!values || ((*values)[0] < 0 && !paging.empty_pages)) {
            return error_reply(400, "bad_request", "invalid cursor");
        }
        if ((*values)[0] < 0) {
            empty_before = static_cast<std::size_t>(-(*values)[0] - 1);
        } else {
            begin = static_cast<std::size_t>((*values)[0]);
        }
    } else if (paging.empty_pages) {
        empty_before = 0;
    }

    std::string body;
    JsonWriter w(body);
    std::vector<std::size_t> page;
    std::optional<std::size_t> next;
    const std::size_t page_size = paging.max_page > 0 ? std::min(*limit, paging.max_page) : *limit;
    for (std::size_t i = begin; !empty_before && i < contacts.size(); ++i) {
        if (contacts[i].changed < since) {
            continue;
        }
        if (page.size() == page_size) {
            next = i;
            break;
        }
        page.push_back(i);
    }
    std::string next_cursor;
    if (empty_before) {
        next_cursor = encode_cursor("e2", {static_cast<std::int64_t>(*empty_before)});
    } else if (next) {
        const auto at = static_cast<std::int64_t>(*next);
        next_cursor = encode_cursor("e2", {paging.empty_pages ? -(at + 1) : at});
    }
    if (paging.repeat_cursor && cursor) {
        next_cursor = *cursor;
    }
    w.begin_object();
    w.key("count").integer(static_cast<std::int64_t>(page.size()));
    w.key("results").begin_array();
    for (const auto i : page) {
        w.begin_object();
        w.key("id").str(contacts[i].id);
        w.key("md5").str(contacts[i].md5);
        w.end_object();
    }
    w.end_array();
    w.key("cursor").str(next_cursor);
    w.end_object();
    return {200, std::move(body)};
}

Reply DialfireFake::Impl::contacts_fetch(const httplib::Request& req) {
    const auto ids = nlohmann::json::parse(req.body, nullptr, false);
    if (!ids.is_array() ||
        !std::all_of(ids.begin(), ids.end(), [](const auto& v) { return v.is_string(); })) {
        return error_reply(400, "bad_request", "body must be a JSON array of contact ids");
    }
    if (ids.size() > k_max_ids_per_fetch) {
        return error_reply(400, "bad_request", "at most 20 contact ids per request");
    }
    const bool include_md5 = req.get_param_value("include_md5") == "true";
    std::shared_lock lock(data_mutex);
    std::vector<std::size_t> found;
    for (const auto& id : ids) {
        const auto it = index_by_id.find(id.get<std::string>());
        if (it == index_by_id.end() || withheld_contacts.contains(id.get<std::string>())) {
            continue; // Unknown ids are left out, as Dialfire does.
        }
        found.push_back(it->second);
    }
    if (include_md5 && accepts_gzip(req.get_header_value("Accept-Encoding"))) {
        if (auto gzipped = kept_gzip_locked(found)) {
            return {200, {}, std::move(*gzipped)};
        }
    }
    std::string body = "[";
    for (std::size_t i = 0; i < found.size(); ++i) {
        if (i > 0) {
            body += ',';
        }
        body += contact_text_locked(found[i], include_md5);
    }
    body += ']';
    return {200, std::move(body)};
}

std::optional<std::string>
DialfireFake::Impl::kept_gzip_locked(const std::vector<std::size_t>& indexes) const {
    static const GzipPiece k_open = gzip_piece("[");
    static const GzipPiece k_comma = gzip_piece(",");
    static const GzipPiece k_close = gzip_piece("]");
    std::vector<const GzipPiece*> pieces{&k_open};
    std::size_t size = 2;
    for (const auto index : indexes) {
        const auto& kept = contacts[index].served_gzip;
        if (!kept) {
            return std::nullopt;
        }
        if (pieces.size() > 1) {
            pieces.push_back(&k_comma);
            ++size;
        }
        pieces.push_back(&*kept);
        size += kept->size;
    }
    if (size <= k_largest_plain_body) {
        return std::nullopt; // as set_json_reply: small answers go plain
    }
    pieces.push_back(&k_close);
    return gzip_join(pieces);
}

Reply DialfireFake::Impl::transactions(const httplib::Request& req) {
    const auto limit = page_limit(req);
    if (!limit) {
        return error_reply(400, "bad_request", "limit must be a positive integer");
    }
    std::optional<std::int64_t> from;
    std::optional<std::int64_t> to;
    if (!time_param(req, "from", from) || !time_param(req, "to", to)) {
        return error_reply(400, "bad_request", "from/to must look like 2006-01-02T15:04:05.999");
    }
    std::optional<Event> after;
    if (const auto cursor = param(req, "cursor")) {
        const auto values = decode_cursor("e4", *cursor, 4);
        if (!values) {
            return error_reply(400, "bad_request", "invalid cursor");
        }
        Event e;
        e.fired = (*values)[0];
        e.contact = static_cast<std::uint32_t>((*values)[1]);
        e.task_log = static_cast<std::uint16_t>((*values)[2]);
        e.tx = static_cast<std::uint16_t>((*values)[3]);
        after = e;
    }
    const auto type = param(req, "type");
    const bool hi_only = req.get_param_value("hi") == "true";
    std::vector<std::string> prefixes;
    if (const auto tasks = param(req, "tasks")) {
        std::size_t start = 0;
        for (std::size_t i = 0; i <= tasks->size(); ++i) {
            if (i == tasks->size() || (*tasks)[i] == ',') {
                prefixes.push_back(tasks->substr(start, i - start));
                start = i + 1;
            }
        }
    }

    std::shared_lock lock(data_mutex);
    // Per interned name: does it pass the filters?
    std::vector<bool> task_ok(task_names.size(), prefixes.empty());
    for (std::size_t t = 0; t < task_names.size() && !prefixes.empty(); ++t) {
        task_ok[t] = std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
            return task_names[t].starts_with(p);
        });
    }
    const auto type_wanted = [&]() -> std::optional<std::uint16_t> {
        if (!type) {
            return std::nullopt;
        }
        const auto it = type_ids.find(*type);
        return it == type_ids.end() ? k_no_name : it->second;
    }();
    const auto matches = [&](const Event& e) {
        if (type_wanted && (e.type == k_no_name || e.type != *type_wanted)) {
            return false;
        }
        if (hi_only && (e.flags & k_event_hi) == 0) {
            return false;
        }
        if (!prefixes.empty() && (e.task == k_no_name || !task_ok[e.task])) {
            return false;
        }
        return true;
    };

    auto it = events.begin();
    if (after) {
        it = std::upper_bound(events.begin(), events.end(), *after, event_less);
    }
    if (from) {
        Event lower;
        lower.fired = *from;
        it = std::max(
            it, std::lower_bound(events.begin(), events.end(), lower,
                                 [](const Event& a, const Event& b) { return a.fired < b.fired; }));
    }
    std::vector<const Event*> page;
    bool more = false;
    for (; it != events.end(); ++it) {
        if (to && it->fired >= *to) {
            break;
        }
        if (!matches(*it)) {
            continue;
        }
        if (page.size() == *limit) {
            more = true;
            break;
        }
        page.push_back(&*it);
    }

    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("count").integer(static_cast<std::int64_t>(page.size()));
    w.key("results").begin_array();
    std::array<char, 8> suffix{};
    for (const auto* e : page) {
        auto fired = format_iso_ms(e->fired);
        std::snprintf(suffix.data(), suffix.size(), "%04d", fired_suffix(*e));
        const auto& contact = contacts[e->contact];
        w.str(fired + suffix.data() + "|" + contact.md5 + "|" + contact.id + "|" +
              std::to_string(e->task_log) + "," + std::to_string(e->tx));
    }
    w.end_array();
    if (more) {
        const auto* last = page.back();
        w.key("cursor").str(
            encode_cursor("e4", {last->fired, last->contact, last->task_log, last->tx}));
    }
    w.end_object();
    return {200, std::move(body)};
}

Reply DialfireFake::Impl::inbound_calls(const httplib::Request& req) {
    const auto limit = page_limit(req);
    if (!limit) {
        return error_reply(400, "bad_request", "limit must be a positive integer");
    }
    std::optional<std::int64_t> from;
    std::optional<std::int64_t> to;
    if (!time_param(req, "from", from) || !time_param(req, "to", to)) {
        return error_reply(400, "bad_request", "from/to must look like 2006-01-02T15:04:05.999");
    }
    const auto total = options().inbound_calls;
    std::size_t begin = 0;
    if (const auto cursor = param(req, "cursor")) {
        const auto values = decode_cursor("e5", *cursor, 1);
        if (!values || (*values)[0] < 0) {
            return error_reply(400, "bad_request", "invalid cursor");
        }
        begin = static_cast<std::size_t>((*values)[0]);
    }
    if (from) {
        // Calls are sorted by call_time, so binary search the first one at or after `from`.
        std::size_t lo = 0;
        std::size_t hi = total;
        while (lo < hi) {
            const auto mid = lo + (hi - lo) / 2;
            if (generator.inbound_call_time(mid) < *from) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        begin = std::max(begin, lo);
    }
    std::size_t end = begin;
    while (end < total && end - begin < *limit &&
           !(to && generator.inbound_call_time(end) >= *to)) {
        ++end;
    }
    const bool more = end < total && !(to && generator.inbound_call_time(end) >= *to);
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("count").integer(static_cast<std::int64_t>(end - begin));
    w.key("results").begin_array();
    for (auto i = begin; i < end; ++i) {
        w.raw(serialize_inbound_call(generator.inbound_call(i), options().campaign_id));
    }
    w.end_array();
    w.key("cursor").str(more ? encode_cursor("e5", {static_cast<std::int64_t>(end)}) : "");
    w.end_object();
    return {200, std::move(body)};
}

void DialfireFake::Impl::setup_routes(AbortableServer& server) {
    const std::string campaign = "/api/campaigns/([^/]+)";
    server.Get(campaign + "/fields/list/?",
               [this](const auto& req, auto& res) { serve(req, res, &Impl::fields_list); });
    server.Get(campaign + "/contacts/list/?",
               [this](const auto& req, auto& res) { serve(req, res, &Impl::contacts_list); });
    server.Post(campaign + "/contacts/?",
                [this](const auto& req, auto& res) { serve(req, res, &Impl::contacts_fetch); });
    server.Get(campaign + "/contacts/transactions/?",
               [this](const auto& req, auto& res) { serve(req, res, &Impl::transactions); });
    server.Get(campaign + "/inbound/calls/?",
               [this](const auto& req, auto& res) { serve(req, res, &Impl::inbound_calls); });

    // Unmatched routes and httplib's own 4xx answers get a JSON body and a Date header too.
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
            if (!res.has_header("Date")) {
                res.set_header("Date", format_http_date(now_ms()));
            }
            if (!res.body.empty()) {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            const auto reply =
                error_reply(res.status, res.status == 404 ? "not_found" : "error",
                            res.status == 404 ? "no such endpoint" : "request failed");
            res.set_content(reply.body, std::string(k_json_utf8));
            if (!req.path.starts_with(k_control_prefix)) {
                record(req, res.status, std::nullopt);
            }
            return httplib::Server::HandlerResponse::Handled;
        }));

    if (options().control_endpoints) {
        setup_control_routes(server);
    }
}

void DialfireFake::Impl::setup_control_routes(AbortableServer& server) {
    ControlRoutes routes(
        server,
        [this](httplib::Response& res, int status, const std::string& body) {
            finish(res, Reply{status, body});
        },
        [](std::string_view message) { return error_reply(400, "bad_request", message).body; });
    routes.faults<Fault>(faults, fault_from_json);
    routes.post("/_fake/touch", [this](const httplib::Request& req) {
        const auto n = req.has_param("n") ? std::stoul(req.get_param_value("n")) : 1UL;
        return nlohmann::json{{"touched", touch(n)}};
    });
    routes.post("/_fake/fields", [this](const httplib::Request& req) {
        const auto json = nlohmann::json::parse(req.body);
        FieldDef field;
        field.name = json.at("name").get<std::string>();
        field.field_type = json.value("fieldType", std::string("text"));
        std::unique_lock lock(data_mutex);
        fields.push_back(std::move(field));
        return nlohmann::json{{"fields", fields.size()}};
    });
    routes.post("/_fake/contacts", [this](const httplib::Request& req) {
        // ?id= keeps the body byte-exact (it need not even be JSON); otherwise "$id" or a
        // fresh id names the contact.
        std::string id = req.get_param_value("id");
        std::unique_lock lock(data_mutex);
        if (id.empty()) {
            const auto json = nlohmann::json::parse(req.body, nullptr, false);
            if (json.is_object() && json.contains("$id") && json["$id"].is_string()) {
                id = json["$id"].get<std::string>();
            } else {
                id = fresh_id_locked();
            }
        }
        set_contact_text_locked(id, req.body);
        return nlohmann::json{{"id", id}};
    });
    routes.clock(clock, format_iso_ms);
    routes.get("/_fake/stats", [this](const httplib::Request&) {
        nlohmann::json paths = nlohmann::json::object();
        std::size_t total = 0;
        for (const auto& [path, count] : request_log.counts()) {
            paths[path] = count;
            total += count;
        }
        nlohmann::json recent = nlohmann::json::array();
        for (const auto& r : request_log.recent(k_stats_recent)) {
            recent.push_back({{"method", r.method},
                              {"path", r.path},
                              {"query", r.query},
                              {"status", r.status},
                              {"fault", r.fault ? fault_kind_name(*r.fault) : ""}});
        }
        return nlohmann::json{{"total", total},
                              {"paths", paths},
                              {"pending_faults", faults.pending()},
                              {"recent", recent}};
    });
    routes.shutdown(shutdown_hook);
}

// ---- DialfireFake -----------------------------------------------------------------------------

DialfireFake::DialfireFake(FakeCampaignOptions options) {
    const auto history_end = history_end_of(options);
    m_impl = std::make_unique<Impl>(std::move(options), history_end);
}

DialfireFake::~DialfireFake() { stop(); }

int DialfireFake::start(int port) {
    auto& impl = *m_impl;
    if (impl.started) {
        throw std::logic_error("DialfireFake::start called twice");
    }
    impl.started = true;
    return impl.listener.start(
        port, [&impl](AbortableServer& server) { impl.setup_routes(server); },
        impl.options().worker_threads, k_max_payload);
}

void DialfireFake::stop() {
    m_impl->stop_flag.raise();
    m_impl->listener.stop();
}

int DialfireFake::port() const { return m_impl->listener.port(); }

std::string DialfireFake::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

const FakeCampaignOptions& DialfireFake::options() const { return m_impl->options(); }

std::vector<std::string> DialfireFake::contact_ids() const {
    std::shared_lock lock(m_impl->data_mutex);
    std::vector<std::string> ids;
    ids.reserve(m_impl->contacts.size());
    for (const auto& c : m_impl->contacts) {
        ids.push_back(c.id);
    }
    return ids;
}

std::optional<std::string> DialfireFake::contact_md5(const std::string& id) const {
    std::shared_lock lock(m_impl->data_mutex);
    const auto it = m_impl->index_by_id.find(id);
    if (it == m_impl->index_by_id.end()) {
        return std::nullopt;
    }
    return m_impl->contacts[it->second].md5;
}

std::optional<std::string> DialfireFake::contact_text(const std::string& id) const {
    std::shared_lock lock(m_impl->data_mutex);
    const auto it = m_impl->index_by_id.find(id);
    if (it == m_impl->index_by_id.end()) {
        return std::nullopt;
    }
    return m_impl->contact_text_locked(it->second, true);
}

std::vector<FieldDef> DialfireFake::fields() const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->fields;
}

std::size_t DialfireFake::event_count() const {
    std::shared_lock lock(m_impl->data_mutex);
    return m_impl->events.size();
}

std::vector<HostileItem> DialfireFake::hostile_items() const {
    return m_impl->generator.hostile_items();
}

std::vector<std::string> DialfireFake::touch_contacts(std::size_t n) { return m_impl->touch(n); }

void DialfireFake::add_custom_field(std::string name, std::string field_type) {
    std::unique_lock lock(m_impl->data_mutex);
    FieldDef field;
    field.name = std::move(name);
    field.field_type = std::move(field_type);
    m_impl->fields.push_back(std::move(field));
}

void DialfireFake::set_contact_json(const std::string& id, const nlohmann::json& contact) {
    set_contact_text(id, contact.dump());
}

void DialfireFake::set_contact_text(const std::string& id, std::string text) {
    std::unique_lock lock(m_impl->data_mutex);
    m_impl->set_contact_text_locked(id, std::move(text));
}

std::string DialfireFake::add_raw_contact(const nlohmann::json& contact) {
    auto text = contact.dump();
    std::unique_lock lock(m_impl->data_mutex);
    std::string id;
    if (contact.is_object() && contact.contains("$id") && contact["$id"].is_string()) {
        id = contact["$id"].get<std::string>();
    } else {
        id = m_impl->fresh_id_locked();
    }
    m_impl->set_contact_text_locked(id, std::move(text));
    return id;
}

std::vector<HostileItem> DialfireFake::add_hardening_cases() {
    const std::string values_field = "x VALUES (y)";
    const std::string amount_field = "hostile_amount";
    add_custom_field(values_field);
    add_custom_field(amount_field, "number");
    touch_contacts(options().contacts);
    const auto contact = [](const std::string& id, const std::string& members) {
        nlohmann::json head = {{"$id", id}, {"$campaign_id", "HOSTILE"}};
        std::string text = head.dump();
        text.pop_back();
        return text + "," + members + "}";
    };
    const std::string nul_id("HOSTILENUL\0ID001", 16);
    const std::string deep(200'000, '[');
    const std::vector<HostileItem> items{
        {HostileCase::lone_surrogate, "HOSTILESURROGATE", values_field, "a lone surrogate"},
        {HostileCase::number_1e30, "HOSTILENUMBER001", amount_field, "1e30 in a number"},
        {HostileCase::year_past_9999, "HOSTILEYEAR10000", "$created_date",
         "9999-12-31T23:30:00-05:00"},
        {HostileCase::nul_in_id, nul_id, "$id", "a NUL inside $id"},
        {HostileCase::deep_nesting, "HOSTILEDEEPNEST1", "deep", "200,000 levels of nesting"},
        {HostileCase::unparsable_contact, "HOSTILEBROKEN001", "", "E3 text that is no JSON"},
        {HostileCase::field_name_values, "", values_field, "field named x VALUES (y)"},
    };
    set_contact_text(items[0].contact_id,
                     contact(items[0].contact_id, R"j("x VALUES (y)":"a\ud800b\udc00")j"));
    set_contact_text(items[1].contact_id, contact(items[1].contact_id, R"("hostile_amount":1e30)"));
    set_contact_text(
        items[2].contact_id,
        contact(items[2].contact_id, R"("$created_date":"9999-12-31T23:30:00-05:00")"));
    set_contact_text(nul_id, contact(nul_id, R"j("x VALUES (y)":"nul")j"));
    set_contact_text(
        items[4].contact_id,
        contact(items[4].contact_id, R"("deep":)" + deep + std::string(deep.size(), ']')));
    set_contact_text(items[5].contact_id, R"({"$id":"HOSTILEBROKEN001", nope)");
    return items;
}

void DialfireFake::inject(Fault fault) { m_impl->faults.push(std::move(fault)); }

void DialfireFake::clear_faults() { m_impl->faults.clear(); }

std::size_t DialfireFake::pending_faults() const { return m_impl->faults.pending(); }

std::size_t DialfireFake::request_count(std::string_view path_prefix) const {
    return m_impl->request_log.count_with_prefix(path_prefix);
}

std::vector<RecordedRequest> DialfireFake::requests() const {
    return m_impl->request_log.records();
}

void DialfireFake::reset_stats() { m_impl->request_log.clear(); }

void DialfireFake::set_clock_offset(std::chrono::milliseconds offset) {
    m_impl->clock.set_offset(offset);
}

std::chrono::system_clock::time_point DialfireFake::now() const { return m_impl->clock.now(); }

void DialfireFake::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

void DialfireFake::set_list_paging(ListPaging paging) {
    std::unique_lock lock(m_impl->data_mutex);
    m_impl->list_paging = paging;
}

void DialfireFake::withhold_contacts(std::vector<std::string> ids) {
    std::unique_lock lock(m_impl->data_mutex);
    m_impl->withheld_contacts = {ids.begin(), ids.end()};
}

} // namespace crmsync::fakes
