#include "drivers/postgres/bulk_copy.hpp"

#include "drivers/postgres/binary_copy.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/tab_text.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/redact.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace crmsync::drivers::postgres {
namespace {

// COPY data goes to the server in chunks of this size as rows are encoded, so the server parses
// and inserts one chunk while the next is encoded. A batch's table holds a few hundred KB:
// with 1 MB chunks every table was encoded whole before the server saw a byte, and each side
// waited for the other. 16 KB is libpq's own output buffer.
constexpr std::size_t k_copy_chunk = 16 * 1024;

struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

Result run(PGconn* connection, const std::string& sql, const std::string& action) {
    Result result(PQexec(connection, sql.c_str()));
    const auto status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        throw server_error(connection, action);
    }
    return result;
}

// Sends `rows` through `copy_sql` (a COPY ... FROM STDIN, possibly after statements that
// run first in the same round trip: PQexec stops at the COPY), in binary when `binary` gives the
// encoding of each column (the statement then says FORMAT binary), else as text. Returns the
// failing result when the server refused the rows (its SQLSTATE tells why), nothing when they
// were all stored; throws when the connection itself failed.
Result send_copy(PGconn* connection, std::string copy_sql,
                 const std::vector<std::vector<const sql::Value*>>& rows,
                 const std::optional<std::vector<BinaryType>>& binary,
                 const std::string& table_name) {
    if (binary) {
        copy_sql += " WITH (FORMAT binary)";
    }
    Result started(PQexec(connection, copy_sql.c_str()));
    if (PQresultStatus(started.get()) != PGRES_COPY_IN) {
        throw server_error(connection, "starting COPY into " + table_name);
    }
    std::string buffer;
    buffer.reserve(k_copy_chunk + 64 * 1024);
    if (binary) {
        append_binary_header(buffer);
    }
    for (const auto& row : rows) {
        if (binary) {
            append_binary_row(buffer, row, *binary);
        } else {
            sql::append_tab_text_row(buffer, row, sql::TabTextNul::absent);
        }
        if (buffer.size() >= k_copy_chunk) {
            if (PQputCopyData(connection, buffer.data(), static_cast<int>(buffer.size())) != 1) {
                throw server_error(connection, "sending rows of " + table_name);
            }
            buffer.clear();
        }
    }
    if (binary) {
        append_binary_trailer(buffer);
    }
    if ((!buffer.empty() &&
         PQputCopyData(connection, buffer.data(), static_cast<int>(buffer.size())) != 1) ||
        PQputCopyEnd(connection, nullptr) != 1) {
        throw server_error(connection, "sending rows of " + table_name);
    }
    Result failed;
    while (Result r{PQgetResult(connection)}) {
        if (!failed && PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
            failed = std::move(r);
        }
    }
    return failed;
}

// A transaction around the statements of one load when the caller has none open: begun on
// construction, rolled back on destruction unless commit() was called. A no-op inside the
// caller's transaction.
class OwnTransaction {
public:
    OwnTransaction(PGconn* connection, const std::string& table_name)
        : m_connection(connection), m_table_name(table_name),
          m_open(PQtransactionStatus(connection) != PQTRANS_INTRANS) {
        if (m_open) {
            run(connection, "BEGIN", "starting a load of " + table_name);
        }
    }
    OwnTransaction(const OwnTransaction&) = delete;
    OwnTransaction& operator=(const OwnTransaction&) = delete;
    ~OwnTransaction() {
        if (m_open) {
            PQclear(PQexec(m_connection, "ROLLBACK"));
        }
    }

    void commit() {
        if (m_open) {
            m_open = false;
            run(m_connection, "COMMIT", "finishing the load of " + m_table_name);
        }
    }

private:
    PGconn* m_connection;
    std::string m_table_name;
    bool m_open;
};

std::string sqlstate(const Result& result) {
    const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
    return state == nullptr ? "" : state;
}

