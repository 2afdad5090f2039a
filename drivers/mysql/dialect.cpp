#include "drivers/mysql/dialect.hpp"

#include <fmt/format.h>

namespace crmsync::drivers::mysql {
namespace {

// What the upsert guard assigns to the key of a row that belongs to another record: an error
// in strict mode (see on_duplicate_key).
constexpr std::string_view k_guard_failure = "1/0";

class MysqlDialect final : public sql::Dialect {
public:
    explicit MysqlDialect(Server server) : m_server(server) {}

    std::string_view name() const override { return "mysql"; }

    std::string quote(std::string_view identifier) const override {
        std::string out = "`";
        for (const char c : identifier) {
            out += c == '`' ? std::string("``") : std::string(1, c);
        }
        return out + "`";
    }

    // 64 characters; counted in bytes here, which is stricter for non-ASCII names.
    std::size_t max_identifier_bytes() const override { return 64; }
    std::size_t max_parameters() const override { return 65535; }

    std::string column_type(const sql::Column& column) const override {
        using sql::ColumnType;
        if (column.identity) {
            return "bigint NOT NULL AUTO_INCREMENT";
        }
        switch (column.type) {
        // Keys compare byte-exactly: "abc" and "ABC" are two records, and on MariaDB "k" and
        // "k " too. (MySQL 8's NO PAD binary collation is utf8mb4_0900_bin; no MySQL 8 server
        // was at hand to test it, so MySQL keeps utf8mb4_bin.)
        case ColumnType::key:
            return fmt::format("varchar({}) CHARACTER SET utf8mb4 COLLATE {}", k_key_length,
                               m_server == Server::mariadb ? "utf8mb4_nopad_bin" : "utf8mb4_bin");
        case ColumnType::text:
            return "longtext";
        case ColumnType::number:
            return fmt::format("decimal({},{})", number_integer_digits() + number_fraction_digits(),
                               number_fraction_digits());
        case ColumnType::integer:
            return "bigint";
        case ColumnType::boolean:
            return "boolean";
        case ColumnType::timestamp:
            return "datetime(3)";
        case ColumnType::json:
            return "json";
        }
        return "longtext";
    }

    std::string create_table(const sql::Table& table) const override {
        std::string sql = "CREATE TABLE IF NOT EXISTS " + quote(table.name) + " (";
        for (std::size_t i = 0; i < table.columns.size(); ++i) {
            const auto& c = table.columns[i];
            sql += (i ? ", " : "") + quote(c.name) + " " + column_type(c) +
                   (c.nullable && c.name != table.primary_key ? "" : " NOT NULL");
        }
        sql += ", PRIMARY KEY (" + quote(table.primary_key) + ")" + unique_key_clause(table);
        // The indexes go in the same statement: each CREATE INDEX on InnoDB is a table change
        // of its own (about 5 ms even on an empty table). Index names belong to their table
        // here, so the names are free.
        for (const auto& index : table.indexes) {
            sql += std::string(index.unique ? ", UNIQUE INDEX " : ", INDEX ") +
                   quote(sql::index_name(*this, table, index)) + " (";
            for (std::size_t i = 0; i < index.columns.size(); ++i) {
                sql += (i ? ", " : "") + quote(index.columns[i]);
            }
            sql += ")";
        }
        return sql + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci";
    }

    std::string add_column(const sql::Table& table, const sql::Column& column) const override {
        return "ALTER TABLE " + quote(table.name) + " ADD COLUMN " + quote(column.name) + " " +
               column_type(column);
    }

    std::string list_columns_query() const override {
        return "SELECT column_name FROM information_schema.columns "
               "WHERE table_schema = DATABASE() AND table_name = :table";
    }

    std::optional<std::string> column_types_query() const override {
        return "SELECT column_name, data_type, character_maximum_length, numeric_precision, "
               "numeric_scale FROM information_schema.columns "
               "WHERE table_schema = DATABASE() AND table_name = :table";
    }

    std::string list_indexes_query() const override {
        return "SELECT DISTINCT index_name FROM information_schema.statistics "
               "WHERE table_schema = DATABASE() AND table_name = :table";
    }

