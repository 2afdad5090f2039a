#include "drivers/webhook/signature.hpp"

#include "lib/util/hash.hpp"

#include <openssl/evp.h>

#include <string>

namespace crmsync::drivers::webhook {

std::string signing_key(std::string_view secret) {
    constexpr std::string_view prefix = "whsec_";
    if (secret.substr(0, prefix.size()) != prefix) {
        return std::string(secret);
    }
    const std::string_view encoded = secret.substr(prefix.size());
    std::string key(encoded.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(key.data()),
                                  reinterpret_cast<const unsigned char*>(encoded.data()),
                                  static_cast<int>(encoded.size()));
    if (n < 0) {
        return std::string(secret);
    }
    // EVP_DecodeBlock counts the '=' padding as zero bytes.
    std::size_t length = static_cast<std::size_t>(n);
    for (std::size_t i = encoded.size(); i > 0 && encoded[i - 1] == '='; --i) {
        --length;
    }
    key.resize(length);
    return key;
}

std::string sign(std::string_view secret, std::string_view id, long long timestamp,
                 std::string_view body) {
    std::string payload;
    payload.reserve(id.size() + body.size() + 24);
    payload.append(id).append(".").append(std::to_string(timestamp)).append(".").append(body);
    return "v1," + util::hmac_sha256_base64(signing_key(secret), payload);
}

} // namespace crmsync::drivers::webhook
