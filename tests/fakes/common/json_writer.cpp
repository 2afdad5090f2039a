#include "tests/fakes/common/json_writer.hpp"

#include <array>
#include <cmath>
#include <cstdio>

namespace crmsync::fakes {

void JsonWriter::before_value() {
    if (m_after_key) {
        m_after_key = false;
        return;
    }
    if (!m_first_in_level.empty()) {
        if (!m_first_in_level.back()) {
            m_out += ',';
        }
        m_first_in_level.back() = false;
    }
}

JsonWriter& JsonWriter::begin_object() {
    before_value();
    m_out += '{';
    m_first_in_level.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::end_object() {
    m_out += '}';
    m_first_in_level.pop_back();
    return *this;
}

JsonWriter& JsonWriter::begin_array() {
    before_value();
    m_out += '[';
    m_first_in_level.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::end_array() {
    m_out += ']';
    m_first_in_level.pop_back();
    return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
    str(name);
    m_out += ':';
    m_after_key = true;
    return *this;
}

JsonWriter& JsonWriter::str(std::string_view text) {
    before_value();
    m_out += '"';
    std::size_t run = 0; // Start of the pending run of bytes that need no escaping.
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        m_out.append(text.substr(run, i - run));
        run = i + 1;
        switch (c) {
        case '"':
            m_out += "\\\"";
            break;
        case '\\':
            m_out += "\\\\";
            break;
        case '\n':
            m_out += "\\n";
            break;
        case '\r':
            m_out += "\\r";
            break;
        case '\t':
            m_out += "\\t";
            break;
        case '\b':
            m_out += "\\b";
            break;
        case '\f':
            m_out += "\\f";
            break;
        default: {
            std::array<char, 8> buf{};
            std::snprintf(buf.data(), buf.size(), "\\u%04x", c);
            m_out += buf.data();
        }
        }
    }
    m_out.append(text.substr(run));
    m_out += '"';
    return *this;
}

JsonWriter& JsonWriter::str_or_null(const std::optional<std::string>& text) {
    return text ? str(*text) : null();
}

JsonWriter& JsonWriter::integer(std::int64_t number) {
    before_value();
    m_out += std::to_string(number);
    return *this;
}

JsonWriter& JsonWriter::decimal(double number, int places) {
    before_value();
    // Fixed point by hand: snprintf("%.3f") dominated the E3 profile.
    std::int64_t scale = 1;
    for (int i = 0; i < places; ++i) {
        scale *= 10;
    }
    const double scaled = std::round(std::fabs(number) * static_cast<double>(scale));
    if (!std::isfinite(number) || scaled >= 9.0e18) {
        std::array<char, 64> buf{};
        std::snprintf(buf.data(), buf.size(), "%.*g", 17, std::isfinite(number) ? number : 0.0);
        m_out += buf.data();
        return *this;
    }
    const auto fixed = static_cast<std::int64_t>(scaled);
    if (number < 0 && fixed != 0) {
        m_out += '-';
    }
    m_out += std::to_string(fixed / scale);
    auto fraction = fixed % scale;
    if (fraction != 0) {
        std::string digits(static_cast<std::size_t>(places), '0');
        for (auto i = digits.size(); i-- > 0; fraction /= 10) {
            digits[i] = static_cast<char>('0' + fraction % 10);
        }
        while (digits.back() == '0') {
            digits.pop_back();
        }
        m_out += '.';
        m_out += digits;
    }
    return *this;
}

JsonWriter& JsonWriter::boolean(bool flag) {
    before_value();
    m_out += flag ? "true" : "false";
    return *this;
}

JsonWriter& JsonWriter::null() {
    before_value();
    m_out += "null";
    return *this;
}

JsonWriter& JsonWriter::raw(std::string_view json) {
    before_value();
    m_out += json;
    return *this;
}

} // namespace crmsync::fakes
