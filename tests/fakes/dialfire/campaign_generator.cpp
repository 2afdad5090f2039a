#include "tests/fakes/dialfire/campaign_generator.hpp"

#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/json_writer.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <stdexcept>

namespace crmsync::fakes {
namespace {

// Salts keep the random streams of different entities independent.
constexpr std::uint64_t k_salt_contact = 0x436f6e74616374ULL;
constexpr std::uint64_t k_salt_contact_id = 0x436f6e746964ULL;
constexpr std::uint64_t k_salt_transaction = 0x5472616e73ULL;
constexpr std::uint64_t k_salt_touch = 0x546f756368ULL;
constexpr std::uint64_t k_salt_connection = 0x436f6e6eULL;
constexpr std::uint64_t k_salt_field = 0x4669656c64ULL;
constexpr std::uint64_t k_salt_inbound = 0x496e626f756e64ULL;
constexpr std::uint64_t k_salt_task = 0x5461736bULL;
constexpr std::uint64_t k_salt_user = 0x55736572ULL;

// Touch transactions take connection serials from here up, so they never collide with the
// base transactions' serials.
constexpr std::uint32_t k_touch_serial_base = 1U << 20;
constexpr std::uint32_t k_serials_per_touch = 64;

// Contacts with these indices carry the hostile cases (see hostile_items()).
constexpr std::size_t k_hostile_huge = 1;
constexpr std::size_t k_hostile_utf8 = 2;
constexpr std::size_t k_hostile_nul = 3;
constexpr std::size_t k_hostile_no_id = 4;
constexpr std::size_t k_hostile_pause = 5;
constexpr std::size_t k_hostile_no_fired = 6;
constexpr std::size_t k_hostile_dup_fired = 7;
constexpr std::size_t k_hostile_min_contacts = 8;
// Contact indices are stored as uint32 and connection ids pack the index above 24 bits.
constexpr std::size_t k_max_contacts = 1U << 30;

// Every 50th contact (offset 7) has a call that is still running.
constexpr std::size_t k_running_call_period = 50;
constexpr std::size_t k_running_call_offset = 7;

constexpr std::string_view k_id_alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

// splitmix64's finalizer: a bijection on 64-bit values, so distinct inputs keep distinct outputs.
constexpr std::uint64_t mix64(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

std::uint64_t hash_of(std::initializer_list<std::uint64_t> parts) {
    std::uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (const auto part : parts) {
        h = mix64(h ^ mix64(part + 0x632be59bd9b4e019ULL));
    }
    return h;
}

std::uint64_t hash_text(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
    for (const char c : text) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
    return mix64(h);
}

class Rng {
public:
    explicit Rng(std::uint64_t seed) : m_state(seed) {}

    std::uint64_t next() {
        m_state += 0x9e3779b97f4a7c15ULL;
        return mix64(m_state);
    }
    /// Uniform in [0, n); n > 0. The modulo bias is irrelevant for test data.
    std::uint64_t below(std::uint64_t n) { return next() % n; }
    std::int64_t between(std::int64_t lo, std::int64_t hi) {
        return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo + 1)));
    }
    bool percent(std::uint64_t p) { return below(100) < p; }
    double decimal(double lo, double hi) {
        return lo + (hi - lo) * static_cast<double>(next() >> 11) / static_cast<double>(1ULL << 53);
    }
    template <typename T, std::size_t N> const T& pick(const std::array<T, N>& items) {
        return items[static_cast<std::size_t>(below(N))];
    }

private:
    std::uint64_t m_state;
};

// 16 characters: 3 from `extra`, 13 (65 bits) from `unique`, so distinct `unique` values give
// distinct ids.
std::string encode_id(std::uint64_t unique, std::uint64_t extra) {
    std::string id(16, '2');
    for (std::size_t i = 0; i < 3; ++i) {
        id[i] = k_id_alphabet[(extra >> (5 * i)) & 31U];
    }
    for (std::size_t i = 0; i < 13; ++i) {
        id[15 - i] = k_id_alphabet[(unique >> (5 * i)) & 31U];
    }
    return id;
}

std::string uuid_from(std::uint64_t a, std::uint64_t b) {
    std::array<char, 40> buf{};
    std::snprintf(buf.data(), buf.size(), "%08llx-%04llx-4%03llx-a%03llx-%012llx",
                  static_cast<unsigned long long>(a >> 32),
                  static_cast<unsigned long long>((a >> 16) & 0xffffU),
                  static_cast<unsigned long long>(a & 0xfffU),
                  static_cast<unsigned long long>(b >> 52),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf.data();
}

std::string digits(Rng& rng, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        out += static_cast<char>('0' + rng.below(10));
    }
    return out;
}

struct Agent {
    const char* login;
    const char* branch;
};

