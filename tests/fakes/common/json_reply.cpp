#include "tests/fakes/common/json_reply.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_smallest_gzipped = 1024;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// True unless the parameters of a coding say q=0 (q=0, q=0.0, q=0.000).
bool allowed_by_q(std::string_view params) {
    while (!params.empty()) {
        const auto semicolon = params.find(';');
        auto param = trim(params.substr(0, semicolon));
        params =
            semicolon == std::string_view::npos ? std::string_view{} : params.substr(semicolon + 1);
        if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') {
            continue;
        }
        const auto value = trim(param.substr(2));
        return !(!value.empty() && value[0] == '0' &&
                 value.find_first_not_of("0.", 0) == std::string_view::npos);
    }
    return true;
}

} // namespace

bool accepts_gzip(std::string_view accept_encoding) {
    while (!accept_encoding.empty()) {
        const auto comma = accept_encoding.find(',');
        const auto item = accept_encoding.substr(0, comma);
        accept_encoding = comma == std::string_view::npos ? std::string_view{}
                                                          : accept_encoding.substr(comma + 1);
        const auto semicolon = item.find(';');
        const auto coding = trim(item.substr(0, semicolon));
        if ((iequals(coding, "gzip") || iequals(coding, "x-gzip")) &&
            allowed_by_q(semicolon == std::string_view::npos ? std::string_view{}
                                                             : item.substr(semicolon + 1))) {
            return true;
        }
    }
    return false;
}

std::string gzip_fast(std::string_view body) {
    z_stream stream{};
    // 15 window bits + 16: a gzip header and trailer instead of zlib's.
    if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("zlib: deflateInit2 failed");
    }
    std::string out(deflateBound(&stream, static_cast<uLong>(body.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
    stream.avail_in = static_cast<uInt>(body.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&stream, Z_FINISH);
    const auto written = stream.total_out;
    deflateEnd(&stream);
    if (rc != Z_STREAM_END) {
        throw std::runtime_error("zlib: deflate did not finish");
    }
    out.resize(written);
    return out;
}

void set_json_reply(const httplib::Request& req, httplib::Response& res, std::string body) {
    if (body.size() > k_smallest_gzipped && accepts_gzip(req.get_header_value("Accept-Encoding"))) {
        res.set_header("Content-Encoding", "gzip");
        res.set_content(gzip_fast(body), std::string(k_json_utf8));
        return;
    }
    res.set_content(std::move(body), std::string(k_json_utf8));
}

} // namespace crmsync::fakes
