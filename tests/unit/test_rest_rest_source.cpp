#include "lib/core/clock.hpp"
#include "lib/core/error.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/source.hpp"
#include "lib/rest/rest_source.hpp"
#include "lib/util/redact.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using crmsync::Clock;
using crmsync::Error;
using crmsync::ErrorKind;
using crmsync::SystemTime;
using nlohmann::json;
namespace http = crmsync::http;
namespace pipeline = crmsync::pipeline;
namespace rest = crmsync::rest;
namespace util = crmsync::util;

namespace {

constexpr long long k_now = 1'700'000'100'000; // the run's wall clock (ms epoch)
constexpr long long k_base = 1'700'000'000'000;

struct Doc {
    std::string id;
    long long updated;
};

// What the server saw of one request.
struct Seen {
    std::string path;
    std::map<std::string, std::string> params;
    std::map<std::string, std::string> headers;
    std::string param(const std::string& name) const {
        const auto it = params.find(name);
        return it == params.end() ? std::string("<none>") : it->second;
    }
};

// The call-center contract on a real loopback server: one collection ordered by
// (updatedAt, _id), filtered by updatedFrom/updatedTo/afterId, paged in the style `mode`
// (page, offset, cursor, next, keyset). `before(n)` runs before the n-th request is answered
// (to change data while paging); `intercept(n, ...)` may answer it instead.
class FakeApi {
public:
    std::vector<Doc> docs;
    std::string mode = "page";
    std::function<void(int)> before;
    std::function<bool(int, const httplib::Request&, httplib::Response&)> intercept;

    FakeApi() {
        m_server.Get(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
            int n = 0;
            {
                std::lock_guard lock(m_mutex);
                n = static_cast<int>(m_seen.size());
                Seen seen{req.path, {}, {}};
                for (const auto& [k, v] : req.params) {
                    seen.params[k] = v;
                }
                for (const auto& [k, v] : req.headers) {
                    seen.headers[k] = v;
                }
                m_seen.push_back(std::move(seen));
            }
            if (before) {
                before(n);
            }
            if (intercept && intercept(n, req, res)) {
                return;
            }
            serve(req, res);
        });
        m_port = m_server.bind_to_any_port("127.0.0.1");
        REQUIRE(m_port > 0);
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(1ms);
        }
    }
    ~FakeApi() {
        m_server.stop();
        m_thread.join();
    }
    FakeApi(const FakeApi&) = delete;
    FakeApi& operator=(const FakeApi&) = delete;

    std::string base() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/api/v1"; }
    std::vector<Seen> seen() const {
        std::lock_guard lock(m_mutex);
        return m_seen;
    }

private:
    static long long number(const httplib::Request& req, const char* name, long long fallback) {
        return req.has_param(name) ? std::stoll(req.get_param_value(name)) : fallback;
    }

    void serve(const httplib::Request& req, httplib::Response& res) {
        std::vector<Doc> view = docs;
        std::sort(view.begin(), view.end(), [](const Doc& a, const Doc& b) {
            return std::tie(a.updated, a.id) < std::tie(b.updated, b.id);
        });
        const long long from = number(req, "updatedFrom", 0);
        const long long to = number(req, "updatedTo", INT64_MAX);
        const std::string after = req.has_param("afterId") ? req.get_param_value("afterId") : "";
        std::erase_if(view, [&](const Doc& d) {
            return d.updated < from || d.updated >= to ||
                   (!after.empty() && d.updated == from && d.id <= after);
        });
        const auto limit = static_cast<std::size_t>(number(req, "limit", 100));
        std::size_t offset = 0;
        if (mode == "page") {
            offset = static_cast<std::size_t>(number(req, "page", 1) - 1) * limit;
        } else if (mode == "offset") {
            offset = static_cast<std::size_t>(number(req, "offset", 0));
        } else if (mode == "cursor" && req.has_param("pageToken")) {
            offset = std::stoul(req.get_param_value("pageToken").substr(1));
        } else if (mode == "next") {
            offset = static_cast<std::size_t>(number(req, "after", 0));
        }
        json result = json::array();
        for (std::size_t i = offset; i < std::min(view.size(), offset + limit); ++i) {
            result.push_back({{"_id", view[i].id}, {"updatedAt", view[i].updated}});
        }
        const bool more = offset + limit < view.size();
        json body = {{"success", true},
                     {"result", result},
                     {"paging", {{"total", view.size()}, {"hasMore", more}}}};
        if (mode == "cursor" && more) {
            body["nextPageToken"] = "o" + std::to_string(offset + limit);
        }
        if (mode == "next" && more) {
            std::string next = "http://127.0.0.1:" + std::to_string(m_port) + req.path +
                               "?after=" + std::to_string(offset + limit);
            for (const auto& [k, v] : req.params) {
                if (k != "after") {
                    next += "&" + k + "=" + v;
                }
            }
            body["paging"]["next"] = next;
        }
        res.set_content(body.dump(), "application/json");
    }

    httplib::Server m_server;
    int m_port = 0;
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<Seen> m_seen;
};