// True when `table` is empty and its key column alone carries a unique index: rows may then be
// copied straight in, since a key already present makes the COPY fail instead of duplicating.
bool empty_with_unique_key(PGconn* connection, const sql::Dialect& dialect,
                           const sql::Table& table) {
    const std::string target = dialect.quote(table.name);
    const std::string sql =
        "SELECT NOT EXISTS (SELECT 1 FROM " + target +
        ") AND EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = i.indkey[0] WHERE i.indrelid = $1::regclass AND i.indisunique "
        "AND i.indnatts = 1 AND i.indpred IS NULL AND a.attname = $2)";
    const std::string key = table.key();
    const char* params[] = {target.c_str(), key.c_str()};
    Result result(PQexecParams(connection, sql.c_str(), 2, nullptr, params, nullptr, nullptr, 0));
    if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
        throw server_error(connection, "checking whether " + table.name + " is empty");
    }
    return std::string_view(PQgetvalue(result.get(), 0, 0)) == "t";
}

std::string literal_of(PGconn* connection, const std::string& text, const std::string& table_name) {
    std::unique_ptr<char, decltype(&PQfreemem)> literal(
        PQescapeLiteral(connection, text.data(), text.size()), PQfreemem);
    if (!literal) {
        throw server_error(connection, "quoting the name of " + table_name);
    }
    return literal.get();
}

// How each of `columns` goes in a binary COPY, given the column types of the table it goes
// into (`type_oids`, name -> type oid); nothing when a column has a type the encoder does not
// write, or a value of `rows` is not one it encodes with certainty: the rows then go as text.
std::optional<std::vector<BinaryType>>
binary_types_of(PGconn* connection, CopySession& session,
                const std::unordered_map<std::string, unsigned>& type_oids,
                const std::string& table_name, const std::vector<const sql::Column*>& columns,
                const std::vector<std::vector<const sql::Value*>>& rows) {
    std::vector<BinaryType> types;
    types.reserve(columns.size());
    for (const auto* column : columns) {
        const auto oid = type_oids.find(column->name);
        const auto type = oid == type_oids.end() ? std::nullopt : binary_type_of(oid->second);
        if (!type) {
            log::debug("{}: column {} has a type sent as text; copying the table as text",
                       table_name, column->name);
            return std::nullopt;
        }
        if (*type == BinaryType::timestamp) {
            if (!session.integer_datetimes) {
                const char* reported = PQparameterStatus(connection, "integer_datetimes");
                session.integer_datetimes =
                    reported != nullptr && std::string_view(reported) == "on";
            }
            if (!*session.integer_datetimes) {
                log::debug("{}: the server keeps times as floats; copying the table as text",
                           table_name);
                return std::nullopt;
            }
        }
        types.push_back(*type);
    }
    if (!binary_encodable(rows, types)) {
        log::debug("{}: a value of this batch is copied as text", table_name);
        return std::nullopt;
    }
    return types;
}

// How each of `columns` goes in a binary COPY into `relation` (quoted), by its type in the
// catalog now (see binary_types_of); nothing when the session sends text only. Looked up for
// every COPY, so a table altered since the last one is encoded as it is now (stale types could
// be read as other values without an error). `run_first` (statements ending in "; ") runs in
// the same round trip, before the lookup.
std::optional<std::vector<BinaryType>>
binary_types(PGconn* connection, CopySession& session, const std::string& relation,
             const std::string& table_name, const std::vector<const sql::Column*>& columns,
             const std::vector<std::vector<const sql::Value*>>& rows,
             const std::string& run_first) {
    if (!session.binary_allowed) {
        if (!run_first.empty()) {
            run(connection, run_first, "starting a load of " + table_name);
        }
        return std::nullopt;
    }
    const Result result = run(connection,
                              run_first +
                                  "SELECT attname, atttypid FROM pg_attribute WHERE "
                                  "attrelid = " +
                                  literal_of(connection, relation, table_name) +
                                  "::regclass AND attnum > 0 AND NOT attisdropped",
                              "starting a load of " + table_name);
    ++session.type_lookups;
    std::unordered_map<std::string, unsigned> type_oids;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
        type_oids.emplace(
            PQgetvalue(result.get(), i, 0),
            static_cast<unsigned>(std::strtoul(PQgetvalue(result.get(), i, 1), nullptr, 10)));
    }
    return binary_types_of(connection, session, type_oids, table_name, columns, rows);
}

// `types`, counted in the session as the format of one COPY.
std::optional<std::vector<BinaryType>> counted(CopySession& session,
                                               std::optional<std::vector<BinaryType>> types) {
    ++(types ? session.binary_copies : session.text_copies);
    return types;
}

