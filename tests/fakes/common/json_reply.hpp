#pragma once

// A fake's JSON answer, gzipped the way a real service answers a client that accepts it.

#include <httplib.h>

#include <string>
#include <string_view>

namespace crmsync::fakes {

/// The Content-Type of every answer set by set_json_reply.
inline constexpr std::string_view k_json_utf8 = "application/json; charset=utf-8";

/// True when `accept_encoding` (an Accept-Encoding header) accepts gzip: a "gzip" or "x-gzip"
/// coding whose q is not 0. "*" is not taken as gzip, as curl never sends it.
bool accepts_gzip(std::string_view accept_encoding);

/// `body` gzipped (RFC 1952) at zlib's fastest level; throws std::runtime_error if zlib fails.
std::string gzip_fast(std::string_view body);

/// Sets `body` as `res`'s JSON answer (k_json_utf8). When `req` accepts gzip and the body is
/// over 1 KiB, it is sent gzipped at zlib's fastest level with Content-Encoding: gzip.
/// httplib would otherwise compress at zlib's default level, which cost more CPU than anything
/// else in the emulator; a real service compresses on its own machines, while a benchmark's
/// emulator shares the cores with the program it measures. The client still inflates every page.
void set_json_reply(const httplib::Request& req, httplib::Response& res, std::string body);

} // namespace crmsync::fakes
