#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace crmsync::util {

// Lower-case hex MD5, as dbsync2 uses for its deterministic ids (md5($id + fired)).
std::string md5_hex(std::string_view data);

// First 8 bytes of the MD5 as a signed integer (PostgreSQL advisory lock keys).
std::int64_t md5_int64(std::string_view data);

// Base64 of HMAC-SHA256(key, data): Standard Webhooks signatures.
std::string hmac_sha256_base64(std::string_view key, std::string_view data);

std::string base64_encode(std::string_view data);

} // namespace crmsync::util