constexpr std::array<Agent, 12> k_agents{{
    {"anna.schmidt", "berlin"},
    {"jonas.mueller", "berlin"},
    {"lea.fischer", "hamburg"},
    {"mehmet.yilmaz", "hamburg"},
    {"sophie.weber", "munich"},
    {"lukas.wagner", "munich"},
    {"marie.becker", "vienna"},
    {"paul.hoffmann", "vienna"},
    {"emma.schulz", "zurich"},
    {"felix.koch", "zurich"},
    {"zoe.richter", "remote"},
    {"noah.klein", "remote"},
}};

constexpr std::array<const char*, 4> k_success_details{"sale", "appointment", "info_sent",
                                                       "interested"};
constexpr std::array<const char*, 3> k_failed_details{"not_interested", "wrong_number",
                                                      "do_not_call"};
constexpr std::array<const char*, 3> k_open_details{"callback", "not_reached", "busy"};
constexpr std::array<const char*, 10> k_first_names{"Anna",   "Jürgen", "Zoë",   "Mehmet", "Łukasz",
                                                    "Sophie", "Paul",   "Chloé", "Björn",  "Li"};
constexpr std::array<const char*, 10> k_last_names{"Müller", "Schmidt",     "O'Neill", "Nguyễn",
                                                   "Weber",  "Öztürk",      "Fischer", "Dąbrowski",
                                                   "Becker", "van der Berg"};
constexpr std::array<const char*, 6> k_companies{
    "Acme GmbH",         "Müller & Söhne KG",    "Beispiel AG",
    "Nordwind Logistik", "\"Quote\" Consulting", "Café Zentral"};
constexpr std::array<const char*, 6> k_cities{"Berlin", "Hamburg", "München",
                                              "Köln",   "Wien",    "Zürich"};
constexpr std::array<const char*, 5> k_comments{
    "Rückruf erwünscht", "Kunde sagt: \"bitte nur vormittags\"", "Line 1\nLine 2",
    "Path C:\\temp\\notes.txt", "Tab\tseparated"};
constexpr std::array<const char*, 3> k_timezones{"Europe/Berlin", "Europe/Vienna", "Europe/Zurich"};
constexpr std::array<const char*, 3> k_sources{"import", "api", "manual"};

struct NormalField {
    const char* name;
    const char* field_type;
};

// The first eight fields look like a real campaign form; more are numbered.
constexpr std::array<NormalField, 8> k_normal_fields{{
    {"firstname", "text"},
    {"lastname", "text"},
    {"revenue", "number"},
    {"company", "text"},
    {"city", "text"},
    {"customer_no", "number"},
    {"email", "text"},
    {"notes", "text"},
}};

std::string long_field_name() {
    std::string name;
    while (name.size() < 100) {
        name += "sehr_langer_feldname_";
    }
    name.resize(100);
    return name;
}

std::string huge_value() {
    std::string value;
    value.reserve(k_hostile_huge_value_size);
    const std::string_view chunk =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ|";
    while (value.size() + chunk.size() <= k_hostile_huge_value_size) {
        value += chunk;
    }
    value.resize(k_hostile_huge_value_size, '.');
    return value;
}

void write_time_or_skip(JsonWriter& w, std::string_view key, const std::optional<std::int64_t>& t) {
    if (t) {
        w.key(key).str(format_iso_ms(*t));
    }
}

void write_connection(JsonWriter& w, const ConnectionModel& c) {
    w.begin_object();
    w.key("id").str(c.id);
    w.key("call_uuid").str(c.call_uuid);
    w.key("global_call_uuid").str(c.global_call_uuid);
    w.key("task_id").str(c.task_id);
    w.key("phone").str(c.phone);
    w.key("user").str_or_null(c.user);
    w.key("actor").str(c.actor);
    w.key("hangup_party").str(c.hangup_party);
    w.key("isThirdPartyConnection").boolean(c.third_party);
    w.key("dialerdomain").str(c.dialerdomain);
    w.key("fired").str(format_iso_ms(c.fired));
    w.key("started").str(format_iso_ms(c.started));
    w.key("initiated").str(format_iso_ms(c.initiated));
    write_time_or_skip(w, "connected", c.connected);
    write_time_or_skip(w, "disconnected", c.disconnected);
    write_time_or_skip(w, "ended", c.ended);
    if (c.duration_sec) {
        w.key("duration").integer(*c.duration_sec);
    }
    w.key("remote_number").str(c.remote_number);
    w.key("line_number").str(c.line_number);
    w.key("technology").str(c.technology);
    w.key("result").str(c.result);
    w.key("code").integer(c.code);
    w.key("call_initiated").str(format_iso_ms(c.initiated));
    write_time_or_skip(w, "call_connected", c.connected);
    write_time_or_skip(w, "call_disconnected", c.disconnected);
    if (c.transfer_target_address) {
        w.key("transfer_target_address").str(*c.transfer_target_address);
    }
    w.key("recordings").begin_array();
    for (const auto& r : c.recordings) {
        w.begin_object();
        w.key("started").str(format_iso_ms(r.started));
        w.key("stopped").str(format_iso_ms(r.stopped));
        w.key("filename").str(r.filename);
        w.key("location").str_or_null(r.location);
        w.end_object();
    }
    w.end_array();
    if (!c.third_party_connections.empty()) {
        w.key("third_party_connections").begin_array();
        for (const auto& child : c.third_party_connections) {
            write_connection(w, child);
        }
        w.end_array();
    }
    w.end_object();
}

