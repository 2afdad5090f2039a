#include "lib/core/error.hpp"
#include "lib/http/http_client.hpp"
#include "lib/rest/paging.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

using crmsync::Error;
using crmsync::ErrorKind;
using nlohmann::json;
namespace http = crmsync::http;
namespace rest = crmsync::rest;

namespace {

// One answer, kept alive for the PageReply that points into it.
struct Answer {
    http::HttpResponse response;
    json body;
    std::vector<json> records;

    Answer(json b, int count, std::map<std::string, std::string> headers = {})
        : body(std::move(b)) {
        response.status = 200;
        response.headers = std::move(headers);
        for (int i = 0; i < count; ++i) {
            records.push_back(json{{"id", i}});
        }
    }
    rest::PageReply reply() const { return rest::PageReply{response, body, records}; }
};

// The request the paging style would send for its next page, on top of a fixed base.
rest::PageRequest next_request(rest::Paging& paging) {
    rest::PageRequest request;
    request.url = "https://api.example.com/v1/items";
    request.query = {{"type", "note"}};
    paging.prepare(request);
    return request;
}

std::optional<ErrorKind> kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.kind();
    }
    return std::nullopt;
}

} // namespace

TEST_CASE("rest::PageRequest", "[unit][http]") {
    SECTION("a parameter set later replaces the earlier one of the same name") {
        rest::PageRequest r;
        r.url = "https://h/x";
        r.query = {{"limit", "10"}, {"q", "a b&c"}};
        r.set_param("limit", "50");
        CHECK(r.final_url() == "https://h/x?q=a%20b%26c&limit=50");
    }
    SECTION("a full next URL is sent as it is") {
        rest::PageRequest r;
        r.url = "https://h/x";
        r.query = {{"limit", "10"}};
        r.full_url = "https://h/x?after=QVF%3D";
        CHECK(r.final_url() == "https://h/x?after=QVF%3D");
    }
}

TEST_CASE("rest::page_number", "[unit][http]") {
    auto paging = rest::page_number({"page", 1, {"limit", 3}, ""});
    paging->start();

    SECTION("asks for pages 1, 2, 3 and ends on a short page") {
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&page=1&limit=3");
        CHECK(paging->advance(Answer(json::object(), 3).reply()));
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&page=2&limit=3");
        Answer second(json::object(), 3);
        second.records[0]["id"] = 10; // another page than the first
        CHECK(paging->advance(second.reply()));
        CHECK_FALSE(paging->advance(Answer(json::object(), 2).reply()));
    }
    SECTION("fails when the API ignores the page parameter") {
        CHECK(paging->advance(Answer(json::object(), 3).reply()));
        CHECK(kind_of([&] { paging->advance(Answer(json::object(), 3).reply()); }) ==
              ErrorKind::data);
    }
    SECTION("start() begins again at the first page") {
        CHECK(paging->advance(Answer(json::object(), 3).reply()));
        paging->start();
        CHECK(next_request(*paging).query.at(1).second == "1");
    }
}

TEST_CASE("rest::page_number with hasMore", "[unit][http]") {
    auto paging = rest::page_number({"page", 1, {"limit", 3}, "/paging/hasMore"});
    paging->start();

    SECTION("ends when hasMore is false, even after a full page") {
        CHECK_FALSE(paging->advance(Answer({{"paging", {{"hasMore", false}}}}, 3).reply()));
    }
    SECTION("goes on while hasMore is true, even after a short page") {
        CHECK(paging->advance(Answer({{"paging", {{"hasMore", true}}}}, 1).reply()));
    }
    SECTION("falls back to the short-page rule when hasMore is absent") {
        CHECK_FALSE(paging->advance(Answer(json::object(), 2).reply()));
    }
}

TEST_CASE("rest::offset_limit", "[unit][http]") {
    auto paging = rest::offset_limit({"start", {"limit", 50}, ""});
    paging->start();

    SECTION("advances the offset by the records received") {
        CHECK(next_request(*paging).final_url().find("start=0&limit=50") != std::string::npos);
        CHECK(paging->advance(Answer(json::object(), 50).reply()));
        CHECK(next_request(*paging).final_url().find("start=50&limit=50") != std::string::npos);
        CHECK_FALSE(paging->advance(Answer(json::object(), 0).reply()));
    }
}

