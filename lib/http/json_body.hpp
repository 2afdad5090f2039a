#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace simdjson::dom {
class document;
}

namespace crmsync::http {

// Deeper nesting than this is never built: dump() and tree walks recurse once per level.
inline constexpr int k_max_json_depth = 128;

// A JSON answer of an API, parsed so that hostile content cannot stop a job.
struct JsonBody {
    nlohmann::json doc;                // discarded when the text is not JSON
    long repaired_bytes = 0;           // invalid UTF-8 bytes and lone surrogates made U+FFFD
    std::vector<std::size_t> too_deep; // positions, in a top-level array, of elements that held
                                       // values nested deeper than k_max_json_depth (dropped
                                       // from them); {0} for a top-level value that is not an array
    bool parsed_by_simdjson = false;   // the fast path took it (else nlohmann's parser)
    // With keep_simdjson, where simdjson took the text: its document (doc is then null). It
    // reads as nlohmann's would (util/json_doc.hpp).
    std::shared_ptr<const simdjson::dom::document> simdjson_doc;
};

// Replaces the \u escapes of lone UTF-16 surrogates (legal JSON text, no Unicode character)
// by \ufffd, so a strict parser takes the text. Returns how many were replaced.
std::size_t replace_lone_surrogates(std::string& text);

// Whether arrays and objects in `text` (JSON or not) nest `levels` deep or deeper, strings not
// counted: a top-level array of objects nests 2 deep.
bool nests_as_deep_as(std::string_view text, int levels);

// Parses `text` (a 2xx body): invalid UTF-8 and lone surrogates become U+FFFD, and values
// nested deeper than k_max_json_depth are left out and reported in `too_deep`. Never throws
// for bad text: `doc` is then discarded. The document is always the one nlohmann's parser builds
// from the repaired text; simdjson parses it when it can, which is several times quicker.
// keep_simdjson: where simdjson takes the text, keep its document in simdjson_doc instead of
// building nlohmann's from it (which costs more than the parse).
JsonBody parse_json_body(std::string text, bool keep_simdjson = false);

} // namespace crmsync::http