// binary_types, counted in the session.
std::optional<std::vector<BinaryType>>
binary_encoding(PGconn* connection, CopySession& session, const std::string& relation,
                const std::string& table_name, const std::vector<const sql::Column*>& columns,
                const std::vector<std::vector<const sql::Value*>>& rows,
                const std::string& run_first) {
    return counted(
        session, binary_types(connection, session, relation, table_name, columns, rows, run_first));
}

// The column types of `table` as locked in the caller's open transaction, numbered
// session.transaction. At the first call of a transaction (and for a table new to it) one
// round trip locks in ROW EXCLUSIVE mode, and looks up, `table` and every other table still
// loaded straight in that the transaction is expected to write (all of them when it was told
// nothing): the lock (the one its COPY takes anyway, taken earlier) keeps their types from
// changing until the transaction ends, so the later tables of the batch need no lookup. A
// table the batch does not write is left alone: dropped by someone during the run, it would
// fail a batch that never needed it. Taken outside any savepoint of the caller's that could
// be rolled back.
const std::unordered_map<std::string, unsigned>& locked_column_types(PGconn* connection,
                                                                     const sql::Dialect& dialect,
                                                                     CopySession& session,
                                                                     const std::string& table) {
    if (const auto it = session.locked_types.find(table);
        it != session.locked_types.end() && it->second.transaction == session.transaction) {
        return it->second.oids;
    }
    const bool told = session.expected_in == session.transaction;
    const auto expected = [&](const std::string& name) {
        return !told || std::find(session.expected_tables.begin(), session.expected_tables.end(),
                                  name) != session.expected_tables.end();
    };
    std::vector<std::string> names{table};
    for (const auto& [name, direct] : session.direct_tables) {
        const auto locked = session.locked_types.find(name);
        if (direct && name != table && expected(name) &&
            (locked == session.locked_types.end() ||
             locked->second.transaction != session.transaction)) {
            names.push_back(name);
        }
    }
    std::string lock;
    std::string relations;
    for (const auto& name : names) {
        const std::string quoted = dialect.quote(name);
        lock += (lock.empty() ? "" : ", ") + quoted;
        relations += std::string(relations.empty() ? "" : ", ") + "(" +
                     literal_of(connection, name, table) + ", " +
                     literal_of(connection, quoted, table) + ")";
    }
    const Result result =
        run(connection,
            "LOCK TABLE " + lock +
                " IN ROW EXCLUSIVE MODE; SELECT r.name, a.attname, a.atttypid FROM (VALUES " +
                relations +
                ") AS r(name, relation) JOIN pg_attribute a ON a.attrelid = "
                "r.relation::regclass WHERE a.attnum > 0 AND NOT a.attisdropped",
            "starting a load of " + table);
    ++session.type_lookups;
    for (const auto& name : names) {
        auto& entry = session.locked_types[name];
        entry.transaction = session.transaction;
        entry.oids.clear();
    }
    for (int i = 0; i < PQntuples(result.get()); ++i) {
        session.locked_types[PQgetvalue(result.get(), i, 0)].oids.emplace(
            PQgetvalue(result.get(), i, 1),
            static_cast<unsigned>(std::strtoul(PQgetvalue(result.get(), i, 2), nullptr, 10)));
    }
    return session.locked_types[table].oids;
}

} // namespace

