#pragma once

#include "lib/sql/database.hpp"

#include <mysql.h>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace crmsync::drivers::mysql {

// Serves rows to the client library's LOCAL INFILE callbacks, encoding them as the server
// reads: no temp file and no copy of the whole batch. Installed on a connection for its whole
// life, so the server can never make the client read a file of its choosing: a request for
// any name but the one of the running load is refused.
class RowStream {
public:
    // The file name the LOAD DATA statement must give.
    static constexpr const char* k_file_name = "crmsync-rows";

    // Replaces the client library's file-reading handler on `connection` with this stream.
    // `this` must outlive the connection's use.
    void install(MYSQL* connection);

    // Serves `rows` to the next request until disarm(); they must stay alive until then.
    void arm(const std::vector<std::vector<const sql::Value*>>& rows);
    void disarm() noexcept;

private:
    static int init(void** handle, const char* file_name, void* self);
    static int read(void* handle, char* buffer, unsigned int length);
    static void end(void* handle);
    static int error(void* handle, char* message, unsigned int length);

    const std::vector<std::vector<const sql::Value*>>* m_rows = nullptr;
    std::size_t m_next_row = 0;
    std::string m_pending;
    std::size_t m_pending_pos = 0;
    std::string m_error;
};

// Per table of one connection: whether batches still go straight in without counting the
// stored keys first (see load_data_upsert). Filled on first use.
using DirectLoadTables = std::map<std::string, bool>;

// Upserts `rows` with LOAD DATA LOCAL INFILE fed from `stream`. When none of their keys is
// stored yet (a first load) they are loaded straight into the target; otherwise into a
// session-private staging table, then one INSERT ... SELECT ... ON DUPLICATE KEY UPDATE that
// leaves unchanged rows (and their change stamp) as they are. With `direct`, a table empty at
// its first batch takes its batches straight in without a query for their keys, under a
// savepoint that undoes a batch whose keys were not all new (then counted, as without it).
// Runs inside the caller's transaction; any failure throws crmsync::Error(io) and leaves the
// statement rolled back. Returns nullopt, having written nothing, when the server or client
// refuses LOCAL INFILE, so the caller can use multi-row statements.
std::optional<sql::Database::BulkResult>
load_data_upsert(sql::Database& db, MYSQL* connection, RowStream& stream, const sql::Table& table,
                 const std::vector<const sql::Column*>& columns,
                 const std::vector<std::vector<const sql::Value*>>& rows,
                 DirectLoadTables* direct = nullptr);

} // namespace crmsync::drivers::mysql
