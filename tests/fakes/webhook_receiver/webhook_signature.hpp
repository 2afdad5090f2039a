#pragma once

// Standard Webhooks symmetric signatures (github.com/standard-webhooks, spec "Signature
// scheme"): base64 of HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>", sent as
// "v1,<base64>" in the webhook-signature header, several space-separated when keys rotate.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::fakes {

enum class SignatureCheck {
    not_checked,     ///< The receiver has no secret.
    valid,           ///< One v1 signature matched and the timestamp is within the tolerance.
    missing_headers, ///< webhook-id, webhook-timestamp or webhook-signature is absent.
    bad_timestamp,   ///< Not an integer, or further from the receiver's clock than allowed.
    mismatch,        ///< No v1 signature matched (entries of other versions are ignored).
};

std::string_view signature_check_name(SignatureCheck check);

/// The HMAC key for a secret: the bytes after "whsec_" base64-decoded, as the spec serialises
/// secrets; any other secret as its raw bytes. Throws std::invalid_argument when "whsec_" is
/// followed by invalid base64.
std::string webhook_key(std::string_view secret);

/// "v1,<base64>" for one delivery, e.g. to build requests in tests. Throws as webhook_key().
std::string sign_webhook(std::string_view secret, std::string_view id, std::int64_t timestamp,
                         std::string_view body);

/// The header values as received (nullopt = header absent). `tolerance` 0 skips the timestamp
/// window check; `now_s` is the receiver's clock in Unix seconds.
SignatureCheck verify_webhook(std::string_view key, const std::optional<std::string>& id,
                              const std::optional<std::string>& timestamp,
                              const std::optional<std::string>& signatures, std::string_view body,
                              std::int64_t now_s, std::chrono::seconds tolerance);

} // namespace crmsync::fakes