sql::Database::BulkResult copy_upsert(PGconn* connection, const sql::Dialect& dialect,
                                      const sql::Table& table,
                                      const std::vector<const sql::Column*>& columns,
                                      const std::vector<std::vector<const sql::Value*>>& rows,
                                      CopySession& session) {
    const std::string target = dialect.quote(table.name);
    std::string names;
    for (const auto* c : columns) {
        names += (names.empty() ? "" : ", ") + dialect.quote(c->name);
    }

    auto [allowed, first_time] = session.direct_tables.try_emplace(table.name, false);
    if (first_time) {
        allowed->second = empty_with_unique_key(connection, dialect, table);
    }
    if (allowed->second) {
        // A first load: COPY into the table itself, with no staging table and no upsert. A key
        // already there (a contact changed while the campaign was paged, another writer) fails
        // the COPY with a unique violation: undo it and take the staging path from then on.
        // Outside a transaction the COPY is its own statement and a failure leaves nothing.
        const bool in_transaction = PQtransactionStatus(connection) == PQTRANS_INTRANS;
        std::optional<std::vector<BinaryType>> binary;
        std::string copy_sql = "COPY " + target + " (" + names + ") FROM STDIN";
        if (in_transaction && session.transaction != 0 && session.binary_allowed) {
            // Types locked for the transaction; the savepoint goes with the COPY, so a table
            // takes two round trips: this one and the one that ends its rows.
            binary = counted(session, binary_types_of(connection, session,
                                                      locked_column_types(connection, dialect,
                                                                          session, table.name),
                                                      table.name, columns, rows));
            copy_sql = "SAVEPOINT crmsync_direct_copy; " + copy_sql;
        } else {
            binary = binary_encoding(connection, session, target, table.name, columns, rows,
                                     in_transaction ? "SAVEPOINT crmsync_direct_copy; " : "");
        }
        const Result failed = send_copy(connection, copy_sql, rows, binary, table.name);
        if (!failed) {
            // The savepoint is left for the COMMIT to release: a round trip fewer per table,
            // which a database across a network pays for. Savepoints of one name nest, and
            // ROLLBACK TO names the newest, so a later table's failed load undoes only itself.
            return {0, static_cast<long>(rows.size())};
        }
        if (sqlstate(failed) != "23505") {
            throw server_error(connection, "loading rows of " + table.name);
        }
        if (in_transaction) {
            run(connection, "ROLLBACK TO SAVEPOINT crmsync_direct_copy",
                "undoing the load of " + table.name);
            run(connection, "RELEASE SAVEPOINT crmsync_direct_copy",
                "undoing the load of " + table.name);
        }
        allowed->second = false;
        log::debug("{} already holds some of the keys loaded; upserting through a staging table",
                   table.name);
    }

    // The staging table empties itself at each commit, in place. TRUNCATE gave it a new file
    // every batch, and creating those files was a sixth of the server's time in a full
    // refresh. ON COMMIT DELETE ROWS needs a transaction around the COPY and the upsert.
    OwnTransaction transaction(connection, table.name);
    const std::string stage_name = "crmsync_stage_" + util::md5_hex(table.name).substr(0, 12);
    const std::string stage = dialect.quote(stage_name);
    // Empty already, unless this transaction loaded the same table before. One round trip
    // with the type lookup.
    const auto binary = binary_encoding(connection, session, stage, table.name, columns, rows,
                                        "CREATE TEMP TABLE IF NOT EXISTS " + stage +
                                            " ON COMMIT DELETE ROWS AS SELECT " + names + " FROM " +
                                            target + " WITH NO DATA; DELETE FROM " + stage + "; ");
    if (send_copy(connection, "COPY " + stage + " (" + names + ") FROM STDIN", rows, binary,
                  table.name)) {
        throw server_error(connection, "loading rows of " + table.name);
    }

    const auto upsert = dialect.upsert_from_table(table, columns, stage_name);
    if (!upsert) {
        throw Error(ErrorKind::internal, "the dialect has no upsert from a staging table");
    }
    // One statement that also counts what it did, instead of a join of the staging table with
    // the target before it: a row the INSERT added has xmax 0, a row ON CONFLICT updated has it
    // set, and an unchanged row (the WHERE of DO UPDATE false) is not returned at all.
    const auto done = run(connection,
                          "WITH written AS (" + *upsert +
                              " RETURNING (t.xmax = 0) AS inserted) SELECT count(*) FILTER "
                              "(WHERE inserted), count(*) FROM written",
                          "upserting into " + table.name);
    const long inserted = std::atol(PQgetvalue(done.get(), 0, 0));
    sql::Database::BulkResult result;
    result.existing = static_cast<long>(rows.size()) - inserted;
    result.affected = std::atol(PQgetvalue(done.get(), 0, 1));
    transaction.commit();
    return result;
}

Error server_error(PGconn* connection, const std::string& action) {
    std::string message = util::redact(PQerrorMessage(connection));
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return Error(ErrorKind::io, "database error while " + action + ": " + message,
                 k_uncommitted_hint);
}

} // namespace crmsync::drivers::postgres
