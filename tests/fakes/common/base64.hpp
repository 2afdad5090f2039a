#pragma once

// Standard base64 (RFC 4648 §4, with '=' padding), as used by Standard Webhooks signatures and
// SMTP AUTH.

#include <optional>
#include <string>
#include <string_view>

namespace crmsync::fakes {

std::string base64_encode(std::string_view bytes);

/// Accepts padded or unpadded input; nullopt for characters outside the alphabet, misplaced
/// padding or an impossible length.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace crmsync::fakes
