#include "tests/fakes/webhook_receiver/webhook_signature.hpp"

#include "tests/fakes/common/base64.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace crmsync::fakes {
namespace {

constexpr std::string_view k_secret_prefix = "whsec_";
constexpr std::string_view k_symmetric_version = "v1";
constexpr std::size_t k_max_timestamp_digits = 15;

std::string hmac_sha256(std::string_view key, std::string_view id, std::string_view timestamp,
                        std::string_view body) {
    std::string content;
    content.reserve(id.size() + timestamp.size() + body.size() + 2);
    content.append(id).append(".").append(timestamp).append(".").append(body);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(content.data()), content.size(), digest.data(),
         &length);
    return {reinterpret_cast<const char*>(digest.data()), length};
}

std::optional<std::int64_t> parse_timestamp(std::string_view text) {
    if (text.empty() || text.size() > k_max_timestamp_digits ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    for (const char c : text) {
        value = value * 10 + (c - '0');
    }
    return value;
}

} // namespace

std::string_view signature_check_name(SignatureCheck check) {
    switch (check) {
    case SignatureCheck::not_checked:
        return "not_checked";
    case SignatureCheck::valid:
        return "valid";
    case SignatureCheck::missing_headers:
        return "missing_headers";
    case SignatureCheck::bad_timestamp:
        return "bad_timestamp";
    case SignatureCheck::mismatch:
        return "mismatch";
    }
    return "not_checked";
}

std::string webhook_key(std::string_view secret) {
    if (!secret.starts_with(k_secret_prefix)) {
        return std::string(secret);
    }
    auto key = base64_decode(secret.substr(k_secret_prefix.size()));
    if (!key) {
        throw std::invalid_argument("webhook secret: invalid base64 after \"whsec_\"");
    }
    return std::move(*key);
}

std::string sign_webhook(std::string_view secret, std::string_view id, std::int64_t timestamp,
                         std::string_view body) {
    const auto mac = hmac_sha256(webhook_key(secret), id, std::to_string(timestamp), body);
    return std::string(k_symmetric_version) + "," + base64_encode(mac);
}

SignatureCheck verify_webhook(std::string_view key, const std::optional<std::string>& id,
                              const std::optional<std::string>& timestamp,
                              const std::optional<std::string>& signatures, std::string_view body,
                              std::int64_t now_s, std::chrono::seconds tolerance) {
    if (!id || !timestamp || !signatures) {
        return SignatureCheck::missing_headers;
    }
    const auto sent_at = parse_timestamp(*timestamp);
    if (!sent_at) {
        return SignatureCheck::bad_timestamp;
    }
    if (tolerance.count() > 0 &&
        (*sent_at < now_s - tolerance.count() || *sent_at > now_s + tolerance.count())) {
        return SignatureCheck::bad_timestamp;
    }
    const auto expected = hmac_sha256(key, *id, *timestamp, body);
    std::string_view rest = *signatures;
    while (!rest.empty()) {
        const auto space = rest.find(' ');
        const auto entry = rest.substr(0, space);
        rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
        const auto comma = entry.find(',');
        if (comma == std::string_view::npos || entry.substr(0, comma) != k_symmetric_version) {
            continue;
        }
        const auto given = base64_decode(entry.substr(comma + 1));
        // Constant-time, as the spec asks: a receiver must not become a signing oracle.
        if (given && given->size() == expected.size() &&
            CRYPTO_memcmp(given->data(), expected.data(), expected.size()) == 0) {
            return SignatureCheck::valid;
        }
    }
    return SignatureCheck::mismatch;
}

} // namespace crmsync::fakes
