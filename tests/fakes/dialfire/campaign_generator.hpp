#pragma once

// Deterministic generation of a Dialfire campaign. Nothing here holds per-contact data: a
// contact is rebuilt from (seed, index, revision) whenever it is needed, so 100,000 contacts
// cost only the small per-contact state DialfireFake keeps.

#include "tests/fakes/dialfire/fake_campaign.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace crmsync::fakes {

struct RecordingModel {
    std::int64_t started = 0;
    std::int64_t stopped = 0;
    std::string filename;
    std::optional<std::string> location;
};

struct ConnectionModel {
    std::string id;
    std::string call_uuid;
    std::string global_call_uuid;
    std::string task_id;
    std::string phone;
    std::optional<std::string> user;
    std::string actor;
    std::string hangup_party;
    bool third_party = false;
    std::string dialerdomain;
    std::int64_t fired = 0;
    std::int64_t started = 0;
    std::int64_t initiated = 0;
    std::optional<std::int64_t> connected;
    /// Absent while the call is still running.
    std::optional<std::int64_t> disconnected;
    std::optional<std::int64_t> ended;
    std::optional<std::int64_t> duration_sec;
    std::string remote_number;
    std::string line_number;
    std::string technology;
    std::string result;
    int code = 0;
    std::optional<std::string> transfer_target_address;
    std::vector<RecordingModel> recordings;
    std::vector<ConnectionModel> third_party_connections;
};

struct TransactionModel {
    std::optional<std::int64_t> fired;
    std::string type;
    std::string task_id;
    std::string task;
    std::string status;
    std::string status_detail;
    double pause_time_sec = 0;
    double edit_time_sec = 0;
    double wrapup_time_sec = 0;
    /// Replaces the numeric pause_time_sec (hostile data).
    std::optional<std::string> pause_time_text;
    std::optional<std::string> user;
    std::optional<std::string> user_login_name;
    std::optional<std::string> user_branch;
    std::optional<std::string> user_tenant_alias;
    std::string actor;
    std::string result;
    std::string trigger;
    bool revoked = false;
    std::vector<ConnectionModel> connections;

    /// The E4 `hi=true` rule: a human user and not a mere assignment.
    [[nodiscard]] bool is_hi() const { return user.has_value() && status_detail != "$assigned"; }
};

struct TaskLogModel {
    std::string task_id;
    std::string task;
    std::int64_t entered = 0;
    std::vector<TransactionModel> transactions;
};

using CustomValue = std::variant<std::monostate, std::string, std::int64_t, double>;

struct ContactModel {
    std::string id;
    bool omit_id = false;
    std::string ref;
    std::int64_t version = 0;
    std::string campaign_id;
    std::string task_id;
    std::string task;
    std::string status;
    std::string status_detail;
    std::int64_t created = 0;
    std::int64_t entry = 0;
    std::optional<std::string> owner;
    std::optional<std::int64_t> follow_up;
    std::string phone;
    std::string timezone;
    std::string caller_id;
    std::string source;
    std::optional<std::string> comment;
    std::optional<std::string> error;
    std::optional<std::string> recording;
    std::optional<std::string> recording_url;
    /// (index into the field list, value); fields without a value are absent.
    std::vector<std::pair<std::size_t, CustomValue>> custom;
    std::vector<TaskLogModel> task_log;

    /// Latest of creation and every transaction: the E2 change time.
    [[nodiscard]] std::int64_t changed() const;
};

struct InboundCallModel {
    std::string id;
    std::string line_id;
    std::string task_id;
    std::string task_name;
    std::optional<std::string> contact_id;
    std::string calling_number;
    std::string called_number;
    std::int64_t call_time = 0;
    std::optional<std::int64_t> connect_time;
    std::int64_t hangup_time = 0;
    std::optional<std::string> user;
    std::string state;
    std::optional<std::int64_t> connectable_time;
    std::string disposition;
    bool dispatch_error = false;
};

class CampaignGenerator {
public:
    /// Throws std::invalid_argument for a hostile campaign with fewer than 8 contacts.
    CampaignGenerator(FakeCampaignOptions options, std::int64_t history_end_ms);

    [[nodiscard]] const FakeCampaignOptions& options() const { return m_options; }
    [[nodiscard]] std::int64_t history_end_ms() const { return m_history_end; }

    /// E1 at start-up: normal fields, one deleted field, one non-field entry, hostile fields.
    [[nodiscard]] std::vector<FieldDef> initial_fields() const;

    /// 16 upper-case alphanumerics, unique per index.
    [[nodiscard]] std::string contact_id(std::size_t index) const;

    /// Contact `index` after the touches at `touch_times` (ascending). Custom fields
    /// [0, field_count) of `fields` may carry values.
    [[nodiscard]] ContactModel contact(std::size_t index, std::span<const std::int64_t> touch_times,
                                       std::size_t field_count,
                                       const std::vector<FieldDef>& fields) const;

    /// Calls are ordered by call_time: call_time(i) <= call_time(i + 1).
    [[nodiscard]] InboundCallModel inbound_call(std::size_t index) const;
    [[nodiscard]] std::int64_t inbound_call_time(std::size_t index) const;

    [[nodiscard]] std::vector<HostileItem> hostile_items() const;

private:
    TransactionModel make_transaction(std::uint64_t rng_seed, std::size_t contact_index,
                                      std::uint32_t& connection_serial, std::int64_t fired,
                                      const std::string& task, const std::string& phone) const;
    ConnectionModel make_connection(std::uint64_t rng_seed, std::size_t contact_index,
                                    std::uint32_t& connection_serial, std::int64_t fired,
                                    const std::string& task_id, const std::string& phone,
                                    const std::optional<std::string>& user) const;
    CustomValue custom_value(std::size_t contact_index, std::size_t field_index,
                             std::uint64_t revision, const FieldDef& field) const;
    std::string task_id_for(std::string_view task) const;
    std::string hostile_value_field() const;

    FakeCampaignOptions m_options;
    std::int64_t m_history_end;
    std::int64_t m_history_start;
};

/// Serializes a contact as E3 sends it. `md5` receives the contact's $md5 (lower-case hex of
/// the object without $md5); with `include_md5` the object also carries it.
std::string serialize_contact(const ContactModel& contact, const std::vector<FieldDef>& fields,
                              bool include_md5, std::string* md5 = nullptr);

std::string serialize_inbound_call(const InboundCallModel& call, const std::string& campaign_id);

/// Lower-case hex MD5.
std::string md5_hex(std::string_view data);

} // namespace crmsync::fakes
