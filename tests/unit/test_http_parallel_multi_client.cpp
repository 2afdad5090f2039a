// http::ParallelMultiClient against a real server on loopback: every transfer's callback runs
// once, on the caller's thread, with its own answer; the lanes together never exceed the
// connections allowed, and a threaded lane does carry transfers; destroyed mid-transfer, it
// runs no callback; libcurl failing on any lane is thrown to the caller.

#include "lib/http/parallel_multi_client.hpp"
#include "tests/fakes/common/http_listener.hpp"
#include "tests/unit/curl_multi_fault.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace http = crmsync::http;

namespace {

// POST /echo answers the request's body after `delay`, counting the requests under way at once
// and the connections (client ports) they came on.
class EchoServer {
public:
    explicit EchoServer(std::chrono::milliseconds delay) {
        m_listener.start(
            0,
            [this, delay](crmsync::fakes::AbortableServer& server) {
                server.Post(
                    "/echo", [this, delay](const httplib::Request& req, httplib::Response& res) {
                        const int now = ++m_under_way;
                        int seen = m_most_under_way.load();
                        while (now > seen && !m_most_under_way.compare_exchange_weak(seen, now)) {
                        }
                        {
                            const std::lock_guard<std::mutex> lock(m_mutex);
                            m_client_ports.insert(req.remote_port);
                        }
                        std::this_thread::sleep_for(delay);
                        --m_under_way;
                        res.set_content(req.body, "text/plain");
                    });
            },
            8);
    }

    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(m_listener.port()) + "/echo";
    }
    int most_under_way() const { return m_most_under_way.load(); }
    std::size_t connections() const {
        const std::lock_guard<std::mutex> lock(m_mutex);
        return m_client_ports.size();
    }

private:
    std::atomic<int> m_under_way{0};
    std::atomic<int> m_most_under_way{0};
    mutable std::mutex m_mutex;
    std::set<int> m_client_ports;
    crmsync::fakes::HttpListener m_listener; // last: stopped before what its handlers use goes
};

http::HttpRequest echo(const EchoServer& server, const std::string& body) {
    http::HttpRequest request;
    request.method = "POST";
    request.url = server.url();
    request.body = body;
    request.headers = {{"Content-Type", "text/plain"}};
    return request;
}

} // namespace

TEST_CASE("http::ParallelMultiClient", "[unit][http]") {
    SECTION("every transfer's callback runs once, on the caller's thread, with its own answer") {
        for (const std::size_t lanes : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
            INFO("lanes " << lanes);
            EchoServer server(0ms);
            http::ParallelMultiClient client(6, lanes);
            CHECK(client.lanes() == lanes);
            const auto caller = std::this_thread::get_id();
            std::map<std::string, int> answered; // body -> callbacks
            bool all_on_caller = true;
            constexpr int k_transfers = 300;
            int started = 0;
            while (started < k_transfers || client.in_flight() > 0) {
                while (started < k_transfers && client.has_capacity()) {
                    const std::string body = "transfer " + std::to_string(started++);
                    client.start(echo(server, body), [&, body](http::TransferResult&& r) {
                        all_on_caller = all_on_caller && std::this_thread::get_id() == caller;
                        CHECK(r.answered);
                        CHECK(r.response.status == 200);
                        CHECK(r.response.body == body);
                        ++answered[body];
                    });
                }
                client.poll(50ms);
            }
            CHECK(all_on_caller);
            CHECK(answered.size() == k_transfers);
            for (const auto& [body, callbacks] : answered) {
                CHECK(callbacks == 1);
            }
        }
    }

    SECTION("the lanes together keep to the connections allowed, and every lane carries some") {
        // Slow answers, so every connection is busy at once: 4 at most, over 2 lanes of 2.
        EchoServer server(20ms);
        http::ParallelMultiClient client(4, 2);
        int done = 0;
        int started = 0;
        while (started < 40 || client.in_flight() > 0) {
            while (started < 40 && client.has_capacity()) {
                CHECK(client.in_flight() < 4);
                client.start(echo(server, std::to_string(started++)),
                             [&](http::TransferResult&& r) {
                                 CHECK(r.response.status == 200);
                                 ++done;
                             });
            }
            CHECK(client.in_flight() <= 4);
            client.poll(50ms);
        }
        CHECK(done == 40);
        CHECK(server.most_under_way() <= 4);
        // More than one lane's share at once: the threaded lane carried its part.
        CHECK(server.most_under_way() > 2);
        // Kept alive: one connection per slot, not one per request.
        CHECK(server.connections() <= 4);
    }

    SECTION("destroyed with transfers in flight, it runs none of their callbacks") {
        EchoServer server(300ms);
        int callbacks = 0;
        {
            http::ParallelMultiClient client(4, 2);
            for (int i = 0; i < 4; ++i) {
                client.start(echo(server, "x"), [&](http::TransferResult&&) { ++callbacks; });
            }
            client.poll(10ms); // the threaded lane takes its share up
            CHECK(client.in_flight() == 4);
        }
        CHECK(callbacks == 0);
    }

    SECTION("libcurl failing on a lane's thread, or on the caller's, is thrown from poll()") {
        using Fault = crmsync::testing::CurlMultiPerformFault;
        for (const auto where : {Fault::Where::other_threads, Fault::Where::every_thread}) {
            INFO((where == Fault::Where::other_threads ? "the threaded lane fails"
                                                       : "every lane fails"));
            EchoServer server(20ms);
            Fault fault(where);
            http::ParallelMultiClient client(4, 2);
            int callbacks = 0;
            for (int i = 0; i < 4; ++i) {
                client.start(echo(server, "x"), [&](http::TransferResult&&) { ++callbacks; });
            }
            fault.arm();
            // Swallowed, the failure would leave the failed lane's transfers in flight for
            // good: the loop would end after its 5 s without a throw.
            const auto poll_until_done = [&] {
                for (int i = 0; i < 100 && client.in_flight() > 0; ++i) {
                    client.poll(50ms);
                }
            };
            CHECK_THROWS_WITH(poll_until_done(), Catch::Contains("curl_multi_perform") &&
                                                     Catch::Contains("Out of memory"));
            CHECK(fault.failures() >= 1);
            CHECK(callbacks < 4);
        }
    }
}

TEST_CASE("http::ParallelMultiClient::lanes_for", "[unit][http]") {
    SECTION("one lane per core, each with at least 8 connections") {
        CHECK(http::ParallelMultiClient::lanes_for(16, 2) == 2);
        CHECK(http::ParallelMultiClient::lanes_for(64, 2) == 2);
        CHECK(http::ParallelMultiClient::lanes_for(64, 16) == 8);
        CHECK(http::ParallelMultiClient::lanes_for(15, 4) == 1);
        CHECK(http::ParallelMultiClient::lanes_for(4, 8) == 1);
    }
    SECTION("no core count known, or no connection, still gives one lane") {
        CHECK(http::ParallelMultiClient::lanes_for(16, 0) == 1);
        CHECK(http::ParallelMultiClient::lanes_for(0, 2) == 1);
    }
}
