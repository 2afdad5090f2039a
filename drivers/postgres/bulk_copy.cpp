#include "drivers/postgres/bulk_copy.hpp"

#include "lib/core/error.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/redact.hpp"

#include <cstdlib>
#include <memory>

namespace crmsync::drivers::postgres {
namespace {

constexpr std::size_t k_copy_chunk = 1 << 20;

struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

Error copy_error(PGconn* connection, const std::string& action) {
    std::string message = util::redact(PQerrorMessage(connection));
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return Error(ErrorKind::io, "database error while " + action + ": " + message,
                 "nothing past the last committed batch was recorded");
}

Result run(PGconn* connection, const std::string& sql, const std::string& action) {
    Result result(PQexec(connection, sql.c_str()));
    const auto status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        throw copy_error(connection, action);
    }
    return result;
}

} // namespace

void append_copy_row(std::string& out, const std::vector<const sql::Value*>& row) {
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
            default:
                out += c;
            }
        }
    }
    out += '\n';
}

sql::Database::BulkResult copy_upsert(PGconn* connection, const sql::Dialect& dialect,
                                      const sql::Table& table,
                                      const std::vector<const sql::Column*>& columns,
                                      const std::vector<std::vector<const sql::Value*>>& rows) {
    const std::string stage_name = "crmsync_stage_" + util::md5_hex(table.name).substr(0, 12);
    const std::string stage = dialect.quote(stage_name);
    const std::string target = dialect.quote(table.name);
    std::string names;
    std::string source;
    for (const auto* c : columns) {
        names += (names.empty() ? "" : ", ") + dialect.quote(c->name);
    }
    run(connection,
        "CREATE TEMP TABLE IF NOT EXISTS " + stage + " AS SELECT " + names + " FROM " + target +
            " WITH NO DATA",
        "creating the staging table for " + table.name);
    run(connection, "TRUNCATE " + stage, "emptying the staging table for " + table.name);

    Result started(PQexec(connection, ("COPY " + stage + " (" + names + ") FROM STDIN").c_str()));
    if (PQresultStatus(started.get()) != PGRES_COPY_IN) {
        throw copy_error(connection, "starting COPY into " + table.name);
    }
    std::string buffer;
    buffer.reserve(k_copy_chunk + 64 * 1024);
    for (const auto& row : rows) {
        append_copy_row(buffer, row);
        if (buffer.size() >= k_copy_chunk) {
            if (PQputCopyData(connection, buffer.data(), static_cast<int>(buffer.size())) != 1) {
                throw copy_error(connection, "sending rows of " + table.name);
            }
            buffer.clear();
        }
    }
    if ((!buffer.empty() &&
         PQputCopyData(connection, buffer.data(), static_cast<int>(buffer.size())) != 1) ||
        PQputCopyEnd(connection, nullptr) != 1) {
        throw copy_error(connection, "sending rows of " + table.name);
    }
    bool copy_failed = false;
    while (Result r{PQgetResult(connection)}) {
        copy_failed = copy_failed || PQresultStatus(r.get()) != PGRES_COMMAND_OK;
    }
    if (copy_failed) {
        throw copy_error(connection, "loading rows of " + table.name);
    }

    const std::string key = dialect.quote(table.key());
    const auto existing = run(connection,
                              "SELECT count(*) FROM " + stage + " s JOIN " + target + " t ON t." +
                                  key + " = s." + key,
                              "counting existing rows of " + table.name);
    sql::Database::BulkResult result;
    result.existing = std::atol(PQgetvalue(existing.get(), 0, 0));

    const auto upsert = dialect.upsert_from_table(table, columns, stage_name);
    if (!upsert) {
        throw Error(ErrorKind::internal, "the dialect has no upsert from a staging table");
    }
    const auto done = run(connection, *upsert, "upserting into " + table.name);
    result.affected = std::atol(PQcmdTuples(done.get()));
    return result;
}

} // namespace crmsync::drivers::postgres
