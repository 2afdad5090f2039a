#pragma once

#include "lib/core/error.hpp"
#include "lib/sql/database.hpp"

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace crmsync::drivers::postgres {

// What one connection's bulk loads remember, and count.
struct CopySession {
    // By table name: whether the table may still take rows by a COPY straight into it
    // (decided at its first bulk load: empty, with a unique index on the key alone).
    std::unordered_map<std::string, bool> direct_tables;
    // False sends every COPY as text (the tests compare both formats).
    bool binary_allowed = true;
    // Whether the server keeps times as 64-bit integers, as it reported at connection
    // (integer_datetimes); read at the first COPY when not set. A server built with float
    // times (before PostgreSQL 10, by choice) would read the binary encoding of a timestamp as
    // another time without an error, so its tables with timestamp columns go as text.
    std::optional<bool> integer_datetimes;
    // COPY statements sent in each format.
    long binary_copies = 0;
    long text_copies = 0;
    // Numbers the caller's transactions: changed by the owner of the connection at each BEGIN,
    // COMMIT and ROLLBACK (PostgresDatabase does). 0, when nobody tells, turns off the cache
    // below and every COPY looks its types up on its own.
    unsigned long transaction = 0;
    // Column types (name -> type oid) of tables locked in ROW EXCLUSIVE mode, so that nobody
    // can alter them until the transaction ends, by table name, with the transaction they
    // were looked up in. The first straight load of a transaction locks and looks up every
    // table still loaded straight in, in one round trip; the others of the batch need none.
    struct LockedTypes {
        unsigned long transaction = 0;
        std::unordered_map<std::string, unsigned> oids;
    };
    std::unordered_map<std::string, LockedTypes> locked_types;
    // The tables transaction `expected_in` was told it will write (sql::Database::
    // expect_writes): only these are locked with another table's first load. A transaction
    // told nothing locks every table still loaded straight in.
    std::vector<std::string> expected_tables;
    unsigned long expected_in = 0;
    // Type lookups sent (each one a round trip; the tests count them).
    long type_lookups = 0;
};

// The hint of a failed write: the transaction it was in was not committed.
inline constexpr const char* k_uncommitted_hint =
    "nothing past the last committed batch was recorded";

// The error for a failed statement on `connection` while doing `action` ("committing a
// transaction"): the server's message (passwords redacted) and k_uncommitted_hint.
Error server_error(PGconn* connection, const std::string& action);

// Stores `rows` (distinct keys) as an upsert would, inside the caller's transaction.
// - While `session.direct_tables` allows it, a COPY straight into the table under a savepoint:
// every row is
//   new. A unique violation undoes it and turns the direct path off for the table.
// - Otherwise through a session-private staging table that empties itself at commit: COPY the
//   rows in, then INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE changed, counting the
//   rows it inserted and updated in the same statement.
// Each COPY is binary (see binary_copy.hpp) when every column type and value allow it, text
// otherwise; both store the same values.
// Throws crmsync::Error(io) with the server's message.
sql::Database::BulkResult copy_upsert(PGconn* connection, const sql::Dialect& dialect,
                                      const sql::Table& table,
                                      const std::vector<const sql::Column*>& columns,
                                      const std::vector<std::vector<const sql::Value*>>& rows,
                                      CopySession& session);

} // namespace crmsync::drivers::postgres