// Retry policy, counters and a clock that neither sleeps nor moves: tests run fast and
// the frozen upper bound is known.
struct Env {
    http::RetryPolicy policy;
    http::RetryStats stats;
    Clock clock;
    std::vector<std::chrono::milliseconds> sleeps;
    Env() {
        policy.max_attempts = 3;
        policy.base_delay = 1ms;
        policy.max_delay = 5ms;
        clock.sleep_for = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
        clock.wall_now = [] { return SystemTime(std::chrono::milliseconds(k_now)); };
    }
    http::RetryContext retry() {
        return http::RetryContext{policy, stats, clock, std::nullopt, ""};
    }
};

rest::ChangedSince callcenter_changes() {
    rest::ChangedSince spec;
    spec.field_pointer = "/updatedAt";
    spec.id_pointer = "/_id";
    spec.from_param = "updatedFrom";
    spec.to_param = "updatedTo";
    spec.after_id_param = "afterId";
    return spec;
}

rest::Stream stream(std::string name, std::unique_ptr<rest::Paging> paging) {
    rest::Stream s;
    s.path = "/callcenters/cc1/" + name;
    s.name = std::move(name);
    s.query = {{"includeDeleted", "true"}};
    s.records_pointer = "/result";
    s.paging = std::move(paging);
    s.changed_since = callcenter_changes();
    return s;
}

std::unique_ptr<rest::Paging> pages_of(int size) {
    return rest::page_number({"page", 1, {"limit", size}, "/paging/hasMore"});
}

std::unique_ptr<rest::Paging> keyset_of(int size) {
    return rest::keyset(
        {{{"updatedFrom", "/updatedAt"}, {"afterId", "/_id"}}, {"limit", size}, ""});
}

std::unique_ptr<pipeline::Source> make_source(const FakeApi& api, Env& env,
                                              std::vector<rest::Stream> streams,
                                              std::unique_ptr<rest::Auth> auth = {}) {
    rest::RestSourceOptions options;
    options.base_url = api.base();
    options.auth = std::move(auth);
    options.streams = std::move(streams);
    options.request_timeout = 10s;
    return rest::make_rest_source(std::move(options), env.retry());
}

std::vector<pipeline::Page> drain(pipeline::Source& source,
                                  const std::optional<std::string>& checkpoint = std::nullopt) {
    source.open(checkpoint);
    std::vector<pipeline::Page> pages;
    while (auto page = source.next_page()) {
        pages.push_back(std::move(*page));
        REQUIRE(pages.size() < 100);
    }
    return pages;
}

std::vector<std::string> ids_of(const std::vector<pipeline::Page>& pages) {
    std::vector<std::string> ids;
    for (const auto& page : pages) {
        for (const auto& record : page.records) {
            ids.push_back(record.at("_id").get<std::string>());
        }
    }
    return ids;
}

std::vector<Doc> docs(int count) {
    std::vector<Doc> out;
    for (int i = 1; i <= count; ++i) {
        out.push_back({"d" + std::to_string(i), k_base + i});
    }
    return out;
}

Error error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no crmsync::Error was thrown");
    return Error(ErrorKind::internal, "unreachable");
}

} // namespace