void write_transaction(JsonWriter& w, const TransactionModel& t) {
    w.begin_object();
    if (t.fired) {
        w.key("fired").str(format_iso_ms(*t.fired));
    }
    w.key("type").str(t.type);
    w.key("task_id").str(t.task_id);
    w.key("task").str(t.task);
    w.key("status").str(t.status);
    w.key("status_detail").str(t.status_detail);
    if (t.pause_time_text) {
        w.key("pause_time_sec").str(*t.pause_time_text);
    } else {
        w.key("pause_time_sec").decimal(t.pause_time_sec);
    }
    w.key("edit_time_sec").decimal(t.edit_time_sec);
    w.key("wrapup_time_sec").decimal(t.wrapup_time_sec);
    w.key("user").str_or_null(t.user);
    w.key("user_loginName").str_or_null(t.user_login_name);
    w.key("user_branch").str_or_null(t.user_branch);
    w.key("user_tenantAlias").str_or_null(t.user_tenant_alias);
    w.key("actor").str(t.actor);
    w.key("result").str(t.result);
    w.key("trigger").str(t.trigger);
    w.key("isHI").boolean(t.is_hi());
    w.key("revoked").boolean(t.revoked);
    w.key("connections").begin_array();
    for (const auto& c : t.connections) {
        write_connection(w, c);
    }
    w.end_array();
    w.end_object();
}

} // namespace

const std::vector<FieldDef>& hostile_fields() {
    static const std::vector<FieldDef> k_fields{
        {"say \"hi\"", "text"},
        {"O'Brien", "text"},
        {"back`tick", "text"},
        {"bracket]name", "text"},
        {"x;-- DROP TABLE contacts", "text"},
        {"with space", "text"},
        {"Zähler_Nr", "number"},
        {long_field_name(), "text"},
        {"Kundennummer", "text"},
        {"KUNDENNUMMER", "text"},
        {"$id", "text"},
        {"_raw", "text"},
    };
    return k_fields;
}

std::int64_t ContactModel::changed() const {
    std::int64_t latest = created;
    for (const auto& log_entry : task_log) {
        for (const auto& tx : log_entry.transactions) {
            if (tx.fired) {
                latest = std::max(latest, *tx.fired);
            }
        }
    }
    return latest;
}

CampaignGenerator::CampaignGenerator(FakeCampaignOptions options, std::int64_t history_end_ms)
    : m_options(std::move(options)), m_history_end(history_end_ms),
      m_history_start(
          history_end_ms -
          std::chrono::duration_cast<std::chrono::milliseconds>(m_options.history_span).count()) {
    if (m_options.contacts > k_max_contacts) {
        throw std::invalid_argument("too many contacts for the fake campaign");
    }
    if (m_options.hostile && m_options.contacts < k_hostile_min_contacts) {
        throw std::invalid_argument("a hostile fake campaign needs at least 8 contacts");
    }
    if (m_history_end - m_history_start < k_ms_per_day) {
        throw std::invalid_argument("the fake campaign history must span at least one day");
    }
}

std::vector<FieldDef> CampaignGenerator::initial_fields() const {
    std::vector<FieldDef> fields;
    for (std::size_t i = 0; i < m_options.custom_fields; ++i) {
        if (i < k_normal_fields.size()) {
            fields.push_back({k_normal_fields[i].name, k_normal_fields[i].field_type});
        } else {
            std::array<char, 32> name{};
            std::snprintf(name.data(), name.size(), "field_%02zu", i + 1);
            fields.push_back({name.data(), i % 3 == 2 ? "number" : "text"});
        }
        // Dialfire lists the form in its order, with retired and layout entries in between.
        if (i == 1) {
            fields.push_back({"old_score", "number", "field", "hidden", true});
            fields.push_back({"section_contact", "section", "section", "active", false});
        }
    }
    if (m_options.custom_fields < 2) {
        fields.push_back({"old_score", "number", "field", "hidden", true});
        fields.push_back({"section_contact", "section", "section", "active", false});
    }
    if (m_options.hostile) {
        const auto& extra = hostile_fields();
        fields.insert(fields.end(), extra.begin(), extra.end());
    }
    return fields;
}

std::string CampaignGenerator::contact_id(std::size_t index) const {
    const auto key = mix64(m_options.seed ^ k_salt_contact_id);
    return encode_id(mix64(static_cast<std::uint64_t>(index) ^ key),
                     hash_of({m_options.seed, index, k_salt_contact_id}));
}

std::string CampaignGenerator::task_id_for(std::string_view task) const {
    const auto h = hash_of({m_options.seed, k_salt_task, hash_text(task)});
    return encode_id(h, h >> 40);
}

