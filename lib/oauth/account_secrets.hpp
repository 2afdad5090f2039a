#pragma once

#include "lib/core/clock.hpp"

#include <string>
#include <string_view>

namespace crmsync::oauth {

// What `crmsync accounts add` reads from stdin or --secrets-file: one JSON object
// {"client_secret": "...", "refresh_token": "..."}.
inline constexpr const char* k_account_secrets_hint =
    R"(give one JSON object: {"client_secret": "...", "refresh_token": "..."})";

struct AccountSecrets {
    std::string client_secret;
    std::string refresh_token;
};

// Parses and checks the secrets (both present, non-empty strings without spaces, no other
// key) and registers them for redaction. `source` ("stdin", a path) names the input in errors,
// which never quote it: it is made of secrets. Throws Error(usage).
AccountSecrets parse_account_secrets(const std::string& text, const std::string& source);

// A non-empty string without spaces or control characters (a client id, a token).
bool is_plain_token(std::string_view value);

// A secret as `accounts list` shows it: never more than its last four characters, and those
// only for long secrets.
std::string mask_secret(const std::string& secret);
// "in 5m", "2h ago": `t` relative to `now`, for people.
std::string relative_time(SystemTime t, SystemTime now);

} // namespace crmsync::oauth
