#pragma once

#include "lib/core/clock.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace crmsync::drivers::contacts {

// The time zone in which a Creator app writes Added_Time / Modified_Time (its Settings): the
// strings carry no offset. "UTC", a fixed offset ("+05:30", "UTC-03:00") or an IANA name
// ("Europe/Warsaw", read from the system's zoneinfo).
class ZohoZone {
public:
    // Throws Error(usage) for a zone it cannot read.
    static ZohoZone parse(const std::string& text);

    // "13-Apr-2020 10:15:30" (also "Apr 13,2020 10:15:30") in this zone; nullopt if malformed.
    std::optional<SystemTime> parse_time(std::string_view text) const;
    // `t` as "13-Apr-2020 10:15:30" in this zone (whole seconds, rounded down).
    std::string format_time(SystemTime t) const;
    const std::string& name() const { return m_name; }

private:
    std::string m_name;
    std::optional<long> m_offset_seconds; // fixed offset; none: the IANA zone m_name
};

} // namespace crmsync::drivers::contacts
