#include "tests/fakes/common/fake_time.hpp"

#include <array>
#include <cstdio>

namespace crmsync::fakes {
namespace {

struct CivilDate {
    std::int64_t year;
    int month; // 1..12
    int day;   // 1..31
};

// Howard Hinnant's days_from_civil / civil_from_days: exact for the proleptic Gregorian
// calendar, no locale or time zone database involved.
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = y - era * 400;
    const auto mp = static_cast<std::int64_t>((m + 9) % 12);
    const auto doy = (153 * mp + 2) / 5 + d - 1;
    const auto doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

CivilDate civil_from_days(std::int64_t z) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = z - era * 146097;
    const auto yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const auto doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const auto mp = (5 * doy + 2) / 153;
    const auto d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    const auto m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    return {yoe + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
}

int days_in_month(std::int64_t year, int month) {
    static constexpr std::array<int, 12> k_days{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : k_days[static_cast<std::size_t>(month - 1)];
}

// Reads exactly `width` digits at `pos`; advances `pos`.
std::optional<int> read_digits(std::string_view s, std::size_t& pos, std::size_t width) {
    if (pos + width > s.size()) {
        return std::nullopt;
    }
    int value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        const char c = s[pos + i];
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + (c - '0');
    }
    pos += width;
    return value;
}

} // namespace

std::int64_t start_of_day(std::int64_t epoch_ms) {
    return floor_div(epoch_ms, k_ms_per_day) * k_ms_per_day;
}

std::string format_iso_ms(std::int64_t epoch_ms) {
    // Hand-rolled: it runs for every timestamp of every contact, and snprintf showed up high
    // in the profile of E3.
    const auto days = floor_div(epoch_ms, k_ms_per_day);
    const auto in_day = epoch_ms - days * k_ms_per_day;
    const auto date = civil_from_days(days);
    if (date.year < 0 || date.year > 9999) {
        return "0000-00-00T00:00:00.000Z";
    }
    std::string out = "0000-00-00T00:00:00.000Z";
    const auto put = [&out](std::size_t pos, std::size_t width, std::int64_t value) {
        for (auto i = width; i-- > 0; value /= 10) {
            out[pos + i] = static_cast<char>('0' + value % 10);
        }
    };
    put(0, 4, date.year);
    put(5, 2, date.month);
    put(8, 2, date.day);
    put(11, 2, in_day / 3'600'000);
    put(14, 2, in_day / 60'000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    return out;
}

std::string format_http_date(std::int64_t epoch_ms) {
    static constexpr std::array<const char*, 7> k_weekdays{"Thu", "Fri", "Sat", "Sun",
                                                           "Mon", "Tue", "Wed"};
    static constexpr std::array<const char*, 12> k_months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const auto days = floor_div(epoch_ms, k_ms_per_day);
    const auto in_day = epoch_ms - days * k_ms_per_day;
    const auto date = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    const auto weekday = static_cast<std::size_t>(((days % 7) + 7) % 7);
    std::array<char, 40> buf{};
    const int n = std::snprintf(
        buf.data(), buf.size(), "%s, %02d %s %04lld %02d:%02d:%02d GMT", k_weekdays[weekday],
        date.day, k_months[static_cast<std::size_t>(date.month - 1)],
        static_cast<long long>(date.year), static_cast<int>(in_day / 3'600'000),
        static_cast<int>(in_day / 60'000 % 60), static_cast<int>(in_day / 1000 % 60));
    return {buf.data(), static_cast<std::size_t>(n)};
}

std::optional<std::int64_t> parse_api_time(std::string_view text) {
    if (!text.empty() && text.back() == 'Z') {
        text.remove_suffix(1);
    }
    std::size_t pos = 0;
    const auto year = read_digits(text, pos, 4);
    if (!year || pos >= text.size() || text[pos++] != '-') {
        return std::nullopt;
    }
    const auto month = read_digits(text, pos, 2);
    if (!month || pos >= text.size() || text[pos++] != '-') {
        return std::nullopt;
    }
    const auto day = read_digits(text, pos, 2);
    if (!day || *month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month)) {
        return std::nullopt;
    }
    int hour = 0;
    int minute = 0;
    int second = 0;
    int millis = 0;
    if (pos < text.size()) {
        if (text[pos++] != 'T') {
            return std::nullopt;
        }
        const auto h = read_digits(text, pos, 2);
        if (!h || pos >= text.size() || text[pos++] != ':') {
            return std::nullopt;
        }
        const auto mi = read_digits(text, pos, 2);
        if (!mi) {
            return std::nullopt;
        }
        hour = *h;
        minute = *mi;
        if (pos < text.size()) {
            if (text[pos++] != ':') {
                return std::nullopt;
            }
            const auto s = read_digits(text, pos, 2);
            if (!s) {
                return std::nullopt;
            }
            second = *s;
        }
        if (pos < text.size()) {
            // Go's ".999" layout drops trailing zeros, so 1 to 9 fraction digits can arrive.
            if (text[pos++] != '.' || pos >= text.size()) {
                return std::nullopt;
            }
            int digits = 0;
            for (; pos < text.size(); ++pos, ++digits) {
                const char c = text[pos];
                if (c < '0' || c > '9' || digits >= 9) {
                    return std::nullopt;
                }
                if (digits < 3) {
                    millis = millis * 10 + (c - '0');
                }
            }
            for (int i = digits; i < 3; ++i) {
                millis *= 10;
            }
        }
        if (hour > 23 || minute > 59 || second > 59) {
            return std::nullopt;
        }
    }
    const auto days = days_from_civil(*year, *month, *day);
    return days * k_ms_per_day + hour * 3'600'000LL + minute * 60'000LL + second * 1000LL + millis;
}

} // namespace crmsync::fakes
