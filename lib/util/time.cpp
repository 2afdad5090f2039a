#include "lib/util/time.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <string_view>

namespace crmsync::util {
namespace {

bool read_int(std::string_view text, std::size_t pos, std::size_t len, int& out) {
    if (pos + len > text.size()) {
        return false;
    }
    for (std::size_t i = pos; i < pos + len; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
            return false;
        }
    }
    auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return ec == std::errc{} && ptr == text.data() + pos + len;
}

std::optional<SystemTime> make_time(int year, int month, int day, int hour, int minute, int second,
                                    int millis) {
    using namespace std::chrono;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    const year_month_day ymd{std::chrono::year{year},
                             std::chrono::month{static_cast<unsigned>(month)},
                             std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) {
        return std::nullopt;
    }
    const auto days = sys_days{ymd};
    return SystemTime{duration_cast<milliseconds>(days.time_since_epoch()) + hours{hour} +
                      minutes{minute} + seconds{second} + milliseconds{millis}};
}

struct Parts {
    int year, month, day, hour, minute, second, millis;
};

Parts split(SystemTime t) {
    using namespace std::chrono;
    const auto day_point = floor<days>(t);
    const year_month_day ymd{day_point};
    auto rest = t - day_point;
    const auto h = duration_cast<hours>(rest);
    rest -= h;
    const auto m = duration_cast<minutes>(rest);
    rest -= m;
    const auto s = duration_cast<seconds>(rest);
    rest -= s;
    return {static_cast<int>(ymd.year()),
            static_cast<int>(static_cast<unsigned>(ymd.month())),
            static_cast<int>(static_cast<unsigned>(ymd.day())),
            static_cast<int>(h.count()),
            static_cast<int>(m.count()),
            static_cast<int>(s.count()),
            static_cast<int>(rest.count())};
}

std::string format(SystemTime t, const char* pattern) {
    const Parts p = split(t);
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), pattern, p.year, p.month, p.day, p.hour, p.minute,
                  p.second, p.millis);
    return buf.data();
}

// Writes 0 <= n < 10^width as `width` digits at `out`.
void put_digits(char* out, int n, int width) {
    for (int i = width - 1; i >= 0; --i) {
        out[i] = static_cast<char>('0' + n % 10);
        n /= 10;
    }
}

// "YYYY-MM-DD<separator>hh:mm:ss.mmm" followed by `suffix` (empty or "Z"), as format() writes it
// with "%04d-%02d-%02d?%02d:%02d:%02d.%03d?" but without snprintf, which took a few percent of
// a first load's CPU (a timestamp column in every row). Years outside 0-9999 (a zone offset can
// carry 9999-12-31 past it) go through format() as before.
std::string format_fixed(SystemTime t, char separator, std::string_view suffix,
                         const char* pattern) {
    const Parts p = split(t);
    if (p.year < 0 || p.year > 9999) {
        return format(t, pattern);
    }
    std::string text(23 + suffix.size(), '\0');
    char* out = text.data();
    put_digits(out, p.year, 4);
    out[4] = '-';
    put_digits(out + 5, p.month, 2);
    out[7] = '-';
    put_digits(out + 8, p.day, 2);
    out[10] = separator;
    put_digits(out + 11, p.hour, 2);
    out[13] = ':';
    put_digits(out + 14, p.minute, 2);
    out[16] = ':';
    put_digits(out + 17, p.second, 2);
    out[19] = '.';
    put_digits(out + 20, p.millis, 3);
    std::copy(suffix.begin(), suffix.end(), out + 23);
    return text;
}

constexpr std::array<std::string_view, 12> k_months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> k_weekdays = {"Sun", "Mon", "Tue", "Wed",
                                                        "Thu", "Fri", "Sat"};

} // namespace

