#pragma once

#include "lib/state/state_store.hpp"

#include <optional>
#include <string>
#include <vector>

namespace crmsync::state {

// One row of the state file's `episodes` table: a job's error episode as lib/notify keeps it.
// Channels are stored as written ("smtp,url"); their meaning belongs to lib/notify.
struct EpisodeRow {
    std::string job;
    std::string command;
    bool is_error = false;
    std::string error_since;  // "" when unset
    std::string last_failure; // "" when unset
    long failures = 0;
    std::string last_error;
    std::string error_sent;
    std::string recovery_unsent;
};

// The episodes table. Writes join the caller's transaction if one is open.
class EpisodeTable {
public:
    explicit EpisodeTable(StateStore& store) : m_store(store) {}

    std::optional<EpisodeRow> get(const std::string& job);
    // Inserts or replaces the row of episode.job.
    void put(const EpisodeRow& episode);
    // Every row, by job.
    std::vector<EpisodeRow> list();

private:
    StateStore& m_store;
};

} // namespace crmsync::state