    std::string unique_columns_query() const override {
        // A unique index on a prefix (sub_part) would take two keys sharing it for one row.
        return "SELECT DISTINCT MIN(column_name) FROM information_schema.statistics "
               "WHERE table_schema = DATABASE() AND table_name = :table AND non_unique = 0 "
               "GROUP BY index_name HAVING COUNT(*) = 1 AND COUNT(sub_part) = 0";
    }

    std::optional<TableShapeQueries> table_shape_queries(std::size_t tables) const override {
        const std::string names = "(" + table_placeholders(tables) + ")";
        return TableShapeQueries{
            "SELECT table_name, column_name, data_type, character_maximum_length, "
            "numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name IN " +
                names,
            "SELECT DISTINCT table_name, index_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND table_name IN " +
                names,
            // As unique_columns_query().
            "SELECT table_name, MIN(column_name) FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND table_name IN " +
                names +
                " AND non_unique = 0 GROUP BY table_name, index_name "
                "HAVING COUNT(*) = 1 AND COUNT(sub_part) = 0"};
    }

    std::string upsert(const sql::Table& table, const std::vector<const sql::Column*>& columns,
                       std::size_t rows) const override {
        std::string sql = "INSERT INTO " + quote(table.name) + " (";
        for (std::size_t i = 0; i < columns.size(); ++i) {
            sql += (i ? ", " : "") + quote(columns[i]->name);
        }
        sql += ") VALUES ";
        std::size_t p = 0;
        for (std::size_t r = 0; r < rows; ++r) {
            sql += r ? ", (" : "(";
            for (std::size_t i = 0; i < columns.size(); ++i) {
                sql += (i ? ", " : "") + placeholder("p", p++);
            }
            sql += ")";
        }
        return sql + on_duplicate_key(table, columns, "");
    }

    // INSERT ... SELECT from the staging table. Target columns are qualified: the staging
    // table has the same column names, which would otherwise be ambiguous.
    std::optional<std::string> upsert_from_table(const sql::Table& table,
                                                 const std::vector<const sql::Column*>& columns,
                                                 std::string_view source) const override {
        std::string names;
        std::string selected;
        for (const auto* c : columns) {
            names += (names.empty() ? "" : ", ") + quote(c->name);
            selected += (selected.empty() ? "s." : ", s.") + quote(c->name);
        }
        return "INSERT INTO " + quote(table.name) + " (" + names + ") SELECT " + selected +
               " FROM " + quote(source) + " AS s" +
               on_duplicate_key(table, columns, quote(table.name) + ".");
    }

    // SOCI connects with CLIENT_FOUND_ROWS, so MySQL counts 1 per inserted row, 2 per updated
    // row and 1 per row found unchanged: affected = rows + updated.
    long updated_from_affected(long affected, long inserted, long rows) const override {
        (void)inserted;
        return affected - rows;
    }

