#pragma once

// Compares two parsed documents down to the kind of every number, for the tests and the fuzz
// target of http::parse_json_body (nlohmann's == takes the integer 1 and the unsigned 1 as
// equal; a column's conversion and a hash of the document's text do not).

#include <nlohmann/json.hpp>

#include <cstddef>

namespace crmsync::testing {

/// Whether `a` and `b` are the same document: the same types everywhere, the same keys in the
/// same order, and floats that write the same text (-0.0 is not 0.0). Discarded equals discarded.
inline bool same_json_document(const nlohmann::json& a, const nlohmann::json& b) {
    if (a.type() != b.type()) {
        return false;
    }
    if (a.is_object()) {
        if (a.size() != b.size()) {
            return false;
        }
        for (auto it = a.begin(), other = b.begin(); it != a.end(); ++it, ++other) {
            if (it.key() != other.key() || !same_json_document(*it, *other)) {
                return false;
            }
        }
        return true;
    }
    if (a.is_array()) {
        if (a.size() != b.size()) {
            return false;
        }
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (!same_json_document(a[i], b[i])) {
                return false;
            }
        }
        return true;
    }
    if (a.is_discarded()) {
        return true;
    }
    if (a.is_number_float()) {
        return a.dump() == b.dump();
    }
    return a == b;
}

} // namespace crmsync::testing
