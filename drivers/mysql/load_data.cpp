#include "drivers/mysql/load_data.hpp"

#include "drivers/mysql/dialect.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/tab_text.hpp"
#include "lib/util/hash.hpp"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <cstring>

namespace crmsync::drivers::mysql {
namespace {

// Rows are encoded this many bytes ahead of what the client library asks for: small, so the
// server reads the first rows of a table while the rest are encoded (as k_copy_chunk for
// PostgreSQL).
constexpr std::size_t k_encode_chunk = 16 * 1024;

// MySQL 8's "Loading local data is disabled" (not in MariaDB's headers).
constexpr unsigned k_er_client_local_files_disabled = 3948;

bool refused_local_infile(MYSQL* connection) {
    const unsigned code = mysql_errno(connection);
    if (code == ER_NOT_ALLOWED_COMMAND || code == ER_LOAD_INFILE_CAPABILITY_DISABLED ||
        code == k_er_client_local_files_disabled) {
        return true;
    }
    // The client library refuses on its own when the connection lacks CLIENT_LOCAL_FILES.
    const char* message = mysql_error(connection);
    return code == CR_UNKNOWN_ERROR && message != nullptr &&
           std::strstr(message, "local infile forbidden") != nullptr;
}

// Strict mode turns a value the column cannot hold into an error only without IGNORE, which
// LOCAL implies unless REPLACE is given; a warning that still slips through fails the load
// rather than storing something else than was sent.
void check_no_warnings(sql::Database& db, MYSQL* connection, const std::string& table) {
    if (mysql_warning_count(connection) == 0) {
        return;
    }
    for (const auto& warning : db.query("SHOW WARNINGS")) {
        if (warning.size() >= 3 && warning[0] && *warning[0] != "Note") {
            throw Error(ErrorKind::io,
                        "database error while loading rows of " + table + ": " +
                            warning[2].value_or("?"),
                        "nothing past the last committed batch was recorded");
        }
    }
}

} // namespace

void RowStream::install(MYSQL* connection) {
    mysql_set_local_infile_handler(connection, &RowStream::init, &RowStream::read, &RowStream::end,
                                   &RowStream::error, this);
}

void RowStream::arm(const std::vector<std::vector<const sql::Value*>>& rows) {
    m_rows = &rows;
    m_next_row = 0;
    m_pending.clear();
    m_pending_pos = 0;
    m_error.clear();
}

void RowStream::disarm() noexcept {
    m_rows = nullptr;
    m_pending.clear();
    m_pending.shrink_to_fit();
    m_pending_pos = 0;
}

int RowStream::init(void** handle, const char* file_name, void* self) {
    auto* stream = static_cast<RowStream*>(self);
    *handle = stream;
    if (stream->m_rows == nullptr || file_name == nullptr ||
        std::strcmp(file_name, k_file_name) != 0) {
        stream->m_error = "the server asked for a file crmsync does not send";
        return 1;
    }
    return 0;
}

int RowStream::read(void* handle, char* buffer, unsigned int length) {
    auto* stream = static_cast<RowStream*>(handle);
    unsigned int copied = 0;
    while (copied < length) {
        if (stream->m_pending_pos == stream->m_pending.size()) {
            const auto& rows = *stream->m_rows;
            if (stream->m_next_row == rows.size()) {
                break;
            }
            stream->m_pending.clear();
            stream->m_pending_pos = 0;
            while (stream->m_next_row < rows.size() && stream->m_pending.size() < k_encode_chunk) {
                sql::append_tab_text_row(stream->m_pending, rows[stream->m_next_row++],
                                         sql::TabTextNul::escaped);
            }
        }
        const std::size_t n = std::min<std::size_t>(length - copied, stream->m_pending.size() -
                                                                         stream->m_pending_pos);
        std::memcpy(buffer + copied, stream->m_pending.data() + stream->m_pending_pos, n);
        stream->m_pending_pos += n;
        copied += static_cast<unsigned int>(n);
    }
    return static_cast<int>(copied);
}

void RowStream::end(void* handle) { (void)handle; }

int RowStream::error(void* handle, char* message, unsigned int length) {
    const auto* stream = static_cast<const RowStream*>(handle);
    const std::string& text = stream == nullptr ? std::string() : stream->m_error;
    if (length > 0) {
        const std::size_t n = std::min<std::size_t>(text.size(), length - 1);
        std::memcpy(message, text.data(), n);
        message[n] = '\0';
    }
    return CR_UNKNOWN_ERROR;
}

namespace {

// Keys per query when counting the keys of a batch already stored.
constexpr std::size_t k_keys_per_query = 1000;

// LOAD DATA LOCAL INFILE of `rows` into `into` (quoted): the rows the server counts, nullopt,
// having loaded nothing, when LOCAL INFILE is refused; throws on any other failure. REPLACE
// keeps strict mode in force (LOCAL alone implies IGNORE, which turns a value the column cannot
// hold into a silent truncation); a row it replaces counts twice, so a count above rows.size()
// says that keys were not new.
std::optional<long> load_rows_counted(sql::Database& db, MYSQL* connection, RowStream& stream,
                                      const std::string& into, const std::string& names,
                                      const std::string& table,
                                      const std::vector<std::vector<const sql::Value*>>& rows) {
    const std::string load = std::string("LOAD DATA LOCAL INFILE '") + RowStream::k_file_name +
                             "' REPLACE INTO TABLE " + into +
                             " CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
                             "LINES TERMINATED BY '\\n' (" +
                             names + ")";
    long loaded = 0;
    stream.arm(rows);
    try {
        loaded = db.execute(load);
    } catch (const Error&) {
        stream.disarm();
        if (refused_local_infile(connection)) {
            log::debug("mysql: the server refuses LOAD DATA LOCAL INFILE ({}); writing {} rows of "
                       "{} with multi-row statements",
                       mysql_error(connection), rows.size(), table);
            return std::nullopt;
        }
        throw;
    }
    stream.disarm();
    check_no_warnings(db, connection, table);
    return loaded;
}

// A load of rows whose keys were all new that the server did not count as exactly those rows.
// More means REPLACE deleted rows of other keys: a unique index besides the key's (or a key
// collation that takes two keys for one) matched them. The caller's rollback restores them.
Error rows_not_taken_as_sent(const sql::Dialect& dialect, const sql::Table& table, long loaded,
                             std::size_t sent) {
    const std::string counted =
        "the server took " + std::to_string(loaded) + " rows for " + std::to_string(sent) + " sent";
    if (loaded <= static_cast<long>(sent)) {
        return Error(ErrorKind::io,
                     "database error while loading rows of " + table.name + ": " + counted,
                     "nothing past the last committed batch was recorded");
    }
    auto why = other_record_met(dialect.quote(table.name), dialect.quote(table.key()),
                                counted + ": rows with new keys met stored rows, or each other");
    return Error(ErrorKind::io,
                 "database error while loading rows of " + table.name + ": " + why.message,
                 std::move(why.hint));
}

// load_rows_counted for rows whose keys are all new: throws when the server took other than
// exactly the rows sent. False when LOCAL INFILE is refused.
bool load_rows(sql::Database& db, MYSQL* connection, RowStream& stream, const std::string& into,
               const std::string& names, const sql::Table& table,
               const std::vector<std::vector<const sql::Value*>>& rows) {
    const auto loaded = load_rows_counted(db, connection, stream, into, names, table.name, rows);
    if (!loaded) {
        return false;
    }
    if (*loaded != static_cast<long>(rows.size())) {
        throw rows_not_taken_as_sent(db.dialect(), table, *loaded, rows.size());
    }
    return true;
}

// How many of the batch's keys the target holds already.
long count_stored_keys(sql::Database& db, const sql::Table& table, std::size_t key_pos,
                       const std::vector<std::vector<const sql::Value*>>& rows) {
    const std::vector<std::string> key_column{table.key()};
    long stored = 0;
    for (std::size_t start = 0; start < rows.size(); start += k_keys_per_query) {
        const std::size_t n = std::min(k_keys_per_query, rows.size() - start);
        std::vector<sql::Value> keys;
        keys.reserve(n);
        for (std::size_t r = start; r < start + n; ++r) {
            keys.push_back(*rows[r][key_pos]);
        }
        stored += static_cast<long>(
            db.query(db.dialect().select_by_keys(table, key_column, n), keys).size());
    }
    return stored;
}

} // namespace

std::optional<sql::Database::BulkResult>
load_data_upsert(sql::Database& db, MYSQL* connection, RowStream& stream, const sql::Table& table,
                 const std::vector<const sql::Column*>& columns,
                 const std::vector<std::vector<const sql::Value*>>& rows,
                 DirectLoadTables* direct) {
    const sql::Dialect& dialect = db.dialect();
    const std::string target = dialect.quote(table.name);
    std::string names;
    std::size_t key_pos = columns.size();
    for (std::size_t i = 0; i < columns.size(); ++i) {
        names += (names.empty() ? "" : ", ") + dialect.quote(columns[i]->name);
        if (columns[i]->name == table.key()) {
            key_pos = i;
        }
    }
    if (key_pos == columns.size()) {
        throw Error(ErrorKind::internal, "table " + table.name + " has no bound key column");
    }

    // A table that was empty when this connection first wrote to it (a first load): load
    // straight into it without asking which keys it holds. A key it holds after all (a contact
    // listed twice, another writer) shows in the count (REPLACE counts it twice): the load is
    // undone and the table takes the paths below from then on.
    if (direct != nullptr) {
        auto [allowed, first_time] = direct->try_emplace(table.name, false);
        if (first_time) {
            allowed->second = !db.holds_rows(table);
        }
        if (allowed->second) {
            // Never released: a SAVEPOINT of a name already set replaces it, and the COMMIT
            // ends it, so a round trip per table and batch is saved. A later table's ROLLBACK
            // TO then undoes only that table's load.
            db.execute("SAVEPOINT crmsync_direct_load");
            const auto loaded =
                load_rows_counted(db, connection, stream, target, names, table.name, rows);
            if (loaded && *loaded == static_cast<long>(rows.size())) {
                return sql::Database::BulkResult{0, *loaded};
            }
            db.execute("ROLLBACK TO SAVEPOINT crmsync_direct_load");
            if (!loaded) {
                return std::nullopt; // LOCAL INFILE refused: nothing was loaded
            }
            allowed->second = false;
            log::debug("{} already holds some of the keys loaded; counting stored keys from now on",
                       table.name);
        }
    }

    // Only new keys: straight into the target, as an insert. The transaction holds the job's
    // rows; a key another session adds meanwhile makes the load fail (see load_rows), never a
    // wrong count.
    const long stored = count_stored_keys(db, table, key_pos, rows);
    if (stored == 0) {
        if (!load_rows(db, connection, stream, target, names, table, rows)) {
            return std::nullopt;
        }
        return sql::Database::BulkResult{0, static_cast<long>(rows.size())};
    }

    // TEMPORARY: private to the session and, unlike other DDL, no implicit commit. Created
    // afresh so it always has the target's current columns and types.
    const std::string stage_name = "crmsync_stage_" + util::md5_hex(table.name).substr(0, 12);
    const std::string stage = dialect.quote(stage_name);
    db.execute("DROP TEMPORARY TABLE IF EXISTS " + stage);
    db.execute("CREATE TEMPORARY TABLE " + stage + " ENGINE=InnoDB AS SELECT " + names + " FROM " +
               target + " LIMIT 0");
    if (!load_rows(db, connection, stream, stage, names, table, rows)) {
        db.execute("DROP TEMPORARY TABLE IF EXISTS " + stage);
        return std::nullopt;
    }
    sql::Database::BulkResult result;
    result.existing = stored;
    const auto upsert = dialect.upsert_from_table(table, columns, stage_name);
    if (!upsert) {
        throw Error(ErrorKind::internal, "the dialect has no upsert from a staging table");
    }
    result.affected = db.execute(*upsert);
    return result;
}

} // namespace crmsync::drivers::mysql
