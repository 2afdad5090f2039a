#pragma once

#include "lib/core/clock.hpp"
#include "lib/notify/notifier.hpp"
#include "lib/state/state_store.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::notify {

// A job's error episode, one row of the state file's `episodes` table (the seed's isError /
// errorTime / isSendEmail, per channel so that a channel that was down is tried again).
struct Episode {
    std::string job;
    std::string command;
    bool is_error = false;
    std::string error_since;  // ISO-8601 time of the episode's first failure
    std::string last_failure; // ISO-8601 time of its latest failure
    long failures = 0;        // failed runs in the episode
    std::string last_error;
    std::vector<Channel> error_sent;      // channels that took the episode's error notice
    std::vector<Channel> recovery_unsent; // channels still owed the recovered notice
};

class EpisodeStore {
public:
    explicit EpisodeStore(state::StateStore& store) : m_store(store) {}
    std::optional<Episode> get(const std::string& job);
    void put(const Episode& episode);
    std::vector<Episode> list();

private:
    state::StateStore& m_store;
};

struct RunOutcome {
    std::string command; // "db_sync"
    std::string job;     // the job's key: one episode per job
    bool ok = true;
    std::string error; // when !ok
    std::string host;  // empty: this machine's name
    SystemTime at = Clock::real().wall_now();
};

using SendFunction = std::function<SendResult(const Notice&, Channel)>;

struct OutcomeReport {
    std::vector<std::pair<Channel, Notice::Kind>> sent;
    std::vector<std::string> failures; // "smtp: why", one per notice that could not be sent
};

// Records a run's outcome in its job's episode and sends what that calls for:
//  - a failure that starts an episode sends one "error" notice to each channel; a later
//    failure of the same episode sends nothing, except to channels that have not taken the
//    error notice yet (they were down);
//  - the first success after an episode sends one "recovered" notice to each channel;
//    channels that could not take it are tried again by the next successful runs, until a
//    new episode starts;
//  - a success outside an episode sends nothing.
// The episode is written after sending: a run killed in between may send a notice twice,
// never lose one. Throws only what the state file throws (Error(io)), never for sending.
OutcomeReport record_outcome(state::StateStore& store, const std::vector<Channel>& channels,
                             const SendFunction& send, const RunOutcome& outcome);

} // namespace crmsync::notify