std::string CampaignGenerator::hostile_value_field() const {
    for (std::size_t i = 0; i < m_options.custom_fields && i < k_normal_fields.size(); ++i) {
        if (std::string_view(k_normal_fields[i].field_type) == "text") {
            return k_normal_fields[i].name;
        }
    }
    for (std::size_t i = k_normal_fields.size(); i < m_options.custom_fields; ++i) {
        if (i % 3 != 2) {
            std::array<char, 32> name{};
            std::snprintf(name.data(), name.size(), "field_%02zu", i + 1);
            return name.data();
        }
    }
    return "with space";
}

ConnectionModel CampaignGenerator::make_connection(std::uint64_t rng_seed,
                                                   std::size_t contact_index,
                                                   std::uint32_t& connection_serial,
                                                   std::int64_t fired, const std::string& task_id,
                                                   const std::string& phone,
                                                   const std::optional<std::string>& user) const {
    Rng rng(rng_seed);
    ConnectionModel c;
    const auto unique = (static_cast<std::uint64_t>(contact_index) << 24) | connection_serial++;
    c.id = encode_id(mix64(unique ^ mix64(m_options.seed ^ k_salt_connection)), rng.next());
    c.call_uuid = uuid_from(rng.next(), rng.next());
    c.global_call_uuid = uuid_from(rng.next(), rng.next());
    c.task_id = task_id;
    c.phone = phone;
    c.user = user;
    c.actor = user ? "user" : "dialer";
    c.dialerdomain = "dialer-eu-1.dialfire.com";
    c.initiated = fired;
    c.started = fired;
    c.fired = fired;
    c.remote_number = phone;
    c.line_number = "+4930555" + digits(rng, 4);
    c.technology = "phone";
    if (rng.percent(70)) {
        c.connected = c.initiated + rng.between(2'000, 25'000);
        c.duration_sec = rng.between(5, 600);
        c.disconnected = *c.connected + *c.duration_sec * 1000 + rng.between(0, 999);
        c.ended = *c.disconnected + rng.between(0, 1'500);
        c.result = "connected";
        c.code = 200;
        c.hangup_party = rng.percent(50) ? "agent" : "customer";
        const auto recordings = rng.below(m_options.max_recordings_per_connection + 1);
        for (std::uint64_t i = 0; i < recordings; ++i) {
            RecordingModel r;
            r.started = *c.connected + static_cast<std::int64_t>(i) * 1000;
            r.stopped = *c.disconnected;
            r.filename = c.id + "_" + std::to_string(i) + ".mp3";
            if (!rng.percent(10)) {
                r.location = "gs://df-recordings-eu/" + m_options.campaign_id + "/" + r.filename;
            }
            c.recordings.push_back(std::move(r));
        }
    } else {
        c.disconnected = c.initiated + rng.between(15'000, 40'000);
        c.ended = *c.disconnected + rng.between(0, 500);
        c.duration_sec = 0;
        static constexpr std::array<std::pair<const char*, int>, 3> k_failures{
            {{"no_answer", 480}, {"busy", 486}, {"failed", 503}}};
        const auto& failure = rng.pick(k_failures);
        c.result = failure.first;
        c.code = failure.second;
        c.hangup_party = "customer";
    }
    return c;
}

TransactionModel CampaignGenerator::make_transaction(std::uint64_t rng_seed,
                                                     std::size_t contact_index,
                                                     std::uint32_t& connection_serial,
                                                     std::int64_t fired, const std::string& task,
                                                     const std::string& phone) const {
    Rng rng(rng_seed);
    TransactionModel t;
    t.fired = fired;
    t.type = "update";
    t.task = task;
    t.task_id = task_id_for(task);
    const auto roll = rng.below(100);
    const auto& agent = rng.pick(k_agents);
    const auto set_agent = [&] {
        const auto user_hash = hash_of({m_options.seed, k_salt_user, hash_text(agent.login)});
        t.user = encode_id(user_hash, user_hash >> 40);
        t.user_login_name = agent.login;
        t.user_branch = agent.branch;
        t.user_tenant_alias = "acme";
    };
    if (roll < 12) {
        // Workflow assignment: mostly to nobody, sometimes to an agent; never "human".
        t.actor = "system";
        t.trigger = "workflow";
        t.status = "open";
        t.status_detail = "$assigned";
        t.result = "assigned";
        if (rng.percent(30)) {
            set_agent();
        }
    } else if (roll < 17) {
        t.actor = "api";
        t.trigger = "api";
        t.status = "open";
        t.status_detail = "callback";
        t.result = "open";
    } else {
        set_agent();
        t.actor = "user";
        t.trigger = rng.percent(60) ? "dialer" : "user";
        const auto outcome = rng.below(10);
        if (outcome < 4) {
            t.status = "success";
            t.status_detail = rng.pick(k_success_details);
        } else if (outcome < 6) {
            t.status = "failed";
            t.status_detail = rng.pick(k_failed_details);
        } else if (outcome < 9) {
            t.status = "open";
            t.status_detail = rng.pick(k_open_details);
        } else {
            t.status = "declined";
            t.status_detail = "declined";
        }
        t.result = t.status;
    }
    t.pause_time_sec = rng.decimal(0, 30);
    t.edit_time_sec = rng.decimal(5, 300);
    t.wrapup_time_sec = rng.decimal(0, 60);
    t.revoked = rng.percent(3);

    const bool calls = t.actor != "system" && t.actor != "api" && !rng.percent(10);
    if (calls) {
        const auto count = static_cast<std::int64_t>(m_options.connections_per_transaction);
        for (std::int64_t i = 0; i < count; ++i) {
            // Calls end before the transaction is saved; earlier calls come first.
            const auto start = fired - (count - i) * 900'000 + rng.between(0, 200'000);
            auto call = make_connection(rng.next(), contact_index, connection_serial, start,
                                        t.task_id, phone, t.user);
            const bool transfer = call.connected && rng.percent(10);
            const bool third_party = call.connected && rng.percent(10);
            if (third_party) {
                auto child = make_connection(rng.next(), contact_index, connection_serial,
                                             *call.connected + 5'000, t.task_id,
                                             "+4940777" + digits(rng, 4), t.user);
                child.third_party = true;
                child.recordings.clear();
                call.third_party_connections.push_back(std::move(child));
            }
            std::optional<ConnectionModel> transfer_call;
            if (transfer) {
                const auto target = "+4989123" + digits(rng, 4);
                transfer_call =
                    make_connection(rng.next(), contact_index, connection_serial,
                                    *call.connected + 10'000, t.task_id, target, t.user);
                transfer_call->technology = "transfer";
                transfer_call->transfer_target_address = "sip:" + target + "@pbx.example.com";
            }
            t.connections.push_back(std::move(call));
            if (transfer_call) {
                t.connections.push_back(std::move(*transfer_call));
            }
        }
    }
    return t;
}

CustomValue CampaignGenerator::custom_value(std::size_t contact_index, std::size_t field_index,
                                            std::uint64_t revision, const FieldDef& field) const {
    Rng rng(hash_of({m_options.seed, k_salt_field, contact_index, field_index, revision}));
    const std::string_view name = field.name;
    if (name == "firstname") {
        return std::string(rng.pick(k_first_names));
    }
    if (name == "lastname") {
        return std::string(rng.pick(k_last_names));
    }
    if (name == "company") {
        return std::string(rng.pick(k_companies));
    }
    if (name == "city") {
        return std::string(rng.pick(k_cities));
    }
    if (name == "email") {
        return "contact" + std::to_string(contact_index) + "." + std::to_string(revision) +
               "@example.com";
    }
    if (name == "revenue") {
        return static_cast<double>(rng.between(0, 10'000'000)) / 100.0;
    }
    if (name == "_raw") {
        return std::string(R"({"looks":"like json"})");
    }
    if (field.field_type == "number") {
        if (rng.percent(20)) {
            return static_cast<double>(rng.between(0, 999'999)) / 1000.0;
        }
        return rng.between(0, 99'999);
    }
    return "v" + std::to_string(rng.below(100'000)) + " " + std::string(rng.pick(k_cities));
}

ContactModel CampaignGenerator::contact(std::size_t index,
                                        std::span<const std::int64_t> touch_times,
                                        std::size_t field_count,
                                        const std::vector<FieldDef>& fields) const {
    Rng rng(hash_of({m_options.seed, k_salt_contact, index}));
    const bool hostile = m_options.hostile;
    ContactModel c;
    c.id = contact_id(index);
    c.omit_id = hostile && index == k_hostile_no_id;
    c.ref = "K" + digits(rng, 7);
    c.campaign_id = m_options.campaign_id;
    c.phone = "+49" + std::to_string(rng.between(30, 89)) + digits(rng, 7);
    c.timezone = rng.pick(k_timezones);
    c.caller_id = "+4930555" + digits(rng, 4);
    c.source = rng.pick(k_sources);
    const auto span = m_history_end - m_history_start;
    c.created = m_history_start + rng.between(0, span * 7 / 10);

    // Base transactions: sorted random instants after creation, strictly increasing.
    const auto tx_count = m_options.transactions_per_contact;
    std::vector<std::int64_t> fired(tx_count);
    for (auto& f : fired) {
        f = rng.between(c.created + 1, m_history_end);
    }
    std::sort(fired.begin(), fired.end());
    for (std::size_t i = 1; i < fired.size(); ++i) {
        fired[i] = std::max(fired[i], fired[i - 1] + 1);
    }
    if (hostile && index == k_hostile_dup_fired && fired.size() >= 2) {
        fired[1] = fired[0];
    }

    std::vector<std::string> tasks{"fc_call"};
    if (tx_count >= 2 && rng.percent(50)) {
        tasks.emplace_back("qc_check");
    }
    if (tx_count >= 3 && rng.percent(30)) {
        tasks.emplace_back("other_task");
    }
    for (const auto& task : tasks) {
        c.task_log.push_back({task_id_for(task), task, 0, {}});
    }
    std::uint32_t serial = 0;
    for (std::size_t j = 0; j < tx_count; ++j) {
        auto& log_entry = c.task_log[j * tasks.size() / tx_count];
        auto tx = make_transaction(hash_of({m_options.seed, k_salt_transaction, index, j}), index,
                                   serial, fired[j], log_entry.task, c.phone);
        if (j == 0 && rng.percent(30)) {
            tx.type = "create";
        } else if (j > 0 && rng.percent(2)) {
            tx.type = "delete";
        }
        if (log_entry.transactions.empty()) {
            log_entry.entered = fired[j] - rng.between(1'000, 3'600'000);
        }
        log_entry.transactions.push_back(std::move(tx));
    }
    // A task_log entry without transactions is legal; keep one only if nothing was generated.
    std::erase_if(c.task_log, [](const TaskLogModel& e) { return e.transactions.empty(); });
    if (c.task_log.empty()) {
        c.task_log.push_back({task_id_for("fc_call"), "fc_call", c.created, {}});
    }

    if (hostile && index == k_hostile_pause && !c.task_log.front().transactions.empty()) {
        c.task_log.front().transactions.front().pause_time_text = "abc";
    }
    if (hostile && index == k_hostile_no_fired && !c.task_log.back().transactions.empty()) {
        c.task_log.back().transactions.back().fired.reset();
    }

    // Touches append transactions to the last task_log entry, so existing E4 pointers
    // (taskLogIdx,txIdx) stay valid.
    auto& last_entry = c.task_log.back();
    for (std::size_t k = 0; k < touch_times.size(); ++k) {
        std::uint32_t touch_serial =
            k_touch_serial_base + static_cast<std::uint32_t>(k) * k_serials_per_touch;
        auto tx = make_transaction(hash_of({m_options.seed, k_salt_touch, index, k}), index,
                                   touch_serial, touch_times[k], last_entry.task, c.phone);
        last_entry.transactions.push_back(std::move(tx));
    }

    if (index % k_running_call_period == k_running_call_offset) {
        auto& last_tx = c.task_log.back().transactions;
        if (!last_tx.empty() && !last_tx.back().connections.empty()) {
            auto& call = last_tx.back().connections.back();
            call.disconnected.reset();
            call.ended.reset();
            call.duration_sec.reset();
            call.recordings.clear();
        }
    }

    const TransactionModel* latest = nullptr;
    for (const auto& entry : c.task_log) {
        for (const auto& tx : entry.transactions) {
            if (tx.fired && (latest == nullptr || *tx.fired >= *latest->fired)) {
                latest = &tx;
            }
        }
    }
    c.task_id = c.task_log.back().task_id;
    c.task = c.task_log.back().task;
    c.entry = c.task_log.back().entered;
    c.status = latest != nullptr ? latest->status : "open";
    c.status_detail = latest != nullptr ? latest->status_detail : "$none";
    c.owner = latest != nullptr ? latest->user_login_name : std::nullopt;
    if (latest != nullptr && latest->status == "open") {
        c.follow_up = *latest->fired + rng.between(3'600'000, 3 * k_ms_per_day);
    }
    c.version = static_cast<std::int64_t>(1 + tx_count + touch_times.size());
    if (rng.percent(30)) {
        c.comment = rng.pick(k_comments);
    }
    if (rng.percent(3)) {
        c.error = "invalid phone number";
    }
    if (rng.percent(20)) {
        c.recording = "enabled";
        c.recording_url = "https://api.dialfire.com/recordings/" + c.id + ".mp3";
    }

    // Custom values. Touch number v (1-based) rewrites field (v - 1) % field_count, so a touch
    // changes data as an agent would, and the md5 changes with it.
    const auto touches = static_cast<std::uint64_t>(touch_times.size());
    const auto known = std::min(field_count, fields.size());
    const auto value_field = hostile ? hostile_value_field() : std::string();
    for (std::size_t f = 0; f < known; ++f) {
        const auto& field = fields[f];
        if (field.type != "field" || field.name == "$id") {
            continue;
        }
        if (field.deleted && index % 2 == 1) {
            continue; // Retired fields linger only on older contacts.
        }
        std::uint64_t revision = 0;
        if (touches > f) {
            revision = f + 1 + (touches - (f + 1)) / known * known;
        }
        Rng presence(hash_of({m_options.seed, k_salt_field, index, f, revision, 1}));
        if (hostile && field.name == value_field && index >= k_hostile_huge &&
            index <= k_hostile_nul) {
            if (index == k_hostile_huge) {
                c.custom.emplace_back(f, huge_value());
            } else if (index == k_hostile_utf8) {
                c.custom.emplace_back(f, std::string("M\xC3\x28ller \xFF GmbH"));
            } else {
                c.custom.emplace_back(f, std::string("before\0after", 12));
            }
            continue;
        }
        const auto roll = presence.below(100);
        if (roll < 8) {
            continue; // Key absent.
        }
        if (roll < 12) {
            c.custom.emplace_back(f, std::monostate{});
            continue;
        }
        if (roll < 15 && field.field_type != "number") {
            c.custom.emplace_back(f, std::string());
            continue;
        }
        c.custom.emplace_back(f, custom_value(index, f, revision, field));
    }
    return c;
}

std::int64_t CampaignGenerator::inbound_call_time(std::size_t index) const {
    // Evenly spaced slots with jitter inside each slot keep the calls sorted by index.
    const auto n = static_cast<std::int64_t>(std::max<std::size_t>(m_options.inbound_calls, 1));
    const auto slot = (m_history_end - m_history_start) / n;
    Rng rng(hash_of({m_options.seed, k_salt_inbound, index}));
    return m_history_start + static_cast<std::int64_t>(index) * slot +
           rng.between(0, std::max<std::int64_t>(slot - 1, 0));
}

InboundCallModel CampaignGenerator::inbound_call(std::size_t index) const {
    Rng rng(hash_of({m_options.seed, k_salt_inbound, index, 1}));
    InboundCallModel call;
    const auto key = mix64(m_options.seed ^ k_salt_inbound);
    call.id = encode_id(mix64(static_cast<std::uint64_t>(index) ^ key), rng.next());
    call.line_id = encode_id(hash_of({m_options.seed, k_salt_inbound, 7}), 1);
    call.task_name = "fc_call";
    call.task_id = task_id_for(call.task_name);
    if (m_options.contacts > 0 && rng.percent(70)) {
        call.contact_id = contact_id(static_cast<std::size_t>(rng.below(m_options.contacts)));
    }
    call.calling_number = "+49" + std::to_string(rng.between(30, 89)) + digits(rng, 7);
    call.called_number = "+49305550000";
    call.call_time = inbound_call_time(index);
    const auto state = rng.below(10);
    if (state < 6) {
        call.connectable_time = call.call_time + rng.between(500, 3'000);
        call.connect_time = *call.connectable_time + rng.between(1'000, 30'000);
        call.hangup_time = *call.connect_time + rng.between(10'000, 900'000);
        const auto& agent = rng.pick(k_agents);
        const auto user_hash = hash_of({m_options.seed, k_salt_user, hash_text(agent.login)});
        call.user = encode_id(user_hash, user_hash >> 40);
        call.state = "connected";
        call.disposition = "answered";
    } else if (state < 9) {
        call.connectable_time = call.call_time + rng.between(500, 3'000);
        call.hangup_time = *call.connectable_time + rng.between(5'000, 120'000);
        call.state = "abandoned";
        call.disposition = "caller_hangup";
    } else {
        call.hangup_time = call.call_time + rng.between(100, 2'000);
        call.state = "failed";
        call.disposition = "no_agent";
        call.dispatch_error = true;
    }
    return call;
}

std::vector<HostileItem> CampaignGenerator::hostile_items() const {
    if (!m_options.hostile) {
        return {};
    }
    const auto& f = hostile_fields();
    const auto value_field = hostile_value_field();
    std::vector<HostileItem> items{
        {HostileCase::field_name_double_quote, "", f[0].name, "field name with double quotes"},
        {HostileCase::field_name_single_quote, "", f[1].name, "field name with a single quote"},
        {HostileCase::field_name_backtick, "", f[2].name, "field name with a backtick"},
        {HostileCase::field_name_bracket, "", f[3].name, "field name with ']'"},
        {HostileCase::field_name_sql_comment, "", f[4].name, "field name with ';--'"},
        {HostileCase::field_name_space, "", f[5].name, "field name with a space"},
        {HostileCase::field_name_non_ascii, "", f[6].name, "non-ASCII field name (number)"},
        {HostileCase::field_name_100_chars, "", f[7].name, "100-character field name"},
        {HostileCase::field_name_case_twin, "", f[8].name, "differs from the next only in case"},
        {HostileCase::field_name_case_twin, "", f[9].name, "differs from the previous in case"},
        {HostileCase::field_name_reserved_id, "", f[10].name, "custom field named $id (no values)"},
        {HostileCase::field_name_raw, "", f[11].name, "custom field named _raw"},
        {HostileCase::value_1mb, contact_id(k_hostile_huge), value_field, "1 MiB string value"},
        {HostileCase::value_invalid_utf8, contact_id(k_hostile_utf8), value_field,
         "raw bytes C3 28 and FF in a string"},
        {HostileCase::value_nul, contact_id(k_hostile_nul), value_field, "\\u0000 inside a string"},
        {HostileCase::contact_without_id, contact_id(k_hostile_no_id), "", "E3 object has no $id"},
    };
    if (m_options.transactions_per_contact >= 1) {
        items.push_back({HostileCase::pause_time_not_number, contact_id(k_hostile_pause), "",
                         "first transaction has pause_time_sec \"abc\""});
        items.push_back({HostileCase::transaction_without_fired, contact_id(k_hostile_no_fired), "",
                         "last base transaction has no fired (and so no E4 event)"});
    }
    if (m_options.transactions_per_contact >= 2) {
        items.push_back({HostileCase::duplicate_fired, contact_id(k_hostile_dup_fired), "",
                         "first two transactions share one fired millisecond"});
    }
    return items;
}

std::string serialize_contact(const ContactModel& c, const std::vector<FieldDef>& fields,
                              bool include_md5, std::string* md5) {
    // Everything after $id/$md5 goes into `rest`; the md5 covers "$id" plus `rest`, so it is a
    // function of the whole visible contact.
    std::string rest;
    rest.reserve(4096);
    JsonWriter w(rest);
    w.begin_object();
    w.key("$ref").str(c.ref);
    w.key("$version").integer(c.version);
    w.key("$campaign_id").str(c.campaign_id);
    w.key("$task_id").str(c.task_id);
    w.key("$task").str(c.task);
    w.key("$status").str(c.status);
    w.key("$status_detail").str(c.status_detail);
    w.key("$created_date").str(format_iso_ms(c.created));
    w.key("$entry_date").str(format_iso_ms(c.entry));
    w.key("$owner").str_or_null(c.owner);
    if (c.follow_up) {
        w.key("$follow_up_date").str(format_iso_ms(*c.follow_up));
    } else {
        w.key("$follow_up_date").null();
    }
    w.key("$phone").str(c.phone);
    w.key("$timezone").str(c.timezone);
    w.key("$caller_id").str(c.caller_id);
    w.key("$source").str(c.source);
    w.key("$comment").str_or_null(c.comment);
    w.key("$error").str_or_null(c.error);
    w.key("$recording").str_or_null(c.recording);
    w.key("$recording_url").str_or_null(c.recording_url);
    for (const auto& [field_index, value] : c.custom) {
        w.key(fields[field_index].name);
        if (const auto* s = std::get_if<std::string>(&value)) {
            w.str(*s);
        } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
            w.integer(*i);
        } else if (const auto* d = std::get_if<double>(&value)) {
            w.decimal(*d);
        } else {
            w.null();
        }
    }
    w.key("$task_log").begin_array();
    for (const auto& entry : c.task_log) {
        w.begin_object();
        w.key("task_id").str(entry.task_id);
        w.key("task").str(entry.task);
        w.key("entered").str(format_iso_ms(entry.entered));
        w.key("transactions").begin_array();
        for (const auto& tx : entry.transactions) {
            write_transaction(w, tx);
        }
        w.end_array();
        w.end_object();
    }
    w.end_array();
    w.end_object();

    std::string head = "{";
    if (!c.omit_id) {
        JsonWriter hw(head);
        hw.str("$id");
        head += ':';
        JsonWriter(head).str(c.id);
        head += ',';
    }
    const auto hash = md5_hex(head + rest);
    if (md5 != nullptr) {
        *md5 = hash;
    }
    if (!include_md5) {
        return head + rest.substr(1);
    }
    return head + "\"$md5\":\"" + hash + "\"," + rest.substr(1);
}

std::string serialize_inbound_call(const InboundCallModel& call, const std::string& campaign_id) {
    std::string out;
    JsonWriter w(out);
    w.begin_object();
    w.key("id").str(call.id);
    w.key("line_id").str(call.line_id);
    w.key("campaign_id").str(campaign_id);
    w.key("task_id").str(call.task_id);
    w.key("task_name").str(call.task_name);
    w.key("contact_id").str_or_null(call.contact_id);
    w.key("calling_number").str(call.calling_number);
    w.key("called_number").str(call.called_number);
    w.key("call_time").str(format_iso_ms(call.call_time));
    if (call.connect_time) {
        w.key("connect_time").str(format_iso_ms(*call.connect_time));
    } else {
        w.key("connect_time").null();
    }
    w.key("hangup_time").str(format_iso_ms(call.hangup_time));
    w.key("user").str_or_null(call.user);
    w.key("state").str(call.state);
    if (call.connectable_time) {
        w.key("connectable_time").str(format_iso_ms(*call.connectable_time));
    } else {
        w.key("connectable_time").null();
    }
    w.key("disposition").str(call.disposition);
    w.key("dispatch_error").boolean(call.dispatch_error);
    w.end_object();
    return out;
}

std::string md5_hex(std::string_view data) {
    std::array<unsigned char, 16> digest{};
    unsigned int length = 0;
    EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_md5(), nullptr);
    static constexpr std::string_view k_hex = "0123456789abcdef";
    std::string out;
    out.reserve(32);
    for (unsigned int i = 0; i < length; ++i) {
        out += k_hex[digest[i] >> 4];
        out += k_hex[digest[i] & 15U];
    }
    return out;
}

} // namespace crmsync::fakes
