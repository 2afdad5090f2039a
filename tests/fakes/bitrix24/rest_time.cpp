#include "tests/fakes/bitrix24/rest_time.hpp"

#include "tests/fakes/common/fake_time.hpp"

#include <cstdlib>

namespace crmsync::fakes::bitrix24 {
namespace {

constexpr std::int64_t k_seconds_per_minute = 60;
constexpr std::size_t k_date_length = 10; // "YYYY-MM-DD"

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "+hh:mm", "+hhmm" or "+hh" (sign included) -> minutes east of UTC.
std::optional<int> parse_offset(std::string_view text) {
    if (text.size() < 3 || (text[0] != '+' && text[0] != '-')) {
        return std::nullopt;
    }
    const int sign = text[0] == '-' ? -1 : 1;
    std::string digits;
    for (std::size_t i = 1; i < text.size(); ++i) {
        if (text[i] == ':' && i == 3) {
            continue;
        }
        if (!is_digit(text[i])) {
            return std::nullopt;
        }
        digits += text[i];
    }
    if (digits.size() != 2 && digits.size() != 4) {
        return std::nullopt;
    }
    const int hours = (digits[0] - '0') * 10 + (digits[1] - '0');
    const int minutes = digits.size() == 4 ? (digits[2] - '0') * 10 + (digits[3] - '0') : 0;
    if (hours > 14 || minutes > 59) {
        return std::nullopt;
    }
    return sign * (hours * 60 + minutes);
}

} // namespace

std::string format_time(std::int64_t epoch_seconds, int offset_minutes) {
    const auto local = epoch_seconds + offset_minutes * k_seconds_per_minute;
    auto text = format_iso_ms(local * k_ms_per_second).substr(0, 19);
    const int magnitude = std::abs(offset_minutes);
    text += offset_minutes < 0 ? '-' : '+';
    text += static_cast<char>('0' + magnitude / 600);
    text += static_cast<char>('0' + magnitude / 60 % 10);
    text += ':';
    text += static_cast<char>('0' + magnitude % 60 / 10);
    text += static_cast<char>('0' + magnitude % 10);
    return text;
}

std::optional<std::int64_t> parse_time(std::string_view text, int default_offset_minutes) {
    std::string value(text);
    if (value.size() > k_date_length && value[k_date_length] == ' ') {
        value[k_date_length] = 'T';
    }
    int offset = default_offset_minutes;
    if (!value.empty() && (value.back() == 'Z' || value.back() == 'z')) {
        offset = 0;
        value.pop_back();
    } else if (value.size() > k_date_length) {
        // A sign after the date part starts the zone; the date's own '-' come before it.
        const auto sign = value.find_first_of("+-", k_date_length);
        if (sign != std::string::npos) {
            const auto parsed = parse_offset(std::string_view(value).substr(sign));
            if (!parsed) {
                return std::nullopt;
            }
            offset = *parsed;
            value.resize(sign);
        }
    }
    if (value.find_first_of(" zZ") != std::string::npos) {
        return std::nullopt;
    }
    const auto ms = parse_api_time(value);
    if (!ms) {
        return std::nullopt;
    }
    return floor_div(*ms, k_ms_per_second) - offset * k_seconds_per_minute;
}

} // namespace crmsync::fakes::bitrix24