std::optional<SystemTime> parse_iso8601(std::string_view text) {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, millis = 0;
    if (!read_int(text, 0, 4, year) || text.size() < 10 || text[4] != '-' ||
        !read_int(text, 5, 2, month) || text[7] != '-' || !read_int(text, 8, 2, day)) {
        return std::nullopt;
    }
    std::size_t pos = 10;
    if (pos < text.size()) {
        if (text[pos] != 'T' && text[pos] != ' ' && text[pos] != 't') {
            return std::nullopt;
        }
        if (!read_int(text, pos + 1, 2, hour) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
            !read_int(text, pos + 4, 2, minute)) {
            return std::nullopt;
        }
        pos += 6;
        if (pos < text.size() && text[pos] == ':') {
            if (!read_int(text, pos + 1, 2, second)) {
                return std::nullopt;
            }
            pos += 3;
            if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
                ++pos;
                int digits = 0;
                int frac = 0;
                while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
                    if (digits < 3) {
                        frac = frac * 10 + (text[pos] - '0');
                    }
                    ++digits;
                    ++pos;
                }
                if (digits == 0) {
                    return std::nullopt;
                }
                for (int d = digits; d < 3; ++d) {
                    frac *= 10;
                }
                millis = frac;
            }
        }
    }
    int offset_minutes = 0;
    if (pos < text.size()) {
        const char zone = text[pos];
        if ((zone == 'Z' || zone == 'z') && pos + 1 == text.size()) {
            pos += 1;
        } else if (zone == '+' || zone == '-') {
            int oh = 0, om = 0;
            if (!read_int(text, pos + 1, 2, oh)) {
                return std::nullopt;
            }
            std::size_t after = pos + 3;
            if (after < text.size() && text[after] == ':') {
                ++after;
            }
            if (after < text.size()) {
                if (!read_int(text, after, 2, om)) {
                    return std::nullopt;
                }
                after += 2;
            }
            if (after != text.size()) {
                return std::nullopt;
            }
            if (oh > 23 || om > 59) {
                return std::nullopt;
            }
            offset_minutes = (oh * 60 + om) * (zone == '-' ? -1 : 1);
            pos = after;
        } else {
            return std::nullopt;
        }
    }
    auto t = make_time(year, month, day, hour, minute, second, millis);
    if (!t) {
        return std::nullopt;
    }
    return *t - std::chrono::minutes{offset_minutes};
}

std::string format_iso8601(SystemTime t) {
    return format_fixed(t, 'T', "Z", "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ");
}

std::string format_sql_timestamp(SystemTime t) {
    return format_fixed(t, ' ', "", "%04d-%02d-%02d %02d:%02d:%02d.%03d");
}

std::string format_date(SystemTime t) { return format_iso8601(t).substr(0, 10); }

std::optional<SystemTime> parse_http_date(std::string_view text) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"; RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT";
    // asctime: "Sun Nov  6 08:49:37 1994".
    std::string s(text);
    char month_name[4] = {};
    int day = 0, year = 0, hour = 0, minute = 0, second = 0;
    char weekday[16] = {};
    if (std::sscanf(s.c_str(), "%3s, %2d %3s %4d %2d:%2d:%2d GMT", weekday, &day, month_name, &year,
                    &hour, &minute, &second) == 7) {
    } else if (std::sscanf(s.c_str(), "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT", weekday, &day,
                           month_name, &year, &hour, &minute, &second) == 7) {
        year += year < 70 ? 2000 : 1900;
    } else if (std::sscanf(s.c_str(), "%3s %3s %2d %2d:%2d:%2d %4d", weekday, month_name, &day,
                           &hour, &minute, &second, &year) == 7) {
    } else {
        return std::nullopt;
    }
    int month = 0;
    for (std::size_t i = 0; i < k_months.size(); ++i) {
        if (k_months[i] == month_name) {
            month = static_cast<int>(i) + 1;
        }
    }
    if (month == 0) {
        return std::nullopt;
    }
    return make_time(year, month, day, hour, minute, second, 0);
}

std::string format_http_date(SystemTime t) {
    using namespace std::chrono;
    const Parts p = split(t);
    const weekday wd{floor<days>(t)};
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                  std::string(k_weekdays[wd.c_encoding()]).c_str(), p.day,
                  std::string(k_months[static_cast<std::size_t>(p.month - 1)]).c_str(), p.year,
                  p.hour, p.minute, p.second);
    return buf.data();
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
        ++digits;
    }
    if (digits == 0 || digits > 12) {
        return std::nullopt;
    }
    long long value = 0;
    std::from_chars(text.data(), text.data() + digits, value);
    const std::string_view unit = text.substr(digits);
    long long unit_ms = 0;
    if (unit.empty() || unit == "s") {
        unit_ms = 1000;
    } else if (unit == "ms") {
        unit_ms = 1;
    } else if (unit == "m" || unit == "min") {
        unit_ms = 60'000;
    } else if (unit == "h") {
        unit_ms = 3'600'000;
    } else if (unit == "d") {
        unit_ms = 86'400'000;
    } else {
        return std::nullopt;
    }
    // 12 digits of days would overflow the milliseconds; no duration needs a century.
    if (value > k_max_duration.count() / unit_ms) {
        return std::nullopt;
    }
    return std::chrono::milliseconds{value * unit_ms};
}

} // namespace crmsync::util
