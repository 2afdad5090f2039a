// Response size caps of HttpClient and MultiClient against a real server on loopback: a body
// over the cap (declared or not) and a gzip bomb (small on the wire, large decoded); and how
// a gzip body is decoded (good, corrupt, or in an encoding that was not asked for).

#include "lib/core/error.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/multi_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "tests/fakes/common/json_reply.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace http = crmsync::http;

namespace {

constexpr std::size_t k_mib = std::size_t{1} << 20;

// `size` zero bytes, gzip-compressed (a few KiB for many MiB).
std::string gzip_of_zeros(std::size_t size) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) ==
            Z_OK);
    const std::string zeros(k_mib, '\0');
    std::string out;
    char chunk[65536];
    std::size_t left = size;
    int flush = Z_NO_FLUSH;
    do {
        const std::size_t n = std::min(left, zeros.size());
        left -= n;
        flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
        z.avail_in = static_cast<uInt>(n);
        do {
            z.next_out = reinterpret_cast<Bytef*>(chunk);
            z.avail_out = sizeof chunk;
            deflate(&z, flush);
            out.append(chunk, sizeof chunk - z.avail_out);
        } while (z.avail_out == 0);
    } while (flush != Z_FINISH);
    deflateEnd(&z);
    return out;
}

// Serves /big (2 MiB with Content-Length), /chunked (2 MiB, no length), /bomb (64 MiB of
// zeros gzip-compressed), /small (100 bytes), POST /accepted (200 with 2 MiB), /gzipped (a
// JSON text gzipped, with the Content-Encoding given by ?as=, gzip by default), /cut-gzip (the
// same gzip without its last 8 bytes) and /brotli (bytes labelled br). httplib gzips every
// application/json answer again for a client that accepts gzip, adding a second
// Content-Encoding line: a client must undo both codings, as libcurl does.
class BigAnswers {
public:
    BigAnswers()
        : m_bomb(gzip_of_zeros(64 * k_mib)),
          m_json_gzipped(crmsync::fakes::gzip_fast(json_text())) {
        m_server.Get("/big", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(std::string(2 * k_mib, 'x'), "text/plain");
        });
        m_server.Get("/chunked", [](const httplib::Request&, httplib::Response& res) {
            res.set_chunked_content_provider(
                "text/plain",
                [sent = std::size_t{0}](std::size_t, httplib::DataSink& sink) mutable {
                    if (sent >= 2 * k_mib) {
                        sink.done();
                        return true;
                    }
                    const std::string piece(64 * 1024, 'y');
                    sent += piece.size();
                    return sink.write(piece.data(), piece.size());
                });
        });
        m_server.Get("/bomb", [this](const httplib::Request&, httplib::Response& res) {
            ++m_bomb_requests;
            res.set_header("Content-Encoding", "gzip");
            res.set_content(m_bomb, "application/json");
        });
        m_server.Get("/gzipped", [this](const httplib::Request& req, httplib::Response& res) {
            res.set_header("Content-Encoding",
                           req.has_param("as") ? req.get_param_value("as") : "gzip");
            res.set_content(m_json_gzipped, "application/json");
        });
        m_server.Get("/cut-gzip", [this](const httplib::Request&, httplib::Response& res) {
            ++m_cut_requests;
            res.set_header("Content-Encoding", "gzip");
            res.set_content(m_json_gzipped.substr(0, m_json_gzipped.size() - 8),
                            "application/json");
        });
        m_server.Get("/brotli", [](const httplib::Request&, httplib::Response& res) {
            res.set_header("Content-Encoding", "br");
            res.set_content(std::string("\x1b\x03\x00\xf8", 4), "application/json");
        });
        m_server.Get("/small", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(std::string(100, 's'), "text/plain");
        });
        m_server.Post("/accepted", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(std::string(2 * k_mib, 'a'), "text/plain");
        });
        m_port = m_server.bind_to_any_port("127.0.0.1");
        REQUIRE(m_port > 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(1ms);
        }
    }
    ~BigAnswers() {
        m_server.stop();
        m_thread.join();
    }
    std::string url(const char* path) const {
        return "http://127.0.0.1:" + std::to_string(m_port) + path;
    }
    std::size_t bomb_size() const { return m_bomb.size(); }
    int bomb_requests() const { return m_bomb_requests.load(); }
    int cut_requests() const { return m_cut_requests.load(); }
    static std::string json_text() {
        std::string text = "[";
        for (int i = 0; i < 500; ++i) {
            text += (i > 0 ? "," : "") + std::string("{\"id\":") + std::to_string(i) + "}";
        }
        return text + "]";
    }