// Each section makes its source after its server, so the source (and its keep-alive
// connection) goes first and the server stops at once.
TEST_CASE("rest::RestSource paging", "[unit][http]") {
    util::clear_secrets_for_tests();
    Env env;
    FakeApi api;
    api.docs = docs(7);

    SECTION("reads a page-numbered stream, one Page per HTTP page, with its window") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", pages_of(3)));
            return s;
        }());
        const auto pages = drain(*source);
        REQUIRE(pages.size() == 3);
        CHECK(pages[0].records.size() == 3);
        CHECK(pages[2].records.size() == 1);
        CHECK(pages[0].stream == "contacts");
        CHECK(ids_of(pages) == std::vector<std::string>{"d1", "d2", "d3", "d4", "d5", "d6", "d7"});
        const auto seen = api.seen();
        REQUIRE(seen.size() == 3);
        CHECK(seen[0].path == "/api/v1/callcenters/cc1/contacts");
        CHECK(seen[2].param("page") == "3");
        CHECK(seen[2].param("limit") == "3");
        CHECK(seen[0].param("includeDeleted") == "true");
        CHECK(seen[0].param("updatedFrom") == "<none>");
        CHECK(seen[0].param("updatedTo") == std::to_string(k_now - 30'000));
        CHECK(pages[0].context.at("paging").at("total") == 7);
        CHECK(pages[0].context.at("result").is_null());
    }
    SECTION("never moves a stream's checkpoint before its last page") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", pages_of(3)));
            return s;
        }());
        const auto pages = drain(*source);
        REQUIRE(pages.size() == 3);
        CHECK_FALSE(pages[0].checkpoint.has_value());
        CHECK_FALSE(pages[1].checkpoint.has_value());
        REQUIRE(pages[2].checkpoint.has_value());
        CHECK(json::parse(*pages[2].checkpoint) ==
              json{{"streams", {{"contacts", {{"changed", k_base + 7}, {"id", "d7"}}}}}});
    }
    SECTION("resumes from the stored position minus the lookback, keeping other streams") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", pages_of(3)));
            return s;
        }());
        const json stored = {{"streams",
                              {{"contacts", {{"changed", k_base + 300'005}, {"id", "d5"}}},
                               {"retired", {{"changed", 1}, {"id", nullptr}}}}}};
        const auto pages = drain(*source, stored.dump());
        CHECK(api.seen().at(0).param("updatedFrom") == std::to_string(k_base + 5));
        CHECK(api.seen().at(0).param("afterId") == "<none>");
        CHECK(ids_of(pages) == std::vector<std::string>{"d5", "d6", "d7"});
        const auto checkpoint = json::parse(pages.back().checkpoint.value());
        // d7 is older than the stored position: re-read by the lookback, it moves nothing.
        CHECK(checkpoint["streams"]["contacts"] == stored["streams"]["contacts"]);
        CHECK(checkpoint["streams"]["retired"] == stored["streams"]["retired"]);
    }
    SECTION("pages by offset") {
        api.mode = "offset";
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", rest::offset_limit({"offset", {"limit", 4}, ""})));
            return s;
        }());
        const auto pages = drain(*source);
        CHECK(pages.size() == 2);
        CHECK(ids_of(pages).size() == 7);
        CHECK(api.seen().at(1).param("offset") == "4");
    }
    SECTION("follows next-page URLs from the body") {
        api.mode = "next";
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", rest::next_url({"/paging/next", {"limit", 3}})));
            return s;
        }());
        const auto pages = drain(*source);
        CHECK(ids_of(pages) == std::vector<std::string>{"d1", "d2", "d3", "d4", "d5", "d6", "d7"});
        CHECK(api.seen().at(2).param("after") == "6");
    }
    SECTION("ends cursor paging on a repeated cursor, not on an empty page") {
        api.intercept = [](int n, const httplib::Request&, httplib::Response& res) {
            const json answers[] = {
                {{"result", {{{"_id", "a"}, {"updatedAt", k_base}}}}, {"nextPageToken", "A"}},
                {{"result", json::array()}, {"nextPageToken", "B"}},
                {{"result", {{{"_id", "b"}, {"updatedAt", k_base}}}}, {"nextPageToken", "C"}},
                {{"result", {{{"_id", "c"}, {"updatedAt", k_base}}}}, {"nextPageToken", "B"}},
                {{"result", {{{"_id", "never"}, {"updatedAt", k_base}}}}},
            };
            res.set_content(answers[std::min(n, 4)].dump(), "application/json");
            return true;
        };
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts",
                               rest::cursor_token({"/nextPageToken", "", "pageToken", "", {}})));
            return s;
        }());
        const auto pages = drain(*source);
        CHECK(ids_of(pages) == std::vector<std::string>{"a", "b", "c"});
        REQUIRE(api.seen().size() == 4);
        CHECK(api.seen()[1].param("pageToken") == "A");
        CHECK(api.seen()[3].param("pageToken") == "C");
        CHECK(pages.back().checkpoint.has_value());
    }
    SECTION("reads the streams one after the other, each checkpoint holding all positions") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", pages_of(10)));
            s.push_back(stream("groups", pages_of(10)));
            return s;
        }());
        const auto pages = drain(*source);
        REQUIRE(pages.size() == 2);
        CHECK(pages[1].stream == "groups");
        CHECK(api.seen().at(1).path == "/api/v1/callcenters/cc1/groups");
        const auto first = json::parse(pages[0].checkpoint.value());
        const auto second = json::parse(pages[1].checkpoint.value());
        CHECK(first["streams"].size() == 1);
        CHECK(second["streams"].contains("contacts"));
        CHECK(second["streams"].contains("groups"));
    }
}

