#pragma once

#include "lib/core/clock.hpp"
#include "lib/rest/paging.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace crmsync::rest {

// How an API writes times in its parameters and records. `date` is the UTC day: as a lower bound
// it is floored (re-reads part of a day, skips nothing); an API's date upper bound is usually
// inclusive, so leave `to_param` empty with it.
enum class TimeFormat { epoch_ms, epoch_seconds, iso8601, date };

// An incremental stream: only records changed since the last run, re-reading `lookback` before
// the stored position (clock skew, late commits; upserts make the overlap harmless), up to an
// upper bound frozen when the run starts, so records changed during the run wait for the next
// one instead of moving under the pages being read.
struct ChangedSince {
    std::string field_pointer = "/updatedAt"; // the record's change time
    std::string id_pointer;                   // tie-break among equal times ("/_id"); may be empty
    TimeFormat format = TimeFormat::epoch_ms;
    std::string from_param;     // inclusive lower bound ("updatedFrom"); empty: not sent
    std::string to_param;       // exclusive upper bound ("updatedTo"); empty: not sent
    std::string after_id_param; // "afterId": sent with the stored id, only when lookback is zero
    std::chrono::milliseconds lookback{std::chrono::minutes(5)};
    std::chrono::milliseconds settle{std::chrono::seconds(30)}; // upper bound = run start - this
    std::optional<SystemTime> since; // a first run's lower bound (--since); nullopt: everything
};

// How far a stream has read: the newest change time among its fetched records, and the id of
// the record that holds it (the largest, when several do). Stored in the source's checkpoint.
struct Position {
    SystemTime changed;
    nlohmann::json id; // null when the stream has no tie-break

    nlohmann::json to_json() const; // {"changed": <ms epoch>, "id": ...}
    // nullopt when `doc` is not what to_json() writes.
    static std::optional<Position> from_json(const nlohmann::json& doc);
};

// Ordered by time, then id (numbers by value, anything else by its text).
bool operator<(const Position& a, const Position& b);

// One run's window over one stream, and the position its records reach.
class ChangeWindow {
public:
    // Throws Error(internal) for a malformed pointer in `spec`.
    ChangeWindow(ChangedSince spec, std::optional<Position> stored, SystemTime run_start);

    std::optional<SystemTime> from() const { return m_from; }
    SystemTime to() const { return m_to; }
    // true when the window holds no time at all (a stored position ahead of the upper bound):
    // nothing to ask for in this run.
    bool empty() const { return m_from && *m_from >= m_to; }

    // Sets the window's parameters on the stream's first request.
    void add_params(PageRequest& request) const;

    // Folds one fetched record into reached(). false when its change time is missing or
    // unreadable: the record is still handed on, but cannot move the position.
    bool see(const nlohmann::json& record);

    // The larger of the stored position and the newest record seen; nullopt when neither exists.
    const std::optional<Position>& reached() const { return m_reached; }

private:
    ChangedSince m_spec;
    nlohmann::json::json_pointer m_field;
    std::optional<nlohmann::json::json_pointer> m_id;
    std::optional<Position> m_stored;
    std::optional<SystemTime> m_from;
    SystemTime m_to;
    std::optional<Position> m_reached;
};

std::string format_time(SystemTime t, TimeFormat format);
// nullopt for a value that is not a time in `format` (never guesses another format).
std::optional<SystemTime> parse_time(const nlohmann::json& value, TimeFormat format);

} // namespace crmsync::rest
