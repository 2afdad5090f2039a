// The lenient parser of API bodies: any bytes give a document or a discarded one, never a
// crash; a document is valid UTF-8 throughout (a strict dump succeeds) and nests at most
// k_max_json_depth levels, so dump() and tree walks cannot overflow the stack. Below that depth
// the document is exactly what nlohmann's parser builds from the repaired text, whether simdjson
// or nlohmann parsed it. Where simdjson's document is kept instead (keep_simdjson), the JSON
// texts written from it, in both member orders, are those written from nlohmann's document.

#include "lib/http/json_body.hpp"
#include "lib/sql/dialect.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/util/utf8.hpp"
#include "tests/support/json_same_document.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <simdjson.h>
#include <string>
#include <utility>
#include <vector>

using namespace crmsync;

namespace {

// Depth without recursion: the document may be exactly what this target hunts for.
int depth_of(const nlohmann::json& doc) {
    int deepest = 0;
    std::vector<std::pair<const nlohmann::json*, int>> todo{{&doc, 1}};
    while (!todo.empty()) {
        const auto [value, depth] = todo.back();
        todo.pop_back();
        if (!value->is_structured()) {
            continue;
        }
        deepest = std::max(deepest, depth);
        for (const auto& child : *value) {
            todo.emplace_back(&child, depth + 1);
        }
    }
    return deepest;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    std::string again = text;
    http::replace_lone_surrogates(again);
    if (http::replace_lone_surrogates(again) != 0) {
        std::abort(); // replacing is idempotent
    }
    std::string repaired = text;
    util::repair_utf8(repaired);
    http::replace_lone_surrogates(repaired);
    const auto kept = http::parse_json_body(text, true);
    const auto body = http::parse_json_body(std::move(text));
    if (kept.simdjson_doc) {
        if (body.doc.is_discarded()) {
            std::abort(); // kept a document where nlohmann's parser finds none
        }
        for (const auto order : {sql::JsonMemberOrder::by_name, sql::JsonMemberOrder::jsonb}) {
            sql::set_json_member_order(order);
            if (sql::to_json_text(kept.simdjson_doc->root()) != sql::to_json_text(body.doc)) {
                std::abort(); // the two documents read differently
            }
        }
        sql::set_json_member_order(sql::JsonMemberOrder::by_name);
    }
    if (!http::nests_as_deep_as(repaired, http::k_max_json_depth) &&
        !testing::same_json_document(body.doc, nlohmann::json::parse(repaired, nullptr, false))) {
        std::abort(); // the fast path built another document than nlohmann's parser
    }
    if (body.doc.is_discarded()) {
        return 0;
    }
    if (depth_of(body.doc) > http::k_max_json_depth) {
        std::abort();
    }
    try {
        (void)body.doc.dump();
    } catch (const nlohmann::json::exception&) {
        std::abort();
    }
    return 0;
}
