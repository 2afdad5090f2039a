#include "lib/oauth/account_secrets.hpp"

#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <utility>

namespace crmsync::oauth {

bool is_plain_token(std::string_view value) {
    return !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x20;
    });
}

AccountSecrets parse_account_secrets(const std::string& text, const std::string& source) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        throw Error(
            ErrorKind::usage,
            source + " does not hold a JSON object" +
                (text.find_first_not_of(" \t\r\n") == std::string::npos ? " (it is empty)" : ""),
            k_account_secrets_hint);
    }
    AccountSecrets secrets;
    for (const auto& [key, value] : j.items()) {
        std::string* target = key == "client_secret"   ? &secrets.client_secret
                              : key == "refresh_token" ? &secrets.refresh_token
                                                       : nullptr;
        if (target == nullptr) {
            throw Error(ErrorKind::usage, source + " has an unexpected key '" + key + "'",
                        k_account_secrets_hint);
        }
        if (!value.is_string() || !is_plain_token(value.get<std::string>())) {
            throw Error(ErrorKind::usage,
                        source + ": \"" + key + "\" must be a non-empty string without spaces",
                        k_account_secrets_hint);
        }
        *target = value.get<std::string>();
    }
    for (const auto& [name, value] : {std::pair{"client_secret", &secrets.client_secret},
                                      std::pair{"refresh_token", &secrets.refresh_token}}) {
        if (value->empty()) {
            throw Error(ErrorKind::usage, source + " lacks \"" + name + "\"",
                        k_account_secrets_hint);
        }
    }
    util::register_secret(secrets.client_secret);
    util::register_secret(secrets.refresh_token);
    return secrets;
}

std::string mask_secret(const std::string& secret) {
    if (secret.empty()) {
        return "-";
    }
    return secret.size() >= 20 ? "***" + secret.substr(secret.size() - 4) : std::string("***");
}

std::string relative_time(SystemTime t, SystemTime now) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(t - now).count();
    const auto magnitude = seconds < 0 ? -seconds : seconds;
    const std::string amount = magnitude < 120      ? fmt::format("{}s", magnitude)
                               : magnitude < 7200   ? fmt::format("{}m", magnitude / 60)
                               : magnitude < 172800 ? fmt::format("{}h", magnitude / 3600)
                                                    : fmt::format("{}d", magnitude / 86400);
    return seconds >= 0 ? "in " + amount : amount + " ago";
}

} // namespace crmsync::oauth
