#include "lib/state/episodes.hpp"

#include "lib/core/clock.hpp"
#include "lib/state/open_file.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>

namespace crmsync::state {
namespace {

constexpr const char* k_columns = "job, command, is_error, error_since, last_failure, failures, "
                                  "last_error, error_sent, recovery_unsent";

std::string text_column(SQLite::Statement& st, int index) {
    const auto column = st.getColumn(index);
    return column.isNull() ? std::string() : column.getString();
}

EpisodeRow read_row(SQLite::Statement& st) {
    EpisodeRow e;
    e.job = text_column(st, 0);
    e.command = text_column(st, 1);
    e.is_error = st.getColumn(2).getInt() != 0;
    e.error_since = text_column(st, 3);
    e.last_failure = text_column(st, 4);
    e.failures = st.getColumn(5).getInt64();
    e.last_error = text_column(st, 6);
    e.error_sent = text_column(st, 7);
    e.recovery_unsent = text_column(st, 8);
    return e;
}

void bind_or_null(SQLite::Statement& st, int index, const std::string& text) {
    if (text.empty()) {
        st.bind(index);
    } else {
        st.bind(index, text);
    }
}

} // namespace

std::optional<EpisodeRow> EpisodeTable::get(const std::string& job) {
    return detail::guarded(
        m_store, "cannot read an error episode", [&]() -> std::optional<EpisodeRow> {
            SQLite::Statement st(detail::connection(m_store), std::string("SELECT ") + k_columns +
                                                                  " FROM episodes WHERE job = ?");
            st.bind(1, job);
            if (st.executeStep()) {
                return read_row(st);
            }
            return std::nullopt;
        });
}

std::vector<EpisodeRow> EpisodeTable::list() {
    return detail::guarded(m_store, "cannot read the error episodes", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             std::string("SELECT ") + k_columns + " FROM episodes ORDER BY job");
        std::vector<EpisodeRow> out;
        while (st.executeStep()) {
            out.push_back(read_row(st));
        }
        return out;
    });
}

void EpisodeTable::put(const EpisodeRow& e) {
    detail::guarded(m_store, "cannot write an error episode", [&] {
        SQLite::Statement st(
            detail::connection(m_store),
            "INSERT INTO episodes (job, command, is_error, error_since, last_failure, failures, "
            "last_error, error_sent, recovery_unsent, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?) ON CONFLICT (job) DO UPDATE SET command = excluded.command, is_error = "
            "excluded.is_error, error_since = excluded.error_since, last_failure = "
            "excluded.last_failure, failures = excluded.failures, last_error = "
            "excluded.last_error, error_sent = excluded.error_sent, recovery_unsent = "
            "excluded.recovery_unsent, updated_at = excluded.updated_at");
        st.bind(1, e.job);
        st.bind(2, e.command);
        st.bind(3, e.is_error ? 1 : 0);
        bind_or_null(st, 4, e.error_since);
        bind_or_null(st, 5, e.last_failure);
        st.bind(6, static_cast<std::int64_t>(e.failures));
        st.bind(7, e.last_error);
        st.bind(8, e.error_sent);
        st.bind(9, e.recovery_unsent);
        st.bind(10, util::format_iso8601(Clock::real().wall_now()));
        st.exec();
    });
}

} // namespace crmsync::state
