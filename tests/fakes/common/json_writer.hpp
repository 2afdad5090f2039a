#pragma once

// A minimal streaming JSON writer. The fake needs one because nlohmann::json refuses to emit
// invalid UTF-8, and the hostile campaign must send raw invalid bytes inside strings exactly as
// a broken upstream would. It is also several times faster for the large E3 pages.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

class JsonWriter {
public:
    explicit JsonWriter(std::string& out) : m_out(out) {}

    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();

    /// Writes `"name":`; the next call writes its value.
    JsonWriter& key(std::string_view name);

    /// Escapes '"', '\\' and control characters; every other byte (also invalid UTF-8) is
    /// copied verbatim.
    JsonWriter& str(std::string_view text);
    JsonWriter& str_or_null(const std::optional<std::string>& text);
    JsonWriter& integer(std::int64_t number);
    /// Up to `places` fraction digits, trailing zeros dropped ("12.5", "7").
    JsonWriter& decimal(double number, int places = 3);
    JsonWriter& boolean(bool flag);
    JsonWriter& null();
    /// Inserts already serialized JSON as one value.
    JsonWriter& raw(std::string_view json);

private:
    void before_value();

    std::string& m_out;
    std::vector<bool> m_first_in_level;
    bool m_after_key = false;
};

} // namespace crmsync::fakes