private:
    std::string m_bomb;
    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
    std::string m_json_gzipped;
    std::atomic<int> m_bomb_requests{0};
    std::atomic<int> m_cut_requests{0};
};

// GET `path` through send_with_retry (at most `max_attempts`, 1 ms apart), which must fail as a
// connection error; returns its message.
std::string failed_get(http::HttpClient& client, const BigAnswers& server, const char* path,
                       int max_attempts, http::RetryStats& stats) {
    http::RetryPolicy policy;
    policy.max_attempts = max_attempts;
    policy.base_delay = 1ms;
    http::HttpRequest request;
    request.url = server.url(path);
    const http::RetryContext context{policy, stats, crmsync::Clock::real(), std::nullopt,
                                     std::string("GET ") + path};
    try {
        http::send_with_retry(client, request, context);
    } catch (const crmsync::Error& e) {
        CHECK(e.kind() == crmsync::ErrorKind::connection);
        return e.what();
    }
    FAIL("no error thrown");
    return "";
}

http::HttpClientOptions capped(std::size_t bytes) {
    http::HttpClientOptions o;
    o.max_response_bytes = bytes;
    return o;
}

} // namespace

TEST_CASE("http::HttpClient caps response bodies", "[unit][http]") {
    BigAnswers server;
    http::HttpClient client(capped(k_mib));
    http::HttpRequest request;
    http::HttpResponse response;
    http::TransportFailure failure;

    SECTION("a body declared over the cap fails with a clear message") {
        request.url = server.url("/big");
        CHECK_FALSE(client.perform(request, response, failure));
        CHECK(failure.curl_code == CURLE_FILESIZE_EXCEEDED);
        CHECK(failure.message == "response from " + server.url("/big") + " larger than 1 MiB");
        CHECK(failure.status == 200);
        CHECK(response.body.empty());
    }
    SECTION("a body without Content-Length is stopped at the cap") {
        request.url = server.url("/chunked");
        CHECK_FALSE(client.perform(request, response, failure));
        CHECK(failure.curl_code == CURLE_FILESIZE_EXCEEDED);
        CHECK(failure.message.find("larger than 1 MiB") != std::string::npos);
    }
    SECTION("a gzip bomb is stopped by its decoded size") {
        REQUIRE(server.bomb_size() < k_mib / 8); // small on the wire: only decoding shows it
        request.url = server.url("/bomb");
        CHECK_FALSE(client.perform(request, response, failure));
        CHECK(failure.curl_code == CURLE_FILESIZE_EXCEEDED);
        CHECK(failure.message.find("larger than 1 MiB") != std::string::npos);
    }
    SECTION("a cap of no whole MiB is stated in bytes") {
        http::HttpClient tiny(capped(50));
        request.url = server.url("/small");
        CHECK_FALSE(tiny.perform(request, response, failure));
        CHECK(failure.message.find("larger than 50 bytes") != std::string::npos);
    }
    SECTION("a body under the cap is read whole, and the handle works on after a refusal") {
        request.url = server.url("/big");
        CHECK_FALSE(client.perform(request, response, failure));
        request.url = server.url("/small");
        REQUIRE(client.perform(request, response, failure));
        CHECK(response.status == 200);
        CHECK(response.body == std::string(100, 's'));
    }
    SECTION("the default cap lets a 64 MiB decoded body through") {
        http::HttpClient roomy;
        request.url = server.url("/bomb");
        REQUIRE(roomy.perform(request, response, failure));
        CHECK(response.body.size() == 64 * k_mib);
    }
}

TEST_CASE("http::send_with_retry does not retry a body over the cap", "[unit][http]") {
    BigAnswers server;
    http::HttpClient client(capped(k_mib));
    http::RetryStats stats;
    const std::string message = failed_get(client, server, "/bomb", 5, stats);
    CHECK(message.find("larger than 1 MiB") != std::string::npos);
    CHECK(server.bomb_requests() == 1);
    CHECK(stats.retries.load() == 0);
}

