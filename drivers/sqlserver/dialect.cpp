#include "drivers/sqlserver/dialect.hpp"

#include <fmt/format.h>

namespace crmsync::drivers::sqlserver {
namespace {

constexpr const char* k_binary_collation = "Latin1_General_100_BIN2";

bool is_character(sql::ColumnType type) {
    return type == sql::ColumnType::key || type == sql::ColumnType::text ||
           type == sql::ColumnType::json;
}

class SqlServerDialect final : public sql::Dialect {
public:
    std::string_view name() const override { return "sqlserver"; }

    std::string quote(std::string_view identifier) const override {
        std::string out = "[";
        for (const char c : identifier) {
            out += c == ']' ? std::string("]]") : std::string(1, c);
        }
        return out + "]";
    }

    std::size_t max_identifier_bytes() const override { return 128; }
    // 2100 per request, one kept spare.
    std::size_t max_parameters() const override { return 2099; }

    std::string column_type(const sql::Column& column) const override {
        using sql::ColumnType;
        if (column.identity) {
            return "bigint IDENTITY(1,1)";
        }
        switch (column.type) {
        case ColumnType::key:
            return fmt::format("nvarchar({}) COLLATE {}", k_key_length, k_binary_collation);
        case ColumnType::text:
            return "nvarchar(max)";
        case ColumnType::number:
            return fmt::format("decimal({},{})", number_integer_digits() + number_fraction_digits(),
                               number_fraction_digits());
        case ColumnType::integer:
            return "bigint";
        case ColumnType::boolean:
            return "bit";
        case ColumnType::timestamp:
            return "datetime2(3)";
        case ColumnType::json:
            return "nvarchar(max)";
        }
        return "nvarchar(max)";
    }

    std::string create_table(const sql::Table& table) const override {
        std::string sql = "IF OBJECT_ID(N'" + escape_literal(quote(table.name)) +
                          "', N'U') IS NULL CREATE TABLE " + quote(table.name) + " (";
        for (std::size_t i = 0; i < table.columns.size(); ++i) {
            const auto& c = table.columns[i];
            sql += (i ? ", " : "") + quote(c.name) + " " + column_type(c) +
                   (c.nullable && c.name != table.primary_key ? " NULL" : " NOT NULL");
        }
        return sql + ", PRIMARY KEY (" + quote(table.primary_key) + ")" + unique_key_clause(table) +
               ")";
    }

    std::string add_column(const sql::Table& table, const sql::Column& column) const override {
        return "ALTER TABLE " + quote(table.name) + " ADD " + quote(column.name) + " " +
               column_type(column) + " NULL";
    }

    std::string list_columns_query() const override {
        return "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS "
               "WHERE TABLE_SCHEMA = SCHEMA_NAME() AND TABLE_NAME = :table";
    }

    std::optional<std::string> column_types_query() const override {
        return "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
               "NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS "
               "WHERE TABLE_SCHEMA = SCHEMA_NAME() AND TABLE_NAME = :table";
    }

    std::string list_indexes_query() const override {
        return "SELECT name FROM sys.indexes WHERE object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) "
               "+ '.' + QUOTENAME(:table)) AND name IS NOT NULL";
    }

    std::string unique_columns_query() const override {
        return "SELECT DISTINCT MIN(c.name) FROM sys.indexes i "
               "JOIN sys.index_columns ic ON ic.object_id = i.object_id "
               "AND ic.index_id = i.index_id AND ic.is_included_column = 0 "
               "JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id "
               "WHERE i.object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) + '.' + QUOTENAME(:table)) "
               "AND i.is_unique = 1 AND i.has_filter = 0 AND i.is_disabled = 0 "
               "GROUP BY i.index_id HAVING COUNT(*) = 1";
    }

    std::string upsert(const sql::Table& table, const std::vector<const sql::Column*>& columns,
                       std::size_t rows) const override {
        std::string names;
        std::string source_names;
        for (std::size_t i = 0; i < columns.size(); ++i) {
            names += (i ? ", " : "") + quote(columns[i]->name);
            source_names += (i ? ", " : "") + std::string("s.") + quote(columns[i]->name);
        }
        std::string sql =
            "MERGE INTO " + quote(table.name) + " WITH (HOLDLOCK) AS t USING (VALUES ";
        std::size_t p = 0;
        for (std::size_t r = 0; r < rows; ++r) {
            sql += r ? ", (" : "(";
            for (std::size_t i = 0; i < columns.size(); ++i) {
                sql += (i ? ", " : "") + placeholder("p", p++);
            }
            sql += ")";
        }
        const std::string key = quote(table.key());
        sql += ") AS s (" + names + ") ON t." + key + " = s." + key;
        std::string set;
        std::string differs;
        for (const auto* c : columns) {
            if (c->name == table.key()) {
                continue;
            }
            const std::string q = quote(c->name);
            set += (set.empty() ? "" : ", ") + ("t." + q) + " = s." + q;
            if (c->name != table.changed_at_column) {
                const std::string collate =
                    is_character(c->type) ? std::string(" COLLATE ") + k_binary_collation : "";
                differs += (differs.empty() ? "" : " OR ") +
                           fmt::format("t.{0}{1} <> s.{0}{1} OR (t.{0} IS NULL AND s.{0} IS NOT "
                                       "NULL) OR (t.{0} IS NOT NULL AND s.{0} IS NULL)",
                                       q, collate);
            }
        }
        if (!set.empty()) {
            sql += " WHEN MATCHED" + (differs.empty() ? "" : " AND (" + differs + ")") +
                   " THEN UPDATE SET " + set;
        }
        return sql + " WHEN NOT MATCHED THEN INSERT (" + names + ") VALUES (" + source_names + ");";
    }

    std::vector<std::string> session_setup() const override {
        return {"SET NOCOUNT OFF", "SET XACT_ABORT ON"};
    }

    std::optional<std::string> try_lock_query() const override {
        return "DECLARE @result int; EXEC @result = sp_getapplock @Resource = :lock, "
               "@LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0; "
               "SELECT CASE WHEN @result >= 0 THEN 1 ELSE 0 END";
    }

protected:
    std::optional<std::string> alter_column_type(const sql::Table& table,
                                                 const sql::Column& column) const override {
        // SQL Server cannot alter a column of a PRIMARY KEY constraint in place.
        if (column.name == table.primary_key || column.name == table.upsert_key) {
            return std::nullopt;
        }
        return "ALTER TABLE " + quote(table.name) + " ALTER COLUMN " + quote(column.name) + " " +
               column_type(column) + (column.nullable ? " NULL" : " NOT NULL");
    }
    bool holds_any_text(const sql::ExistingColumn& existing) const override {
        return existing.data_type == "nvarchar" && existing.char_length == -1;
    }

protected:
    std::size_t number_integer_digits() const override { return 28; }
    std::size_t number_fraction_digits() const override { return 10; }

    std::size_t key_length(std::string_view value) const override {
        std::size_t units = 0;
        for (const char c : value) {
            const auto byte = static_cast<unsigned char>(c);
            units += (byte & 0xC0) != 0x80 ? 1 : 0; // a code point starts
            units += byte >= 0xF0 ? 1 : 0;          // a 4-byte one needs a surrogate pair
        }
        return units;
    }

private:
    static std::string escape_literal(const std::string& text) {
        std::string out;
        for (const char c : text) {
            out += c == '\'' ? std::string("''") : std::string(1, c);
        }
        return out;
    }
};

} // namespace

std::unique_ptr<sql::Dialect> make_dialect() { return std::make_unique<SqlServerDialect>(); }

} // namespace crmsync::drivers::sqlserver
