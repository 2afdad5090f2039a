#include "tests/fakes/common/base64.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace crmsync::fakes {

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(std::max(n, 0)));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    std::string padded(text);
    // EVP_DecodeBlock skips surrounding whitespace and accepts '=' anywhere at the end, so the
    // alphabet and the padding are checked here.
    const auto data_end = padded.find_last_not_of('=');
    const auto pad = data_end == std::string::npos ? padded.size() : padded.size() - data_end - 1;
    const auto body = std::string_view(padded).substr(0, padded.size() - pad);
    const bool alphabet = std::all_of(body.begin(), body.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/';
    });
    if (!alphabet || pad > 2 || body.size() % 4 == 1 || (pad > 0 && padded.size() % 4 != 0)) {
        return std::nullopt;
    }
    padded.resize(body.size());
    padded.append((4 - body.size() % 4) % 4, '=');
    if (padded.empty()) {
        return std::string();
    }
    std::string out(padded.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(padded.data()),
                                  static_cast<int>(padded.size()));
    if (n < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts the padding as zero bytes.
    const auto padding = static_cast<std::size_t>(std::count(padded.end() - 2, padded.end(), '='));
    out.resize(static_cast<std::size_t>(n) - padding);
    return out;
}

} // namespace crmsync::fakes
