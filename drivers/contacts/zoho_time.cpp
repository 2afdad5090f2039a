#include "drivers/contacts/zoho_time.hpp"

#include "lib/core/error.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace crmsync::drivers::contacts {
namespace {

constexpr std::array<const char*, 12> k_months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::optional<int> month_of(std::string_view name) {
    for (std::size_t i = 0; i < k_months.size(); ++i) {
        if (name == k_months[i]) {
            return static_cast<int>(i);
        }
    }
    return std::nullopt;
}

std::optional<int> number(std::string_view text) {
    if (text.empty() || text.size() > 4) {
        return std::nullopt;
    }
    int n = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        n = n * 10 + (c - '0');
    }
    return n;
}

// "+05:30", "-3", "+0530" -> seconds east of UTC.
std::optional<long> parse_offset(std::string_view text) {
    if (text.empty() || (text[0] != '+' && text[0] != '-')) {
        return std::nullopt;
    }
    const long sign = text[0] == '-' ? -1 : 1;
    std::string digits;
    for (const char c : text.substr(1)) {
        if (c != ':') {
            digits += c;
        }
    }
    const auto hours = number(digits.substr(0, std::min<std::size_t>(2, digits.size())));
    const auto minutes = digits.size() > 2 ? number(digits.substr(2)) : std::optional<int>(0);
    if (!hours || !minutes || *hours > 14 || *minutes > 59) {
        return std::nullopt;
    }
    return sign * (*hours * 3600L + *minutes * 60L);
}

// Zone conversions of an IANA zone go through the C library, which reads TZ: one at a time.
std::mutex& tz_mutex() {
    static std::mutex m;
    return m;
}

struct TzScope {
    std::string old;
    bool had = false;
    explicit TzScope(const std::string& zone) {
        if (const char* v = std::getenv("TZ")) {
            old = v;
            had = true;
        }
        ::setenv("TZ", zone.c_str(), 1);
        ::tzset();
    }
    ~TzScope() {
        if (had) {
            ::setenv("TZ", old.c_str(), 1);
        } else {
            ::unsetenv("TZ");
        }
        ::tzset();
    }
    TzScope(const TzScope&) = delete;
    TzScope& operator=(const TzScope&) = delete;
};

} // namespace

ZohoZone ZohoZone::parse(const std::string& text) {
    ZohoZone z;
    z.m_name = text.empty() ? "UTC" : text;
    std::string rest = z.m_name;
    if (rest == "UTC" || rest == "GMT" || rest == "Z") {
        z.m_offset_seconds = 0;
        return z;
    }
    if (rest.starts_with("UTC") || rest.starts_with("GMT")) {
        rest = rest.substr(3);
    }
    if (const auto offset = parse_offset(rest)) {
        z.m_offset_seconds = *offset;
        return z;
    }
    std::error_code ec;
    if (rest.find("..") == std::string::npos && !rest.empty() && rest[0] != '/' &&
        std::filesystem::is_regular_file("/usr/share/zoneinfo/" + rest, ec)) {
        return z;
    }
    throw Error(ErrorKind::usage, "--zoho-timezone: unknown time zone '" + text + "'",
                "give the Creator app's time zone as UTC, an offset (+05:30) or a name "
                "(Europe/Warsaw)");
}

std::optional<SystemTime> ZohoZone::parse_time(std::string_view text) const {
    // dd-MMM-yyyy HH:mm:ss, or MMM dd,yyyy HH:mm:ss (another app date format).
    std::tm tm{};
    int day = 0;
    std::optional<int> month;
    std::optional<int> year;
    std::string_view clock;
    if (text.size() == 20 && text[2] == '-' && text[6] == '-' && text[11] == ' ') {
        const auto d = number(text.substr(0, 2));
        month = month_of(text.substr(3, 3));
        year = number(text.substr(7, 4));
        day = d.value_or(0);
        clock = text.substr(12);
    } else if (text.size() == 20 && text[3] == ' ' && text[6] == ',' && text[11] == ' ') {
        month = month_of(text.substr(0, 3));
        day = number(text.substr(4, 2)).value_or(0);
        year = number(text.substr(7, 4));
        clock = text.substr(12);
    } else {
        return std::nullopt;
    }
    if (!month || !year || day < 1 || day > 31 || clock.size() != 8 || clock[2] != ':' ||
        clock[5] != ':') {
        return std::nullopt;
    }
    const auto h = number(clock.substr(0, 2));
    const auto mi = number(clock.substr(3, 2));
    const auto s = number(clock.substr(6, 2));
    if (!h || !mi || !s || *h > 23 || *mi > 59 || *s > 60) {
        return std::nullopt;
    }
    tm.tm_year = *year - 1900;
    tm.tm_mon = *month;
    tm.tm_mday = day;
    tm.tm_hour = *h;
    tm.tm_min = *mi;
    tm.tm_sec = *s;
    std::time_t epoch = 0;
    if (m_offset_seconds) {
        epoch = ::timegm(&tm) - *m_offset_seconds;
    } else {
        const std::lock_guard lock(tz_mutex());
        const TzScope scope(m_name);
        tm.tm_isdst = -1;
        epoch = std::mktime(&tm);
    }
    return std::chrono::time_point_cast<SystemTime::duration>(
        std::chrono::system_clock::from_time_t(epoch));
}

std::string ZohoZone::format_time(SystemTime t) const {
    std::time_t epoch = std::chrono::system_clock::to_time_t(
        std::chrono::time_point_cast<std::chrono::system_clock::duration>(t));
    std::tm tm{};
    if (m_offset_seconds) {
        epoch += *m_offset_seconds;
        ::gmtime_r(&epoch, &tm);
    } else {
        const std::lock_guard lock(tz_mutex());
        const TzScope scope(m_name);
        ::localtime_r(&epoch, &tm);
    }
    return fmt::format("{:02}-{}-{:04} {:02}:{:02}:{:02}", tm.tm_mday,
                       k_months[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900, tm.tm_hour,
                       tm.tm_min, tm.tm_sec);
}

} // namespace crmsync::drivers::contacts
