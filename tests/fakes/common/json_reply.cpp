#include "tests/fakes/common/json_reply.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace crmsync::fakes {
namespace {

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
    // One piece joined alone: the same deflate stream as every kept piece, and a deflate
    // state reused per thread instead of one allocated per answer.
    const GzipPiece piece = gzip_piece(body);
    return gzip_join({&piece});
}

namespace {

// A raw deflate stream kept per thread: deflateInit2 allocates about 300 KB, far more than
// the work of one small piece.
class PieceDeflater {
public:
    PieceDeflater() {
        // Negative window bits: raw deflate, no header or trailer of its own.
        if (deflateInit2(&m_stream, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            throw std::runtime_error("zlib: deflateInit2 failed");
        }
    }
    ~PieceDeflater() { deflateEnd(&m_stream); }
    PieceDeflater(const PieceDeflater&) = delete;
    PieceDeflater& operator=(const PieceDeflater&) = delete;

    std::string deflate_with_sync_flush(std::string_view text) {
        deflateReset(&m_stream);
        // A sync flush adds an empty stored block (5 bytes) and may end a partial byte.
        std::string out(deflateBound(&m_stream, static_cast<uLong>(text.size())) + 16, '\0');
        m_stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
        m_stream.avail_in = static_cast<uInt>(text.size());
        m_stream.next_out = reinterpret_cast<Bytef*>(out.data());
        m_stream.avail_out = static_cast<uInt>(out.size());
        const int rc = deflate(&m_stream, Z_SYNC_FLUSH);
        if (rc != Z_OK || m_stream.avail_in != 0 || m_stream.avail_out == 0) {
            throw std::runtime_error("zlib: deflate of a gzip piece did not complete");
        }
        out.resize(out.size() - m_stream.avail_out);
        return out;
    }

private:
    z_stream m_stream{};
};

void append_le32(std::string& out, unsigned long value) {
    for (int shift = 0; shift < 32; shift += 8) {
        out += static_cast<char>((value >> shift) & 0xFF);
    }
}

} // namespace

GzipPiece gzip_piece(std::string_view text) {
    GzipPiece piece;
    piece.size = text.size();
    piece.crc =
        crc32(0, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(text.size()));
    if (!text.empty()) {
        thread_local PieceDeflater deflater;
        piece.deflated = deflater.deflate_with_sync_flush(text);
    }
    return piece;
}

std::string gzip_join(const std::vector<const GzipPiece*>& pieces) {
    // ID1 ID2, CM = deflate, no flags, no time, no extra flags, OS unknown.
    static constexpr unsigned char k_header[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    std::size_t deflated = 0;
    for (const auto* piece : pieces) {
        deflated += piece->deflated.size();
    }
    std::string out;
    out.reserve(sizeof k_header + deflated + 2 + 8);
    out.append(reinterpret_cast<const char*>(k_header), sizeof k_header);
    unsigned long crc = crc32(0, nullptr, 0);
    std::size_t size = 0;
    for (const auto* piece : pieces) {
        out += piece->deflated;
        crc = crc32_combine(crc, piece->crc, static_cast<z_off_t>(piece->size));
        size += piece->size;
    }
    // The final block: fixed Huffman codes, nothing in it but its end (BFINAL 1, BTYPE 01, 0).
    out += '\x03';
    out += '\x00';
    append_le32(out, crc);
    append_le32(out, static_cast<unsigned long>(size & 0xFFFFFFFFUL));
    return out;
}

std::string gunzip(std::string_view gzipped) {
    z_stream stream{};
    if (inflateInit2(&stream, 15 + 16) != Z_OK) {
        throw std::runtime_error("zlib: inflateInit2 failed");
    }
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gzipped.data()));
    stream.avail_in = static_cast<uInt>(gzipped.size());
    std::string out;
    int rc = Z_OK;
    while (rc == Z_OK) {
        const auto done = out.size();
        out.resize(done + 64 * 1024);
        stream.next_out = reinterpret_cast<Bytef*>(out.data() + done);
        stream.avail_out = 64 * 1024;
        rc = inflate(&stream, Z_NO_FLUSH);
        out.resize(out.size() - stream.avail_out);
    }
    const bool whole = rc == Z_STREAM_END && stream.avail_in == 0;
    inflateEnd(&stream);
    if (!whole) {
        throw std::runtime_error("not one whole gzip member");
    }
    return out;
}

void set_gzipped_json_reply(httplib::Response& res, std::string gzipped) {
    res.set_header("Content-Encoding", "gzip");
    res.set_content(std::move(gzipped), std::string(k_json_utf8));
}

void set_json_reply(const httplib::Request& req, httplib::Response& res, std::string body) {
    if (body.size() > k_largest_plain_body &&
        accepts_gzip(req.get_header_value("Accept-Encoding"))) {
        res.set_header("Content-Encoding", "gzip");
        res.set_content(gzip_fast(body), std::string(k_json_utf8));
        return;
    }
    res.set_content(std::move(body), std::string(k_json_utf8));
}

} // namespace crmsync::fakes
