#pragma once

#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/source.hpp"
#include "lib/rest/auth.hpp"
#include "lib/rest/changed_since.hpp"
#include "lib/rest/paging.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::rest {

// One list endpoint of a REST API, read page by page.
struct Stream {
    std::string name; // Page::stream, and this stream's key in the checkpoint
    std::string path; // appended to the base URL, already encoded: "/callcenters/abc/contacts"
    Params query;     // fixed parameters: {"includeDeleted", "true"}
    std::string records_pointer; // where the page's records are ("/result"); empty: the body
    // Gmail leaves "messages" out when nothing matched; elsewhere a missing array is an error.
    bool absent_records_are_none = false;
    std::unique_ptr<Paging> paging;            // null: the endpoint answers in one page
    std::optional<ChangedSince> changed_since; // nullopt: every run reads everything
    // Only for keyset paging ordered by (change time, id): every page may then move the
    // stream's position, since all that sorts before its last record has been read.
    bool checkpoint_every_page = false;
};

struct RestSourceOptions {
    std::string base_url;        // "https://host/api/v1"
    std::unique_ptr<Auth> auth;  // null: no credentials
    std::vector<Stream> streams; // read one after the other, in this order
    Params headers;              // sent with every request ("Accept: application/json" is added)
    bool verify_tls = true;
    std::chrono::milliseconds request_timeout = http::k_default_request_timeout;
};

// A pipeline::Source over REST list endpoints: one Page per HTTP page (the stream's records,
// and as Page::context the rest of the answer, records pointer set to null).
//
// Checkpoint: JSON text {"streams": {"<name>": {"changed": <ms epoch>, "id": ...}}}, each entry
// the newest (change time, id) a stream has read. A stream's entry moves only on the page that
// ends it (or on every page with checkpoint_every_page), so a stored checkpoint never covers a
// record that was not fetched; entries of streams this source no longer reads are kept.
//
// Errors (crmsync::Error, with "while reading <stream>, page N"): credentials refused (after
// one Auth::renew()) -> auth, with the Auth's hint; other 4xx -> usage; 5xx, 429, transport
// failures are retried per the RetryContext, then connection; a 2xx body that is not JSON is
// retried as a damaged transfer, then data; a missing or non-array records pointer -> data;
// a stored checkpoint this source did not write -> data.
std::unique_ptr<pipeline::Source> make_rest_source(RestSourceOptions options,
                                                   http::RetryContext retry);

} // namespace crmsync::rest
