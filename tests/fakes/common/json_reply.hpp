#pragma once

// A fake's JSON answer, gzipped the way a real service answers a client that accepts it.

#include <httplib.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

/// The Content-Type of every answer set by set_json_reply.
inline constexpr std::string_view k_json_utf8 = "application/json; charset=utf-8";

/// Answers up to this size go plain even to a client that accepts gzip.
inline constexpr std::size_t k_largest_plain_body = 1024;

/// True when `accept_encoding` (an Accept-Encoding header) accepts gzip: a "gzip" or "x-gzip"
/// coding whose q is not 0. "*" is not taken as gzip, as curl never sends it.
bool accepts_gzip(std::string_view accept_encoding);

/// `body` gzipped (RFC 1952) at zlib's fastest level; throws std::runtime_error if zlib fails.
std::string gzip_fast(std::string_view body);

/// A text deflated on its own, so that pieces join into one gzip answer without being
/// compressed again (as pigz joins its blocks): raw deflate data that ends on a byte boundary
/// (a sync flush, no final block), with the text's CRC-32 and length.
struct GzipPiece {
    std::string deflated;
    unsigned long crc = 0;
    std::size_t size = 0;
};

/// `text` as a piece, at zlib's fastest level; throws std::runtime_error if zlib fails.
GzipPiece gzip_piece(std::string_view text);

/// One gzip member (RFC 1952) whose text is the texts of `pieces`, in order.
std::string gzip_join(const std::vector<const GzipPiece*>& pieces);

/// The text of one gzip member; throws std::runtime_error when `gzipped` is not one.
std::string gunzip(std::string_view gzipped);

/// Sets `gzipped` (a gzip member of JSON text, e.g. from gzip_join) as `res`'s answer with
/// Content-Encoding: gzip. Only for a request that accepts gzip.
void set_gzipped_json_reply(httplib::Response& res, std::string gzipped);

/// Sets `body` as `res`'s JSON answer (k_json_utf8). When `req` accepts gzip and the body is
/// over 1 KiB, it is sent gzipped at zlib's fastest level with Content-Encoding: gzip.
/// httplib would otherwise compress at zlib's default level, which cost more CPU than anything
/// else in the emulator; a real service compresses on its own machines, while a benchmark's
/// emulator shares the cores with the program it measures. The client still inflates every page.
void set_json_reply(const httplib::Request& req, httplib::Response& res, std::string body);

} // namespace crmsync::fakes
