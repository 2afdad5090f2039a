#pragma once

#include "lib/http/http_client.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crmsync::rest {

using Params = std::vector<std::pair<std::string, std::string>>;

// One GET being built for one page: the stream's URL and fixed parameters, then the
// changed-since window, then the paging style's parameters (later ones replace earlier ones of
// the same name).
struct PageRequest {
    std::string url; // scheme://host/path, without a query
    Params query;    // values unencoded; final_url() encodes them
    Params headers;
    std::optional<std::string> full_url; // next-URL paging: sent as is; `url`, `query` ignored

    void set_param(const std::string& name, std::string value);
    void set_header(const std::string& name, std::string value);
    std::string final_url() const;
};

// The answer to one page request, for the paging style to read where the next page starts.
struct PageReply {
    const http::HttpResponse& response;
    const nlohmann::json& body;
    const std::vector<nlohmann::json>& records;
};

// A paging style. Protocol, for each stream: start(); then per page prepare(request), send it,
// advance(reply). advance() returns false when that page was the stream's last. Styles keep
// their position in memory only: page cursors can expire or be invalidated, so they are never
// part of a checkpoint. Throws crmsync::Error(data) when the API's paging cannot be followed
// safely (it would loop, or send credentials elsewhere).
class Paging {
public:
    virtual ~Paging() = default;
    virtual void start() = 0;
    virtual void prepare(PageRequest& request) = 0;
    virtual bool advance(const PageReply& reply) = 0;
};

// How many records a page asks for. An empty `param` sends nothing (the API's default size);
// a size of 0 also turns off the short-page rule (the stream then ends on an empty page).
struct PageSize {
    std::string param;
    int size = 0;
};

// page=1,2,3... Ends when `has_more_pointer` (e.g. "/paging/hasMore") says false; without it,
// on a page shorter than the size asked for (an API that silently caps the size lower than
// asked would end early: ask for no more than its maximum).
struct PageNumberOptions {
    std::string page_param = "page";
    int first_page = 1;
    PageSize limit{"limit", 100};
    std::string has_more_pointer;
};

// offset=0,100,200... Ends as PageNumberOptions does. The offset advances by the records
// received, not by the size asked for.
struct OffsetOptions {
    std::string offset_param = "offset";
    PageSize limit{"limit", 100};
    std::string has_more_pointer;
};

// A token from the answer (`token_pointer` in the body, e.g. "/nextPageToken", or the response
// header `token_header`, e.g. "record_cursor") sent back as the query parameter `send_param` or
// the request header `send_header`. Only a missing or repeated token ends the stream: an empty
// page that carries a token does not (APIs return those).
struct CursorOptions {
    std::string token_pointer;
    std::string token_header; // lower case, as http::HttpResponse keeps names
    std::string send_param;
    std::string send_header;
    PageSize limit;
};

// A full URL for the next page: from the body (`url_pointer`, e.g. "/paging/next") or, when the
// pointer is empty, from the Link header's rel="next". Ends when there is none or it repeats.
// The URL must stay on the first request's scheme, host and port: credentials go with it.
struct NextUrlOptions {
    std::string url_pointer;
    PageSize limit;
};

// Keyset ("afterId"): the last record's keys are sent back, e.g. {"updatedFrom", "/updatedAt"}
// and {"afterId", "/_id"} for an API ordered by (updatedAt, _id). Ends on an empty page, or
// when `has_more_pointer` says false. Unlike offsets, a record updated while paging shifts no
// other record past the reader.
struct KeysetKey {
    std::string param;
    std::string pointer; // in each record
};
struct KeysetOptions {
    std::vector<KeysetKey> keys;
    PageSize limit{"limit", 100};
    std::string has_more_pointer;
};

std::unique_ptr<Paging> single_page();
std::unique_ptr<Paging> page_number(PageNumberOptions options);
std::unique_ptr<Paging> offset_limit(OffsetOptions options);
std::unique_ptr<Paging> cursor_token(CursorOptions options);
std::unique_ptr<Paging> next_url(NextUrlOptions options);
std::unique_ptr<Paging> keyset(KeysetOptions options);

// A JSON scalar as a query value: strings as they are, numbers and booleans as JSON writes them.
std::string param_text(const nlohmann::json& value);

// The URL of the Link header's rel="next" entry (RFC 8288), or nullopt.
std::optional<std::string> link_next(const std::string& link_header);

} // namespace crmsync::rest
