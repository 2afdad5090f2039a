#pragma once

#include "lib/sql/database.hpp"

#include <libpq-fe.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace crmsync::drivers::postgres {

// Per connection: whether a table may still take rows by a COPY straight into it (decided at
// its first bulk load: empty, with a unique index on the key alone). Keyed by table name.
using DirectCopyTables = std::unordered_map<std::string, bool>;

// Stores `rows` (distinct keys) as an upsert would, inside the caller's transaction.
// - While `direct` allows it, a COPY straight into the table under a savepoint: every row is
//   new. A unique violation undoes it and turns the direct path off for the table.
// - Otherwise through a session-private staging table: TRUNCATE it, COPY the rows in, count the
//   keys already present, INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE changed.
// Throws crmsync::Error(io) with the server's message.
sql::Database::BulkResult copy_upsert(PGconn* connection, const sql::Dialect& dialect,
                                      const sql::Table& table,
                                      const std::vector<const sql::Column*>& columns,
                                      const std::vector<std::vector<const sql::Value*>>& rows,
                                      DirectCopyTables& direct);

} // namespace crmsync::drivers::postgres