TEST_CASE("rest::cursor_token", "[unit][http]") {
    SECTION("ends cursor paging on a repeated cursor, not on an empty page") {
        auto paging = rest::cursor_token({"/nextPageToken", "", "pageToken", "", {"pageSize", 2}});
        paging->start();
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&pageSize=2");
        CHECK(paging->advance(Answer({{"nextPageToken", "A"}}, 2).reply()));
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&pageSize=2&pageToken=A");
        CHECK(paging->advance(Answer({{"nextPageToken", "B"}}, 0).reply()));
        CHECK(paging->advance(Answer({{"nextPageToken", "C"}}, 1).reply()));
        CHECK_FALSE(paging->advance(Answer({{"nextPageToken", "B"}}, 1).reply()));
    }
    SECTION("ends on a page without a cursor, or with an empty one") {
        auto paging = rest::cursor_token({"/next", "", "start", "", {}});
        paging->start();
        CHECK(paging->advance(Answer({{"next", 50}}, 50).reply()));
        CHECK(next_request(*paging).final_url().find("start=50") != std::string::npos);
        CHECK_FALSE(paging->advance(Answer(json::object(), 50).reply()));
        paging->start();
        CHECK_FALSE(paging->advance(Answer({{"next", ""}}, 50).reply()));
    }
    SECTION("reads the cursor from a response header and sends it back as a request header") {
        auto paging = rest::cursor_token({"", "record_cursor", "", "record_cursor", {}});
        paging->start();
        CHECK(paging->advance(Answer(json::object(), 5, {{"record_cursor", "k1"}}).reply()));
        const auto request = next_request(*paging);
        REQUIRE(request.headers.size() == 1);
        CHECK(request.headers[0] == std::pair<std::string, std::string>{"record_cursor", "k1"});
        CHECK(request.final_url() == "https://api.example.com/v1/items?type=note");
        CHECK_FALSE(paging->advance(Answer(json::object(), 5).reply()));
    }
    SECTION("a cursor style with nowhere to read or send the token is a programming error") {
        CHECK(kind_of([] { rest::cursor_token({}); }) == ErrorKind::internal);
    }
}

TEST_CASE("rest::next_url", "[unit][http]") {
    SECTION("follows the body's next URL as it is, and ends without one") {
        auto paging = rest::next_url({"/paging/next", {"limit", 25}});
        paging->start();
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&limit=25");
        const std::string next = "https://api.example.com/v1/items?limit=25&after=QVFI";
        CHECK(paging->advance(Answer({{"paging", {{"next", next}}}}, 0).reply()));
        CHECK(next_request(*paging).final_url() == next);
        CHECK_FALSE(paging->advance(Answer({{"data", json::array()}}, 0).reply()));
    }
    SECTION("follows the Link header's rel=next, relative ones too") {
        auto paging = rest::next_url({"", {}});
        paging->start();
        next_request(*paging);
        CHECK(paging->advance(
            Answer(json::array(), 1,
                   {{"link", "</v1/items?page=2>; rel=\"next\", </v1/items?page=9>; rel=\"last\""}})
                .reply()));
        CHECK(next_request(*paging).final_url() == "https://api.example.com/v1/items?page=2");
        CHECK_FALSE(paging->advance(
            Answer(json::array(), 1, {{"link", "</v1/items?page=1>; rel=\"first\""}}).reply()));
    }
    SECTION("refuses a next URL on another host: the credentials would go with it") {
        auto paging = rest::next_url({"/next", {}});
        paging->start();
        next_request(*paging);
        CHECK(kind_of([&] {
                  paging->advance(Answer({{"next", "https://evil.example.net/x"}}, 1).reply());
              }) == ErrorKind::data);
    }
    SECTION("ends on a next URL it has followed before") {
        auto paging = rest::next_url({"/next", {}});
        paging->start();
        next_request(*paging);
        CHECK(paging->advance(Answer({{"next", "https://api.example.com/a"}}, 1).reply()));
        CHECK(paging->advance(Answer({{"next", "https://api.example.com/b"}}, 1).reply()));
        CHECK_FALSE(paging->advance(Answer({{"next", "https://api.example.com/a"}}, 1).reply()));
    }
}

TEST_CASE("rest::link_next", "[unit][http]") {
    CHECK(rest::link_next("<https://a/x?p=2>; rel=\"next\"") == "https://a/x?p=2");
    CHECK(rest::link_next("<https://a/x?p=1>; rel=prev, <https://a/x?p=3>; rel=\"next last\"") ==
          "https://a/x?p=3");
    CHECK_FALSE(rest::link_next("<https://a/x?p=1>; rel=\"prev\"").has_value());
    CHECK_FALSE(rest::link_next("garbage").has_value());
}

TEST_CASE("rest::keyset", "[unit][http]") {
    auto paging =
        rest::keyset({{{"updatedFrom", "/updatedAt"}, {"afterId", "/_id"}}, {"limit", 2}, ""});
    paging->start();
    const auto page = [](std::vector<json> records) {
        Answer a(json::object(), 0);
        a.records = std::move(records);
        return a;
    };

    SECTION("sends the last record's keys back, and ends on an empty page") {
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&limit=2");
        CHECK(paging->advance(
            page({{{"_id", "a"}, {"updatedAt", 5}}, {{"_id", "b"}, {"updatedAt", 7}}}).reply()));
        CHECK(next_request(*paging).final_url() ==
              "https://api.example.com/v1/items?type=note&limit=2&updatedFrom=7&afterId=b");
        CHECK(paging->advance(page({{{"_id", "c"}, {"updatedAt", 9}}}).reply()));
        CHECK_FALSE(paging->advance(page({}).reply()));
    }
    SECTION("fails when a page ends on the same keys as the one before") {
        CHECK(paging->advance(page({{{"_id", "a"}, {"updatedAt", 5}}}).reply()));
        CHECK(kind_of([&] {
                  paging->advance(page({{{"_id", "a"}, {"updatedAt", 5}}}).reply());
              }) == ErrorKind::data);
    }
    SECTION("fails when the last record has no key to continue from") {
        CHECK(kind_of([&] {
                  paging->advance(page({{{"updatedAt", 5}}}).reply());
              }) == ErrorKind::data);
    }
}
