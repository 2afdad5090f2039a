#pragma once

// The Deluge-style `criteria` of Zoho Creator's get-records API (reference zoho-creator.md §3),
// as far as the fake needs it:
//   expr       := and ( "||" and )*
//   and        := unary ( "&&" unary )*
//   unary      := "(" expr ")" | comparison
//   comparison := FIELD OP LITERAL | FIELD "." FUNC "(" LITERAL ")"
//   FIELD      := name ( "." subfield )?      e.g. Email, Name.last_name
//   OP         := == != < <= > >=             FUNC := contains | startswith | endswith
//   LITERAL    := "text" | 'text' (backslash escapes the next character) | number
// Added_Time and Modified_Time compare as times: the literal is "dd-MMM-yyyy HH:mm:ss" or
// "dd-MMM-yyyy" in the app's time zone, at whole seconds. Every other field compares as text
// (case-sensitive; a missing field is ""), numbers included.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace crmsync::fakes {

/// "13-Apr-2020 10:15:30": `epoch_ms` (UTC) shown at `utc_offset_minutes`, whole seconds.
std::string format_creator_time(std::int64_t epoch_ms, int utc_offset_minutes);
/// Reads "dd-MMM-yyyy HH:mm:ss" or "dd-MMM-yyyy" (00:00:00) at `utc_offset_minutes`; epoch ms
/// (UTC), nullopt for anything else.
std::optional<std::int64_t> parse_creator_time(std::string_view text, int utc_offset_minutes);
/// "UTC", "GMT", "Z", "+HH:MM" or "-HH:MM" (also after "UTC"/"GMT") as minutes east of UTC;
/// nullopt otherwise. Named zones (Europe/Warsaw) are not modelled: fixed offsets only.
std::optional<int> parse_utc_offset(std::string_view text);

/// A criteria text that cannot be read; what() says where.
class CriteriaError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A parsed criteria expression; evaluating it is thread-safe.
class Criteria {
public:
    /// A record's time fields in epoch ms: how Added_Time / Modified_Time compare.
    using TimeOf = std::function<std::optional<std::int64_t>(const nlohmann::json& record,
                                                             const std::string& field)>;

    /// Throws CriteriaError. An empty or blank text matches every record.
    Criteria(std::string_view text, int utc_offset_minutes);
    ~Criteria();
    Criteria(Criteria&&) noexcept;
    Criteria& operator=(Criteria&&) noexcept;

    /// `record` as stored (Name an object with first_name/last_name); `time_of` gives the time
    /// fields.
    [[nodiscard]] bool matches(const nlohmann::json& record, const TimeOf& time_of) const;

    struct Node;

private:
    std::unique_ptr<Node> m_root;
};

} // namespace crmsync::fakes
