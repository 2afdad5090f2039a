#include "lib/notify/episodes.hpp"

#include "lib/util/redact.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>

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

std::string text_column(SQLite::Statement& st, int index) {
    const auto column = st.getColumn(index);
    return column.isNull() ? std::string() : column.getString();
}

Episode read_episode(SQLite::Statement& st) {
    Episode e;
    e.job = text_column(st, 0);
    e.command = text_column(st, 1);
    e.is_error = st.getColumn(2).getInt() != 0;
    e.error_since = text_column(st, 3);
    e.last_failure = text_column(st, 4);
    e.failures = st.getColumn(5).getInt64();
    e.last_error = text_column(st, 6);
    e.error_sent = split(text_column(st, 7));
    e.recovery_unsent = split(text_column(st, 8));
    return e;
}

constexpr const char* k_columns = "job, command, is_error, error_since, last_failure, failures, "
                                  "last_error, error_sent, recovery_unsent";

} // namespace

std::optional<Episode> EpisodeStore::get(const std::string& job) {
    SQLite::Statement st(m_store.db(),
                         std::string("SELECT ") + k_columns + " FROM episodes WHERE job = ?");
    st.bind(1, job);
    if (st.executeStep()) {
        return read_episode(st);
    }
    return std::nullopt;
}

std::vector<Episode> EpisodeStore::list() {
    SQLite::Statement st(m_store.db(),
                         std::string("SELECT ") + k_columns + " FROM episodes ORDER BY job");
    std::vector<Episode> out;
    while (st.executeStep()) {
        out.push_back(read_episode(st));
    }
    return out;
}

void EpisodeStore::put(const Episode& e) {
    SQLite::Statement st(
        m_store.db(),
        "INSERT INTO episodes (job, command, is_error, error_since, last_failure, failures, "
        "last_error, error_sent, recovery_unsent, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?) ON CONFLICT (job) DO UPDATE SET command = excluded.command, is_error = "
        "excluded.is_error, error_since = excluded.error_since, last_failure = "
        "excluded.last_failure, failures = excluded.failures, last_error = excluded.last_error, "
        "error_sent = excluded.error_sent, recovery_unsent = excluded.recovery_unsent, "
        "updated_at = excluded.updated_at");
    st.bind(1, e.job);
    st.bind(2, e.command);
    st.bind(3, e.is_error ? 1 : 0);
    if (e.error_since.empty()) {
        st.bind(4);
    } else {
        st.bind(4, e.error_since);
    }
    if (e.last_failure.empty()) {
        st.bind(5);
    } else {
        st.bind(5, e.last_failure);
    }
    st.bind(6, static_cast<std::int64_t>(e.failures));
    // The state file is private, but its error texts still go through redaction: they are
    // shown by `status` and sent in notices.
    st.bind(7, util::redact(e.last_error.substr(0, k_error_text)));
    st.bind(8, join(e.error_sent));
    st.bind(9, join(e.recovery_unsent));
    st.bind(10, util::format_iso8601(Clock::real().wall_now()));
    st.exec();
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
