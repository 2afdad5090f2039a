#pragma once

#include <cstddef>
#include <string>

namespace crmsync::http {

enum class GunzipOutcome {
    decoded,   // `body` now holds the decoded text
    too_large, // the decoded text would pass `limit`; `body` is left as it was
    corrupt,   // not gzip, cut short, or a checksum or length that does not match
};

// Replaces `body`, a gzip stream of one or more members (RFC 1952), with its decoded text,
// never holding more than `limit` decoded bytes. Decoding is done here with libdeflate rather
// than by libcurl's streaming zlib: a whole-buffer decoder with the size from the gzip trailer
// is several times faster, and inflating was a tenth of a first load's CPU.
GunzipOutcome gunzip_body(std::string& body, std::size_t limit);

} // namespace crmsync::http
