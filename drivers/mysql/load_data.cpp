#include "drivers/mysql/load_data.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/hash.hpp"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace crmsync::drivers::mysql {
namespace {

// Rows are encoded this many bytes ahead of what the client library asks for.
constexpr std::size_t k_encode_chunk = 256 * 1024;

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

void append_load_data_row(std::string& out, const std::vector<const sql::Value*>& row) {
    for (std::size_t i = 0; i < row.size(); ++i) {
        if (i > 0) {
            out += '\t';
        }
        const sql::Value& value = *row[i];
        if (!value) {
            out += "\\N";
            continue;
        }
        for (const char c : *value) {
            switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\0':
                out += "\\0";
                break;
            default:
                out += c;
            }
        }
    }
    out += '\n';
}

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
                append_load_data_row(stream->m_pending, rows[stream->m_next_row++]);
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

std::optional<sql::Database::BulkResult>
load_data_upsert(sql::Database& db, MYSQL* connection, RowStream& stream, const sql::Table& table,
                 const std::vector<const sql::Column*>& columns,
                 const std::vector<std::vector<const sql::Value*>>& rows) {
    const sql::Dialect& dialect = db.dialect();
    const std::string stage_name = "crmsync_stage_" + util::md5_hex(table.name).substr(0, 12);
    const std::string stage = dialect.quote(stage_name);
    const std::string target = dialect.quote(table.name);
    std::string names;
    for (const auto* c : columns) {
        names += (names.empty() ? "" : ", ") + dialect.quote(c->name);
    }
    // TEMPORARY: private to the session and, unlike other DDL, no implicit commit. Created
    // afresh so it always has the target's current columns and types.
    db.execute("DROP TEMPORARY TABLE IF EXISTS " + stage);
    db.execute("CREATE TEMPORARY TABLE " + stage + " ENGINE=InnoDB AS SELECT " + names + " FROM " +
               target + " LIMIT 0");

    // REPLACE keeps strict mode in force (LOCAL alone implies IGNORE); the stage is empty, so
    // nothing is replaced.
    const std::string load = std::string("LOAD DATA LOCAL INFILE '") + RowStream::k_file_name +
                             "' REPLACE INTO TABLE " + stage +
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
                       mysql_error(connection), rows.size(), table.name);
            db.execute("DROP TEMPORARY TABLE IF EXISTS " + stage);
            return std::nullopt;
        }
        throw;
    }
    stream.disarm();
    check_no_warnings(db, connection, table.name);
    if (loaded != static_cast<long>(rows.size())) {
        throw Error(ErrorKind::io,
                    "database error while loading rows of " + table.name + ": the server read " +
                        std::to_string(loaded) + " of " + std::to_string(rows.size()) + " rows",
                    "nothing past the last committed batch was recorded");
    }

    const std::string key = dialect.quote(table.key());
    const auto existing = db.query("SELECT COUNT(*) FROM " + stage + " s JOIN " + target +
                                   " t ON t." + key + " = s." + key);
    sql::Database::BulkResult result;
    result.existing = std::atol(existing.at(0).at(0).value_or("0").c_str());
    const auto upsert = dialect.upsert_from_table(table, columns, stage_name);
    if (!upsert) {
        throw Error(ErrorKind::internal, "the dialect has no upsert from a staging table");
    }
    result.affected = db.execute(*upsert);
    return result;
}

} // namespace crmsync::drivers::mysql