TEST_CASE("rest::RestSource keyset paging", "[unit][http]") {
    Env env;
    FakeApi api;
    api.docs = docs(6);
    // Before the second page is answered, d1 (already read) is updated: it moves to the end.
    api.before = [&api](int n) {
        if (n == 1) {
            api.docs[0].updated = k_base + 50;
        }
    };

    SECTION("a record updated while paging is not skipped with keyset paging") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", keyset_of(2)));
            return s;
        }());
        const auto ids = ids_of(drain(*source));
        CHECK(std::set<std::string>(ids.begin(), ids.end()) ==
              std::set<std::string>{"d1", "d2", "d3", "d4", "d5", "d6"});
        CHECK(api.seen().at(1).param("updatedFrom") == std::to_string(k_base + 2));
        CHECK(api.seen().at(1).param("afterId") == "d2");
    }
    SECTION("the same update makes page-numbered paging skip a record (why keyset exists)") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", pages_of(2)));
            return s;
        }());
        const auto ids = ids_of(drain(*source));
        CHECK(std::find(ids.begin(), ids.end(), "d3") == ids.end());
    }
    SECTION("an ordered keyset stream moves its checkpoint with every page") {
        auto source = make_source(api, env, [] {
            std::vector<rest::Stream> s;
            s.push_back(stream("contacts", keyset_of(2)));
            s.back().checkpoint_every_page = true;
            return s;
        }());
        const auto pages = drain(*source);
        REQUIRE(pages.size() >= 2);
        const auto first = json::parse(pages[0].checkpoint.value());
        CHECK(first["streams"]["contacts"] == json{{"changed", k_base + 2}, {"id", "d2"}});
    }
}

TEST_CASE("rest::RestSource auth", "[unit][http]") {
    util::clear_secrets_for_tests();
    Env env;
    FakeApi api;
    api.docs = docs(2);
    const auto one_stream = [] {
        std::vector<rest::Stream> s;
        s.push_back(stream("contacts", pages_of(10)));
        return s;
    };

    SECTION("sends Basic auth and asks for JSON on every request") {
        api.intercept = [](int, const httplib::Request& req, httplib::Response& res) {
            if (req.get_header_value("Authorization") != "Basic YWdlbnQ6czNjcmV0LXB3") {
                res.status = 401;
                res.set_content(R"({"success":false,"message":"who are you"})", "application/json");
                return true;
            }
            return false;
        };
        auto source = make_source(api, env, one_stream(), rest::basic_auth("agent", "s3cret-pw"));
        CHECK(ids_of(drain(*source)).size() == 2);
        CHECK(api.seen().at(0).headers.at("Accept") == "application/json");
    }
    SECTION("a refused API key is an auth error naming the request and the header") {
        api.intercept = [](int, const httplib::Request&, httplib::Response& res) {
            res.status = 403;
            res.set_content(R"({"success":false,"message":"forbidden"})", "application/json");
            return true;
        };
        auto source =
            make_source(api, env, one_stream(), rest::api_key_header("x-apikey", "k-9876"));
        const Error e = error_of([&] { drain(*source); });
        CHECK(e.kind() == ErrorKind::auth);
        CHECK(e.describe().find("GET /callcenters/cc1/contacts") != std::string::npos);
        CHECK(e.describe().find("while reading contacts, page 1") != std::string::npos);
        CHECK(e.hint().find("x-apikey") != std::string::npos);
        CHECK(api.seen().size() == 1);
        CHECK(api.seen().at(0).headers.at("x-apikey") == "k-9876");
    }
    SECTION("re-asks the token callback once after a 401") {
        api.intercept = [](int, const httplib::Request& req, httplib::Response& res) {
            if (req.get_header_value("Authorization") != "Bearer fresh-token") {
                res.status = 401;
                res.set_content(R"({"error":"expired"})", "application/json");
                return true;
            }
            return false;
        };
        std::string token = "stale-token";
        int asked = 0;
        auto source = make_source(api, env, one_stream(),
                                  rest::token_callback(
                                      [&] {
                                          ++asked;
                                          return token;
                                      },
                                      [&] { token = "fresh-token"; }));
        CHECK(ids_of(drain(*source)).size() == 2);
        CHECK(api.seen().size() == 2);
        CHECK(asked == 3); // the first request, the renewal, and the repeated request
    }
    SECTION("a token refused again after the re-ask is an auth error, asked only once more") {
        api.intercept = [](int, const httplib::Request&, httplib::Response& res) {
            res.status = 401;
            return true;
        };
        int forgotten = 0;
        int issued = 0;
        auto source =
            make_source(api, env, one_stream(),
                        rest::token_callback([&] { return "token-" + std::to_string(issued); },
                                             [&] {
                                                 ++forgotten;
                                                 ++issued;
                                             }));
        CHECK(error_of([&] { drain(*source); }).kind() == ErrorKind::auth);
        CHECK(forgotten == 1);
        CHECK(api.seen().size() == 2);
    }
    util::clear_secrets_for_tests();
}

