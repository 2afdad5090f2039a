#include "drivers/facebook/lead_fields.hpp"

#include "lib/util/ascii.hpp"
#include "lib/util/time.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <array>
#include <map>
#include <optional>
#include <string_view>

namespace crmsync::drivers::facebook {
namespace {

using nlohmann::json;

constexpr std::size_t k_raw_excerpt_bytes = 300;

std::string trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

// A question's answer: its values joined; scalars other than strings as JSON writes them.
std::string answer_text(const json& values) {
    if (values.is_string()) {
        return trimmed(values.get<std::string>());
    }
    if (!values.is_array()) {
        return values.is_null() ? std::string() : values.dump();
    }
    std::string out;
    for (const auto& v : values) {
        const std::string part = v.is_string() ? trimmed(v.get<std::string>()) : v.dump();
        if (part.empty()) {
            continue;
        }
        if (!out.empty()) {
            out += ", ";
        }
        out += part;
    }
    return out;
}

json text_or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

std::string raw_excerpt(const json& lead) {
    std::string text = lead.dump(-1, ' ', false, json::error_handler_t::replace);
    return std::string(util::utf8_prefix(text, k_raw_excerpt_bytes));
}

json error_record(const json& lead, const std::string& reason) {
    json id = nullptr;
    if (lead.is_object()) {
        const auto it = lead.find("id");
        if (it != lead.end() && (it->is_string() || it->is_number_integer())) {
            id = it->is_string() ? *it : json(it->dump());
        }
    }
    return {{"source", "facebook"}, {"id", id}, {"error", reason}, {"raw", raw_excerpt(lead)}};
}

// The first of `keys` that the answers hold, non-empty.
std::optional<std::string> take_first(std::map<std::string, std::string>& answers,
                                      std::initializer_list<std::string_view> keys) {
    for (const auto key : keys) {
        const auto it = answers.find(std::string(key));
        if (it != answers.end() && !it->second.empty()) {
            std::string value = it->second;
            answers.erase(it);
            return value;
        }
    }
    return std::nullopt;
}

} // namespace

json lead_record(const json& lead, const std::string& form_id) {
    if (!lead.is_object()) {
        return error_record(lead, "the lead is not a JSON object");
    }
    const auto id = lead.find("id");
    if (id == lead.end() || !(id->is_string() || id->is_number_integer()) ||
        (id->is_string() && id->get<std::string>().empty())) {
        return error_record(lead, "the lead has no id");
    }
    const std::string lead_id = id->is_string() ? id->get<std::string>() : id->dump();
    const auto created = lead.find("created_time");
    std::optional<SystemTime> created_at;
    if (created != lead.end() && created->is_string()) {
        created_at = util::parse_iso8601(created->get<std::string>());
    }
    if (!created_at) {
        return error_record(lead, "the lead has no readable created_time");
    }

    // Keys in lower case; the first question of a key wins, as a form cannot repeat one.
    std::map<std::string, std::string> answers;
    std::vector<std::string> order;
    const auto field_data = lead.find("field_data");
    if (field_data != lead.end() && field_data->is_array()) {
        for (const auto& field : *field_data) {
            if (!field.is_object() || !field.contains("name") || !field["name"].is_string()) {
                continue;
            }
            const std::string key = util::ascii_lower(trimmed(field["name"].get<std::string>()));
            const std::string value =
                answer_text(field.contains("values") ? field["values"] : json());
            if (!key.empty() && answers.emplace(key, value).second) {
                order.push_back(key);
            }
        }
    }

    auto name = take_first(answers, {"full_name", "name"});
    const auto first = take_first(answers, {"first_name"});
    const auto last = take_first(answers, {"last_name"});
    if (!name && (first || last)) {
        name = trimmed(first.value_or("") + " " + last.value_or(""));
    } else if (name) {
        // Both given: the full name stands; the parts stay as details.
        if (first) {
            answers["first_name"] = *first;
        }
        if (last) {
            answers["last_name"] = *last;
        }
    }
    const auto email = take_first(answers, {"email", "work_email"});
    const auto phone =
        take_first(answers, {"phone_number", "phone", "mobile_phone", "work_phone_number"});
    const auto message = take_first(answers, {"message", "comments", "comment", "question"});

    json details = json::object();
    details["form_id"] = form_id;
    static constexpr std::array<std::string_view, 9> k_ad_keys = {
        "form_id",     "ad_id",         "ad_name",  "adset_id",  "adset_name",
        "campaign_id", "campaign_name", "platform", "is_organic"};
    for (const auto key : k_ad_keys) {
        const auto it = lead.find(std::string(key));
        if (it != lead.end() && !it->is_null()) {
            details[std::string(key)] = *it;
        }
    }
    json fields = json::object();
    for (const auto& key : order) {
        const auto it = answers.find(key);
        if (it != answers.end()) {
            fields[key] = it->second;
        }
    }
    details["fields"] = std::move(fields);

    const auto seconds = std::chrono::floor<std::chrono::seconds>(*created_at);
    return {{"source", "facebook"},
            {"id", lead_id},
            {"created_at", fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", seconds)},
            {"name", text_or_null(name.value_or(""))},
            {"email", text_or_null(email.value_or(""))},
            {"phone", text_or_null(phone.value_or(""))},
            {"message", text_or_null(message.value_or(""))},
            {"details", std::move(details)}};
}

} // namespace crmsync::drivers::facebook
