#include "lib/notify/episodes.hpp"

#include "lib/state/episodes.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"

#include <algorithm>

namespace crmsync::notify {
namespace {

constexpr std::size_t k_error_text = 2000;

std::string join(const std::vector<Channel>& channels) {
    std::string out;
    for (const auto c : channels) {
        out += (out.empty() ? "" : ",") + std::string(to_string(c));
    }
    return out;
}

std::vector<Channel> split(const std::string& text) {
    std::vector<Channel> out;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find(',', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        const std::string name = text.substr(start, end - start);
        if (name == "smtp") {
            out.push_back(Channel::smtp);
        } else if (name == "url") {
            out.push_back(Channel::url);
        }
        start = end + 1;
    }
    return out;
}

bool contains(const std::vector<Channel>& channels, Channel c) {
    return std::find(channels.begin(), channels.end(), c) != channels.end();
}

Episode from_row(state::EpisodeRow row) {
    Episode e;
    e.job = std::move(row.job);
    e.command = std::move(row.command);
    e.is_error = row.is_error;
    e.error_since = std::move(row.error_since);
    e.last_failure = std::move(row.last_failure);
    e.failures = row.failures;
    e.last_error = std::move(row.last_error);
    e.error_sent = split(row.error_sent);
    e.recovery_unsent = split(row.recovery_unsent);
    return e;
}

} // namespace

std::optional<Episode> EpisodeStore::get(const std::string& job) {
    auto row = state::EpisodeTable(m_store).get(job);
    if (!row) {
        return std::nullopt;
    }
    return from_row(std::move(*row));
}

std::vector<Episode> EpisodeStore::list() {
    std::vector<Episode> out;
    for (auto& row : state::EpisodeTable(m_store).list()) {
        out.push_back(from_row(std::move(row)));
    }
    return out;
}

void EpisodeStore::put(const Episode& e) {
    state::EpisodeRow row;
    row.job = e.job;
    row.command = e.command;
    row.is_error = e.is_error;
    row.error_since = e.error_since;
    row.last_failure = e.last_failure;
    row.failures = e.failures;
    // The state file is private, but its error texts still go through redaction: they are
    // shown by `status` and sent in notices.
    row.last_error = util::redact(e.last_error.substr(0, k_error_text));
    row.error_sent = join(e.error_sent);
    row.recovery_unsent = join(e.recovery_unsent);
    state::EpisodeTable(m_store).put(row);
}

OutcomeReport record_outcome(state::StateStore& store, const std::vector<Channel>& channels,
                             const SendFunction& send, const RunOutcome& outcome) {
    EpisodeStore episodes(store);
    Episode e = episodes.get(outcome.job).value_or(Episode{});
    e.job = outcome.job;
    e.command = outcome.command;
    const std::string at = util::format_iso8601(outcome.at);
    OutcomeReport report;

    Notice notice;
    notice.command = outcome.command;
    notice.job = outcome.job;
    notice.host = outcome.host.empty() ? host_name() : outcome.host;
    notice.at = at;
    const auto deliver = [&](Channel channel) {
        const SendResult result = send(notice, channel);
        if (result.ok) {
            report.sent.emplace_back(channel, notice.kind);
        } else {
            report.failures.push_back(std::string(to_string(channel)) + ": " + result.error);
        }
        return result.ok;
    };

    if (!outcome.ok) {
        if (!e.is_error) {
            e.is_error = true;
            e.error_since = at;
            e.failures = 0;
            e.error_sent.clear();
            // A recovered notice still owed is moot: the job fails again.
            e.recovery_unsent.clear();
        }
        ++e.failures;
        e.last_failure = at;
        e.last_error = outcome.error;
        notice.kind = Notice::Kind::error;
        notice.error = outcome.error;
        notice.since = e.error_since;
        notice.failures = e.failures;
        for (const auto channel : channels) {
            if (!contains(e.error_sent, channel) && deliver(channel)) {
                e.error_sent.push_back(channel);
            }
        }
    } else {
        std::vector<Channel> owed;
        if (e.is_error) {
            e.is_error = false;
            owed = channels;
        } else {
            // Channels dropped from the command line since are owed nothing any more.
            for (const auto channel : e.recovery_unsent) {
                if (contains(channels, channel)) {
                    owed.push_back(channel);
                }
            }
        }
        notice.kind = Notice::Kind::recovered;
        notice.error = e.last_error;
        notice.since = e.error_since;
        notice.failures = e.failures;
        e.recovery_unsent.clear();
        for (const auto channel : owed) {
            if (!deliver(channel)) {
                e.recovery_unsent.push_back(channel);
            }
        }
    }
    episodes.put(e);
    return report;
}

} // namespace crmsync::notify