TEST_CASE("rest::RestSource answers it cannot use", "[unit][http]") {
    Env env;
    FakeApi api;
    api.docs = docs(2);
    const auto one_stream = [] {
        std::vector<rest::Stream> s;
        s.push_back(stream("contacts", pages_of(10)));
        return s;
    };

    SECTION("a 2xx body that is not JSON is retried, then is a data error") {
        api.intercept = [](int, const httplib::Request&, httplib::Response& res) {
            res.set_content("<html>maintenance</html>", "text/html");
            return true;
        };
        auto source = make_source(api, env, one_stream());
        const Error e = error_of([&] { drain(*source); });
        CHECK(e.kind() == ErrorKind::data);
        CHECK(api.seen().size() == 3);
    }
    SECTION("a body damaged once is fetched again") {
        api.intercept = [](int n, const httplib::Request&, httplib::Response& res) {
            if (n == 0) {
                res.set_content(R"({"success":true,"res)", "application/json");
                return true;
            }
            return false;
        };
        auto source = make_source(api, env, one_stream());
        CHECK(ids_of(drain(*source)).size() == 2);
        CHECK(env.stats.retries == 1);
    }
    SECTION("a 503 with Retry-After is waited for, then the page is read") {
        api.intercept = [](int n, const httplib::Request&, httplib::Response& res) {
            if (n == 0) {
                res.status = 503;
                res.set_header("Retry-After", "2");
                return true;
            }
            return false;
        };
        auto source = make_source(api, env, one_stream());
        CHECK(ids_of(drain(*source)).size() == 2);
        std::chrono::milliseconds waited{0};
        for (const auto d : env.sleeps) {
            waited += d;
        }
        CHECK(waited == 2000ms);
    }
    SECTION("a missing records pointer is a data error naming the pointer") {
        api.intercept = [](int, const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"success":true})", "application/json");
            return true;
        };
        auto source = make_source(api, env, one_stream());
        const Error e = error_of([&] { drain(*source); });
        CHECK(e.kind() == ErrorKind::data);
        CHECK(e.describe().find("/result") != std::string::npos);
        CHECK(e.describe().find("contacts") != std::string::npos);
    }
    SECTION("a missing records array may mean no records, where the API says so") {
        api.intercept = [](int, const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"resultSizeEstimate":0})", "application/json");
            return true;
        };
        auto streams = one_stream();
        streams[0].absent_records_are_none = true;
        auto source = make_source(api, env, std::move(streams));
        const auto pages = drain(*source);
        REQUIRE(pages.size() == 1);
        CHECK(pages[0].records.empty());
        CHECK(pages[0].checkpoint.has_value());
    }
    SECTION("a stored checkpoint this source did not write is a data error") {
        auto source = make_source(api, env, one_stream());
        CHECK(error_of([&] { source->open(std::string("2024-01-01")); }).kind() == ErrorKind::data);
    }
}
