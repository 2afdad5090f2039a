#pragma once

#include <string>
#include <string_view>

namespace crmsync::drivers::webhook {

// Standard Webhooks (https://www.standardwebhooks.com): the signature of one attempt is
// "v1," + base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")). A secret given
// as "whsec_<base64>" is base64-decoded to get the key; any other secret is used as is.
std::string sign(std::string_view secret, std::string_view id, long long timestamp,
                 std::string_view body);

std::string signing_key(std::string_view secret);

} // namespace crmsync::drivers::webhook