TEST_CASE("http::MultiClient caps response bodies", "[unit][http]") {
    BigAnswers server;
    http::MultiClient client(2, capped(k_mib));
    std::vector<http::TransferResult> results;
    for (const char* path : {"/bomb", "/small"}) {
        http::HttpRequest request;
        request.url = server.url(path);
        client.start(std::move(request),
                     [&](http::TransferResult&& r) { results.push_back(std::move(r)); });
    }
    while (client.in_flight() > 0) {
        client.poll(50ms);
    }
    REQUIRE(results.size() == 2);
    std::size_t refused = 0;
    for (const auto& r : results) {
        if (r.answered) {
            CHECK(r.response.body == std::string(100, 's'));
        } else {
            ++refused;
            CHECK(r.failure.curl_code == CURLE_FILESIZE_EXCEEDED);
            CHECK(r.failure.message.find("larger than 1 MiB") != std::string::npos);
        }
    }
    CHECK(refused == 1);
}

TEST_CASE("http::HttpClient decodes gzip bodies itself and refuses bad ones", "[unit][http]") {
    BigAnswers server;
    http::HttpClient client;
    http::HttpRequest request;
    http::HttpResponse response;
    http::TransportFailure failure;

    SECTION("gzip and x-gzip are decoded, in any case; a body with no encoding is as sent") {
        for (const char* as : {"gzip", "x-gzip", "GZIP"}) {
            request.url = server.url("/gzipped?as=") + as;
            REQUIRE(client.perform(request, response, failure));
            CHECK(response.status == 200);
            CHECK(response.body == BigAnswers::json_text());
            // Two codings: ours and the one httplib added (see BigAnswers).
            CHECK(*response.header("content-encoding") == std::string(as) + ", gzip");
        }
        request.url = server.url("/small");
        REQUIRE(client.perform(request, response, failure));
        CHECK(response.body == std::string(100, 's'));
    }
    SECTION("a gzip body cut short fails as a bad encoding, naming the URL") {
        request.url = server.url("/cut-gzip");
        CHECK_FALSE(client.perform(request, response, failure));
        CHECK(failure.curl_code == CURLE_BAD_CONTENT_ENCODING);
        CHECK(failure.message == "response from " + server.url("/cut-gzip") +
                                     " is not valid gzip (cut short or corrupt)");
        CHECK(failure.status == 200);
        CHECK(response.body.empty());
    }
    SECTION("an encoding that was not asked for is refused, not parsed as text") {
        request.url = server.url("/brotli");
        CHECK_FALSE(client.perform(request, response, failure));
        CHECK(failure.curl_code == CURLE_BAD_CONTENT_ENCODING);
        CHECK(failure.message.find("is encoded as 'br', which was not asked for") !=
              std::string::npos);
    }
    SECTION("a gzip body labelled deflate is refused, as deflate was not asked for") {
        request.url = server.url("/gzipped?as=deflate");
        CHECK_FALSE(client.perform(request, response, failure));
        CHECK(failure.message.find("is encoded as 'deflate'") != std::string::npos);
    }
}

TEST_CASE("http::MultiClient decodes gzip bodies as HttpClient does", "[unit][http]") {
    BigAnswers server;
    http::MultiClient client(2);
    std::map<std::string, http::TransferResult> results;
    for (const char* path : {"/gzipped", "/cut-gzip"}) {
        http::HttpRequest request;
        request.url = server.url(path);
        client.start(std::move(request), [&results, path](http::TransferResult&& r) {
            results.emplace(path, std::move(r));
        });
    }
    while (client.in_flight() > 0) {
        client.poll(50ms);
    }
    REQUIRE(results.size() == 2);
    REQUIRE(results["/gzipped"].answered);
    CHECK(results["/gzipped"].response.body == BigAnswers::json_text());
    CHECK_FALSE(results["/cut-gzip"].answered);
    CHECK(results["/cut-gzip"].failure.curl_code == CURLE_BAD_CONTENT_ENCODING);
}

TEST_CASE("http::send_with_retry retries a cut gzip body a bounded number of times",
          "[unit][http]") {
    BigAnswers server;
    http::HttpClient client;
    http::RetryStats stats;
    const std::string message = failed_get(client, server, "/cut-gzip", 3, stats);
    CHECK(message.find("is not valid gzip") != std::string::npos);
    CHECK(server.cut_requests() == 3);
    CHECK(stats.retries.load() == 2);
}
