#include "lib/sql/database.hpp"

#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <fmt/format.h>
#include <soci/soci.h>

#include <ctime>

namespace crmsync::sql {
namespace {

constexpr std::size_t k_max_error_text = 600;

// Every statement runs once: on PostgreSQL a repeatable statement is a named prepared statement
// (prepare, execute and DEALLOCATE: three round trips where one does). MySQL, SQLite and ODBC
// prepare the same way either way.
constexpr auto k_run_once = soci::details::st_one_time_query;

Error database_error(const std::string& action, const std::exception& e) {
    return Error(ErrorKind::io,
                 fmt::format("database error while {}: {}", action, database_message(e)),
                 "check that the database is reachable and the user may create and alter "
                 "tables; nothing past the last committed batch was recorded");
}

std::string describe_sql(const std::string& sql) {
    const auto first_space = sql.find(' ');
    const auto second = sql.find(' ', first_space == std::string::npos ? 0 : first_space + 1);
    return "running " + sql.substr(0, std::min<std::size_t>(second, 60));
}

Value row_value(const soci::row& row, std::size_t i) {
    if (row.get_indicator(i) == soci::i_null) {
        return std::nullopt;
    }
    switch (row.get_properties(i).get_data_type()) {
    case soci::dt_string:
    case soci::dt_xml:
    case soci::dt_blob:
        return row.get<std::string>(i);
    case soci::dt_double:
        return fmt::format("{}", row.get<double>(i));
    case soci::dt_integer:
        return std::to_string(row.get<int>(i));
    case soci::dt_long_long:
        return std::to_string(row.get<long long>(i));
    case soci::dt_unsigned_long_long:
        return std::to_string(row.get<unsigned long long>(i));
    case soci::dt_date: {
        const std::tm tm = row.get<std::tm>(i);
        return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    }
    return std::nullopt;
}

void bind_all(soci::statement& st, const std::vector<Value>& params,
              std::vector<soci::indicator>& indicators) {
    static const std::string k_empty;
    indicators.resize(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
        indicators[i] = params[i] ? soci::i_ok : soci::i_null;
        st.exchange(soci::use(params[i] ? *params[i] : k_empty, indicators[i]));
    }
}

} // namespace

std::string database_message(const std::exception& e) {
    std::string message = e.what();
    // SOCI's context, appended last: the statement, then its values (see the declaration).
    if (const auto context = message.find(" while executing \""); context != std::string::npos) {
        message.resize(context);
    }
    message = util::redact(message);
    if (message.size() > k_max_error_text) {
        message = message.substr(0, k_max_error_text) + "...";
    }
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return message;
}

Database::Database(std::unique_ptr<Dialect> dialect, std::unique_ptr<soci::session> session,
                   std::string description)
    : m_dialect(std::move(dialect)), m_session(std::move(session)),
      m_description(std::move(description)) {
    for (const auto& statement : m_dialect->session_setup()) {
        execute(statement);
    }
}

Database::~Database() = default;

long Database::execute(const std::string& sql, const std::vector<Value>& params) {
    try {
        soci::statement st(*m_session);
        std::vector<soci::indicator> indicators;
        bind_all(st, params, indicators);
        st.alloc();
        st.prepare(sql, k_run_once);
        st.define_and_bind();
        st.execute(true);
        return static_cast<long>(st.get_affected_rows());
    } catch (const soci::soci_error& e) {
        if (const auto why = m_dialect->explain_failure(sql, e.what())) {
            throw Error(ErrorKind::io,
                        fmt::format("database error while {}: {}", describe_sql(sql), why->message),
                        why->hint);
        }
        throw database_error(describe_sql(sql), e);
    } catch (const std::runtime_error& e) {
        throw database_error(describe_sql(sql), e);
    }
}

bool Database::holds_rows(const Table& table) {
    const auto rows = query(dialect().holds_rows_query(table));
    return !rows.empty() && !rows[0].empty() && rows[0][0] == std::optional<std::string>("1");
}

std::vector<Row> Database::query(const std::string& sql, const std::vector<Value>& params) {
    try {
        soci::row row;
        soci::statement st(*m_session);
        std::vector<soci::indicator> indicators;
        bind_all(st, params, indicators);
        st.exchange(soci::into(row));
        st.alloc();
        st.prepare(sql, k_run_once);
        st.define_and_bind();
        std::vector<Row> rows;
        if (st.execute(true)) {
            do {
                Row out;
                out.reserve(row.size());
                for (std::size_t i = 0; i < row.size(); ++i) {
                    out.push_back(row_value(row, i));
                }
                rows.push_back(std::move(out));
            } while (st.fetch());
        }
        return rows;
    } catch (const soci::soci_error& e) {
        throw database_error(describe_sql(sql), e);
    } catch (const std::runtime_error& e) {
        throw database_error(describe_sql(sql), e);
    }
}

void Database::begin() {
    transaction_boundary();
    try {
        m_session->begin();
    } catch (const soci::soci_error& e) {
        throw database_error("starting a transaction", e);
    }
}

void Database::commit(CommitWait wait) {
    transaction_boundary();
    if (commit_own(wait)) {
        return;
    }
    try {
        m_session->commit();
    } catch (const soci::soci_error& e) {
        throw database_error("committing a transaction", e);
    }
}

void Database::rollback() noexcept {
    transaction_boundary();
    try {
        m_session->rollback();
    } catch (...) {
        // The connection is likely gone; the server rolls back on its own.
    }
}

bool Database::try_lock(const std::string& job_key) {
    const auto sql = m_dialect->try_lock_query();
    if (!sql) {
        return true;
    }
    const auto rows = query(*sql, {m_dialect->lock_parameter(job_key)});
    return !rows.empty() && !rows[0].empty() && rows[0][0] &&
           (*rows[0][0] == "1" || *rows[0][0] == "t" || *rows[0][0] == "true");
}

} // namespace crmsync::sql
