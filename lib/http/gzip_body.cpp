#include "lib/http/gzip_body.hpp"

#include <libdeflate.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>

namespace crmsync::http {
namespace {

struct DecompressorDeleter {
    void operator()(libdeflate_decompressor* d) const noexcept { libdeflate_free_decompressor(d); }
};

// One decompressor per thread: allocating one costs more than decoding a small page.
libdeflate_decompressor& thread_decompressor() {
    thread_local std::unique_ptr<libdeflate_decompressor, DecompressorDeleter> decompressor(
        libdeflate_alloc_decompressor());
    if (!decompressor) {
        throw std::bad_alloc();
    }
    return *decompressor;
}

// The smallest gzip member: a 10-byte header, an empty deflate block, an 8-byte trailer.
constexpr std::size_t k_min_member = 18;

// ISIZE, the last four bytes of a member: its decoded length modulo 2^32. A guess only: the
// trailer is checked by libdeflate once the member is decoded.
std::size_t trailer_size(std::string_view member) {
    const auto* end = reinterpret_cast<const unsigned char*>(member.data() + member.size());
    return static_cast<std::size_t>(end[-4]) | static_cast<std::size_t>(end[-3]) << 8 |
           static_cast<std::size_t>(end[-2]) << 16 | static_cast<std::size_t>(end[-1]) << 24;
}

} // namespace

GunzipOutcome gunzip_body(std::string& body, std::size_t limit) {
    libdeflate_decompressor& decompressor = thread_decompressor();
    std::string_view rest(body);
    std::string decoded;
    while (!rest.empty()) {
        if (rest.size() < k_min_member) {
            return GunzipOutcome::corrupt;
        }
        const std::size_t room = limit - decoded.size();
        // The trailer at the end of the body is this member's for the usual single member; for a
        // later one it is a guess that the doubling below corrects.
        std::size_t capacity = std::min(std::max(trailer_size(rest), rest.size()), room);
        for (;;) {
            const std::size_t start = decoded.size();
            decoded.resize(start + capacity);
            std::size_t used_in = 0;
            std::size_t used_out = 0;
            const libdeflate_result result = libdeflate_gzip_decompress_ex(
                &decompressor, rest.data(), rest.size(), decoded.data() + start, capacity, &used_in,
                &used_out);
            if (result == LIBDEFLATE_SUCCESS) {
                decoded.resize(start + used_out);
                rest.remove_prefix(used_in);
                break;
            }
            decoded.resize(start);
            if (result != LIBDEFLATE_INSUFFICIENT_SPACE) {
                return GunzipOutcome::corrupt;
            }
            if (capacity == room) {
                return GunzipOutcome::too_large;
            }
            capacity = std::min(room, std::max(capacity * 2, std::size_t{4096}));
        }
    }
    body = std::move(decoded);
    return GunzipOutcome::decoded;
}

} // namespace crmsync::http
