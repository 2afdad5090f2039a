#include "lib/rest/changed_since.hpp"

#include "lib/core/error.hpp"
#include "lib/util/time.hpp"

#include <charconv>
#include <cmath>

namespace crmsync::rest {
namespace {

using std::chrono::milliseconds;

SystemTime from_ms(long long ms) { return SystemTime(milliseconds(ms)); }

long long to_ms(SystemTime t) { return t.time_since_epoch().count(); }

std::optional<long long> integer_text(const std::string& text) {
    long long n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return n;
}

// Floors to whole seconds toward the past, also before 1970.
long long floor_div(long long a, long long b) { return a / b - ((a % b != 0) && (a < 0)); }

} // namespace

nlohmann::json Position::to_json() const { return {{"changed", to_ms(changed)}, {"id", id}}; }

std::optional<Position> Position::from_json(const nlohmann::json& doc) {
    if (!doc.is_object()) {
        return std::nullopt;
    }
    const auto changed = doc.find("changed");
    if (changed == doc.end() || !changed->is_number_integer()) {
        return std::nullopt;
    }
    const auto id = doc.find("id");
    return Position{from_ms(changed->get<long long>()), id == doc.end() ? nullptr : *id};
}

bool operator<(const Position& a, const Position& b) {
    if (a.changed != b.changed) {
        return a.changed < b.changed;
    }
    if (a.id.is_number() && b.id.is_number()) {
        if (a.id.is_number_float() || b.id.is_number_float()) {
            return a.id.get<double>() < b.id.get<double>();
        }
        if (a.id.is_number_unsigned() && b.id.is_number_unsigned()) {
            return a.id.get<unsigned long long>() < b.id.get<unsigned long long>();
        }
        return a.id.get<long long>() < b.id.get<long long>();
    }
    // null (no id) sorts first: any record at that time is at or after it.
    if (a.id.is_null() || b.id.is_null()) {
        return a.id.is_null() && !b.id.is_null();
    }
    return param_text(a.id) < param_text(b.id);
}

ChangeWindow::ChangeWindow(ChangedSince spec, std::optional<Position> stored, SystemTime run_start)
    : m_spec(std::move(spec)), m_stored(std::move(stored)), m_to(run_start - m_spec.settle),
      m_reached(m_stored) {
    try {
        m_field = nlohmann::json::json_pointer(m_spec.field_pointer);
        if (!m_spec.id_pointer.empty()) {
            m_id = nlohmann::json::json_pointer(m_spec.id_pointer);
        }
    } catch (const nlohmann::json::exception&) {
        throw Error(ErrorKind::internal, "a malformed JSON pointer in a changed-since spec: " +
                                             m_spec.field_pointer + " " + m_spec.id_pointer);
    }
    if (m_stored) {
        m_from = m_stored->changed - m_spec.lookback;
    } else if (m_spec.since) {
        m_from = m_spec.since;
    }
}

void ChangeWindow::add_params(PageRequest& request) const {
    if (m_from && !m_spec.from_param.empty()) {
        request.set_param(m_spec.from_param, format_time(*m_from, m_spec.format));
    }
    if (!m_spec.to_param.empty()) {
        request.set_param(m_spec.to_param, format_time(m_to, m_spec.format));
    }
    // With a lookback the window starts before the stored record, so no id may cut it short.
    if (m_stored && m_spec.lookback.count() == 0 && !m_spec.after_id_param.empty() &&
        !m_stored->id.is_null()) {
        request.set_param(m_spec.after_id_param, param_text(m_stored->id));
    }
}

bool ChangeWindow::see(const nlohmann::json& record) {
    if (!record.is_object()) {
        return false;
    }
    if (!record.contains(m_field)) {
        return false;
    }
    const auto changed = parse_time(record.at(m_field), m_spec.format);
    if (!changed) {
        return false;
    }
    Position seen{*changed, nullptr};
    if (m_id && record.contains(*m_id)) {
        seen.id = record.at(*m_id);
    }
    if (!m_reached || *m_reached < seen) {
        m_reached = std::move(seen);
    }
    return true;
}

std::string format_time(SystemTime t, TimeFormat format) {
    switch (format) {
    case TimeFormat::epoch_ms:
        return std::to_string(to_ms(t));
    case TimeFormat::epoch_seconds:
        return std::to_string(floor_div(to_ms(t), 1000));
    case TimeFormat::iso8601:
        return util::format_iso8601(t);
    case TimeFormat::date:
        return util::format_date(t);
    }
    return {};
}

std::optional<SystemTime> parse_time(const nlohmann::json& value, TimeFormat format) {
    switch (format) {
    case TimeFormat::epoch_ms:
    case TimeFormat::epoch_seconds: {
        const long long scale = format == TimeFormat::epoch_ms ? 1 : 1000;
        if (value.is_number_integer()) {
            return from_ms(value.get<long long>() * scale);
        }
        if (value.is_number_float()) {
            const double ms = std::floor(value.get<double>() * static_cast<double>(scale));
            // Beyond ±9e18 ms the cast would be undefined; no API writes such times.
            if (!std::isfinite(ms) || std::fabs(ms) > 9e18) {
                return std::nullopt;
            }
            return from_ms(static_cast<long long>(ms));
        }
        if (value.is_string()) {
            if (const auto n = integer_text(value.get<std::string>())) {
                return from_ms(*n * scale);
            }
        }
        return std::nullopt;
    }
    case TimeFormat::iso8601:
    case TimeFormat::date:
        if (value.is_string()) {
            return util::parse_iso8601(value.get<std::string>());
        }
        return std::nullopt;
    }
    return std::nullopt;
}

} // namespace crmsync::rest
