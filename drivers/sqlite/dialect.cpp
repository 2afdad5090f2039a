#include "drivers/sqlite/dialect.hpp"

namespace crmsync::drivers::sqlite {
namespace {

class SqliteDialect final : public sql::Dialect {
public:
    std::string_view name() const override { return "sqlite"; }

    std::string placeholder(std::string_view /*prefix*/, std::size_t /*index*/) const override {
        return "?";
    }

    std::string quote(std::string_view identifier) const override {
        std::string out = "\"";
        for (const char c : identifier) {
            out += c == '"' ? std::string("\"\"") : std::string(1, c);
        }
        return out + "\"";
    }

    // SQLite has no limit; 128 keeps names portable to the other targets.
    std::size_t max_identifier_bytes() const override { return 128; }
    std::size_t max_parameters() const override { return 32766; }

    std::string column_type(const sql::Column& column) const override {
        using sql::ColumnType;
        if (column.identity) {
            return "INTEGER";
        }
        switch (column.type) {
        case ColumnType::key:
            return "TEXT";
        case ColumnType::text:
            return "TEXT";
        case ColumnType::number:
            return "NUMERIC";
        case ColumnType::integer:
            return "INTEGER";
        case ColumnType::boolean:
            return "INTEGER";
        case ColumnType::timestamp:
            return "TEXT";
        case ColumnType::json:
            return "TEXT";
        }
        return "TEXT";
    }

    std::string create_table(const sql::Table& table) const override {
        std::string sql = "CREATE TABLE IF NOT EXISTS " + quote(table.name) + " (";
        for (std::size_t i = 0; i < table.columns.size(); ++i) {
            const auto& c = table.columns[i];
            sql += (i ? ", " : "") + quote(c.name) + " " + column_type(c);
            if (c.name == table.primary_key) {
                sql += " NOT NULL PRIMARY KEY";
            } else if (!c.nullable) {
                sql += " NOT NULL";
            }
        }
        return sql + unique_key_clause(table) + ")";
    }

    std::string add_column(const sql::Table& table, const sql::Column& column) const override {
        return "ALTER TABLE " + quote(table.name) + " ADD COLUMN " + quote(column.name) + " " +
               column_type(column);
    }

    using sql::Dialect::create_index;
    std::string create_index(const sql::Table& table, const sql::Index& index,
                             const std::string& name) const override {
        std::string sql = Dialect::create_index(table, index, name);
        return sql.insert(sql.find("INDEX ") + 6, "IF NOT EXISTS ");
    }

    std::string list_columns_query() const override {
        return "SELECT name FROM pragma_table_info(:table)";
    }

    std::string list_indexes_query() const override {
        return "SELECT name FROM pragma_index_list(:table)";
    }

    std::string unique_columns_query() const override {
        // An INTEGER PRIMARY KEY is the rowid and has no index of its own. :table once, since
        // parameters bind by position.
        return "WITH t(name) AS (SELECT :table) "
               "SELECT ii.name FROM t, pragma_index_list(t.name) il "
               "JOIN pragma_index_info(il.name) ii WHERE il.\"unique\" = 1 AND il.partial = 0 "
               "GROUP BY il.name HAVING COUNT(*) = 1 AND MIN(ii.name) IS NOT NULL "
               "UNION SELECT c.name FROM t, pragma_table_info(t.name) c WHERE c.pk = 1 AND "
               "(SELECT COUNT(*) FROM t, pragma_table_info(t.name) k WHERE k.pk > 0) = 1";
    }

    std::optional<std::string> relation_name_query() const override {
        return "SELECT 1 FROM sqlite_master WHERE lower(name) = lower(:name)";
    }

    std::string upsert(const sql::Table& table, const std::vector<const sql::Column*>& columns,
                       std::size_t rows) const override {
        std::string sql = "INSERT INTO " + quote(table.name) + " AS t (";
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
        std::string set;
        std::string differs;
        for (const auto* c : columns) {
            if (c->name == table.key()) {
                continue;
            }
            const std::string q = quote(c->name);
            set += (set.empty() ? "" : ", ") + q + " = excluded." + q;
            if (c->name != table.changed_at_column) {
                differs += (differs.empty() ? "" : " OR ") + ("t." + q) + " IS NOT excluded." + q;
            }
        }
        sql += " ON CONFLICT (" + quote(table.key()) + ") ";
        if (set.empty()) {
            return sql + "DO NOTHING";
        }
        sql += "DO UPDATE SET " + set;
        if (!differs.empty()) {
            sql += " WHERE " + differs;
        }
        return sql;
    }

    // NUMERIC affinity keeps integers up to 64 bits exactly and turns anything else into a
    // double: more than 15 significant digits would be rounded silently.
    std::optional<std::string> value_problem(const sql::Column& column,
                                             std::string_view value) const override {
        if (column.type != sql::ColumnType::number) {
            return Dialect::value_problem(column, value);
        }
        std::string digits;
        bool fraction = false;
        for (const char c : value) {
            if (c == '.') {
                fraction = true;
            } else if (c >= '0' && c <= '9' && !(digits.empty() && c == '0')) {
                digits += c;
            }
        }
        if (fraction) {
            while (!digits.empty() && digits.back() == '0') {
                digits.pop_back();
            }
        }
        const bool fits_integer = !fraction && digits.size() <= 18;
        if (!fits_integer && digits.size() > 15) {
            return "number " + std::string(value.substr(0, 40)) +
                   " has more significant digits "
                   "than SQLite stores exactly";
        }
        return std::nullopt;
    }

    std::vector<std::string> session_setup() const override {
        // The busy timeout first: switching to WAL already needs the lock another reader may hold.
        return {"PRAGMA busy_timeout = 30000", "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL"};
    }
};

} // namespace

std::unique_ptr<sql::Dialect> make_dialect() { return std::make_unique<SqliteDialect>(); }

} // namespace crmsync::drivers::sqlite
