#pragma once

#include "lib/sql/database.hpp"

#include <libpq-fe.h>

#include <string>
#include <vector>

namespace crmsync::drivers::postgres {

// COPY ... FROM STDIN in text format: values escaped (\\, \t, \n, \r), NULL as \N.
// Appends one line per row to `out`.
void append_copy_row(std::string& out, const std::vector<const sql::Value*>& row);

// Upserts through a session-private staging table: TRUNCATE it, COPY the rows in, count the
// keys already present, INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE changed.
// Throws crmsync::Error(io) with the server's message.
sql::Database::BulkResult copy_upsert(PGconn* connection, const sql::Dialect& dialect,
                                      const sql::Table& table,
                                      const std::vector<const sql::Column*>& columns,
                                      const std::vector<std::vector<const sql::Value*>>& rows);

} // namespace crmsync::drivers::postgres
