#include "lib/util/hash.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace crmsync::util {
namespace {

std::array<unsigned char, 16> md5_raw(std::string_view data) {
    std::array<unsigned char, 16> digest{};
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_md5(), nullptr) != 1) {
        throw std::runtime_error("MD5 digest failed");
    }
    return digest;
}

} // namespace

std::string md5_hex(std::string_view data) {
    static constexpr char k_hex[] = "0123456789abcdef";
    const auto digest = md5_raw(data);
    std::string out(32, '0');
    for (std::size_t i = 0; i < digest.size(); ++i) {
        out[2 * i] = k_hex[digest[i] >> 4];
        out[2 * i + 1] = k_hex[digest[i] & 0x0f];
    }
    return out;
}

std::int64_t md5_int64(std::string_view data) {
    const auto digest = md5_raw(data);
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 8; ++i) {
        value = (value << 8) | digest[i];
    }
    std::int64_t result = 0;
    std::memcpy(&result, &value, sizeof result);
    return result;
}

std::string base64_encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(data.data()),
                                        static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(written));
    return out;
}

std::string hmac_sha256_base64(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
             &length) == nullptr) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return base64_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), length));
}

} // namespace crmsync::util