    std::vector<std::string> session_setup() const override {
        return {"SET NAMES utf8mb4", "SET time_zone = '+00:00'",
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"};
    }

    std::optional<std::string> try_lock_query() const override {
        return "SELECT GET_LOCK(:lock, 0)";
    }

    // Error 1365 (division by 0) in one of this dialect's upserts is the guard of
    // on_duplicate_key(): a row met a stored row of another key.
    std::optional<FailureExplanation> explain_failure(std::string_view sql,
                                                      std::string_view message) const override {
        const std::string_view insert = "INSERT INTO ";
        const std::string_view update = " ON DUPLICATE KEY UPDATE ";
        const std::string_view guard = " = IF(BINARY ";
        const auto update_at = sql.find(update);
        if (sql.substr(0, insert.size()) != insert || update_at == std::string_view::npos ||
            message.find("Division by 0") == std::string_view::npos) {
            return std::nullopt;
        }
        const auto guard_at = sql.find(guard, update_at);
        if (guard_at == std::string_view::npos ||
            sql.find(fmt::format(", {})", k_guard_failure), guard_at) == std::string_view::npos) {
            return std::nullopt;
        }
        // The table is the quoted name after INSERT INTO, as upsert() writes it; the key is
        // the column the guard assigns, qualified by the table in upsert_from_table().
        std::string_view table = sql.substr(insert.size());
        table = table.substr(0, table.find(" ("));
        std::string_view key =
            sql.substr(update_at + update.size(), guard_at - update_at - update.size());
        if (key.size() > table.size() + 1 && key.substr(0, table.size()) == table &&
            key[table.size()] == '.') {
            key.remove_prefix(table.size() + 1);
        }
        return other_record_met(table, key,
                                fmt::format("a row would overwrite a stored row of {} with "
                                            "another {}",
                                            table, key));
    }

private:
    Server m_server;

    // Rows equal to the stored ones keep their change stamp (see Dialect::upsert).
    // `target` qualifies the target table's columns ("" or "`t`.").
    //
    // ON DUPLICATE KEY UPDATE updates the stored row that *any* unique index matches. A row
    // meeting a stored row of another key on a unique index besides the key (one a user added,
    // or the key itself under a case-insensitive or space-padding collation) would overwrite
    // that other record. The first assignment refuses that: unless the stored key is byte for
    // byte the new one it divides by zero, which strict mode with ERROR_FOR_DIVISION_BY_ZERO
    // (session_setup) makes error 1365 for the whole statement (see explain_failure). NULL
    // would do only for a NOT NULL key: a nullable one (bulk-history's EXTERNAL_ID) would take
    // it silently. Every other database's upsert fails there too.
    std::string on_duplicate_key(const sql::Table& table,
                                 const std::vector<const sql::Column*>& columns,
                                 const std::string& target) const {
        const std::string key = target + quote(table.key());
        const std::string guard =
            fmt::format("{0} = IF(BINARY {0} <=> BINARY VALUES({1}), {0}, {2})", key,
                        quote(table.key()), k_guard_failure);
        std::string same;
        std::string set;
        for (const auto* c : columns) {
            if (c->name == table.key() || c->name == table.changed_at_column) {
                continue;
            }
            const std::string q = quote(c->name);
            same += (same.empty() ? "" : " AND ") +
                    fmt::format("BINARY {0}{1} <=> BINARY VALUES({1})", target, q);
            set += ", " + target + q + " = VALUES(" + q + ")";
        }
        std::string sql = " ON DUPLICATE KEY UPDATE " + guard;
        // Assignments run left to right and see earlier ones, so the change stamp is decided
        // before the other columns change, while the row still holds its old values.
        if (!set.empty() && !table.changed_at_column.empty()) {
            const std::string stamp = quote(table.changed_at_column);
            sql += fmt::format(", {0}{1} = IF({2}, {0}{1}, VALUES({1}))", target, stamp, same);
        }
        return sql + set;
    }

protected:
    std::optional<std::string> alter_column_type(const sql::Table& table,
                                                 const sql::Column& column) const override {
        // MODIFY restates the whole definition: NOT NULL must be repeated or it is lost.
        const bool not_null = !column.nullable || column.name == table.primary_key;
        return "ALTER TABLE " + quote(table.name) + " MODIFY COLUMN " + quote(column.name) + " " +
               column_type(column) + (not_null ? " NOT NULL" : "");
    }
    bool holds_any_text(const sql::ExistingColumn& existing) const override {
        return existing.data_type == "longtext";
    }

protected:
    std::size_t number_integer_digits() const override { return 45; }
    std::size_t number_fraction_digits() const override { return 20; }
    int min_timestamp_year() const override { return 1000; }
};

} // namespace

Server server_of_version(std::string_view version) {
    return version.find("MariaDB") != std::string_view::npos ? Server::mariadb : Server::mysql;
}

std::unique_ptr<sql::Dialect> make_dialect(Server server) {
    return std::make_unique<MysqlDialect>(server);
}

sql::Dialect::FailureExplanation other_record_met(std::string_view table, std::string_view key,
                                                  std::string_view what) {
    return {fmt::format("{}: the two meet on a unique index besides the one on {}, or its "
                        "collation takes the two keys for one; the batch was not written",
                        what, key),
            fmt::format("SHOW INDEX FROM {} WHERE Non_unique = 0 lists the unique indexes: drop "
                        "or relax the one not on {} alone, or give {} a binary collation; "
                        "nothing past the last committed batch was recorded",
                        table, key, key)};
}

} // namespace crmsync::drivers::mysql
