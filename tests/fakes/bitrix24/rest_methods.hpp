#pragma once

// The REST methods of the fake portal, without HTTP: each reads the request's parameters and
// answers a CallResult, which Bitrix24Fake wraps in the envelope (reference apis.md §1.2) or
// in a batch answer (§1.6). `batch` itself lives in Bitrix24Fake, which owns faults and
// statistics for its sub-calls.
//
// Methods: crm.stagehistory.list, crm.status.list, crm.dealcategory.stage.list,
// crm.category.list, crm.deal.list, crm.deal.get.

#include "tests/fakes/bitrix24/portal.hpp"
#include "tests/fakes/bitrix24/rest_params.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::fakes::bitrix24 {

/// List methods answer at most this many rows per call (§1.3).
constexpr std::size_t k_page_size = 50;

struct CallResult {
    bool failed = false;
    int status = 200;
    /// "error" of a failure. May be empty: crm.deal.get answers "Not found" with error "".
    std::string error;
    std::string error_description;
    std::string result; ///< Serialized "result" of a success.
    std::optional<std::int64_t> total;
    std::optional<std::int64_t> next;
};

CallResult failure(int status, std::string error, std::string description);

/// A history row field sent as given: hostile content a broken portal might send.
struct RawHistoryField {
    std::string field; ///< "ID", "TYPE_ID", ... as in the answer
    std::string json;  ///< inserted verbatim as the field's value, valid JSON or not
};

struct MethodContext {
    int offset_minutes = 0;
    bool history_numbers_as_strings = false;
    /// History row ID -> a field sent raw in every answer that lists the row; may be null.
    const std::map<std::int64_t, RawHistoryField>* raw_history = nullptr;
};

/// Whether `method` (lower case, without ".json") is one of the methods above.
[[nodiscard]] bool is_known_method(std::string_view method);

/// Runs one method; an unknown one answers 404 ERROR_METHOD_NOT_FOUND.
CallResult call_method(const Portal& portal, std::string_view method, const Params& params,
                       const MethodContext& context);

} // namespace crmsync::fakes::bitrix24
