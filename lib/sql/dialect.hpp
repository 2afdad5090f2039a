#pragma once

#include "lib/sql/table.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::sql {

// A column as the database has it (information_schema), for widening what an older tool
// created too narrow (dbsync2's varchar(50) and decimal(10,0)).
struct ExistingColumn {
    std::string name;
    std::string data_type;                // lower case: "character varying", "decimal", ...
    std::optional<long long> char_length; // characters; nullopt = unbounded or not text
    std::optional<long long> numeric_precision;
    std::optional<long long> numeric_scale;
};

// The order of an object's members in a JSON text.
enum class JsonMemberOrder {
    by_name, // by the bytes of their names (nlohmann's own order)
    // Shorter names first, names of one length by their bytes: PostgreSQL's jsonb keeps an
    // object's members so, and sorts each object it reads into that order.
    jsonb,
};

// Everything that differs between SQL databases, as SQL text. A Dialect does no I/O, so the
// SQL of a database we cannot run here (SQL Server) is still checked by golden tests.
//
// Placeholders are SOCI's ":name" form; values are always bound, never pasted. Every
// identifier goes through quote(). Values arrive as canonical text (numbers "12.5", booleans
// "1"/"0", timestamps "YYYY-MM-DD HH:MM:SS.mmm" in UTC, JSON as text) or NULL.
class Dialect {
public:
    virtual ~Dialect() = default;

    virtual std::string_view name() const = 0;
    // The order in which JSON texts for this database should list an object's members: the
    // one its json type keeps, so that it stores them without sorting (4 % of PostgreSQL's
    // time in a first load). Texts in any order are the same JSON.
    virtual JsonMemberOrder json_member_order() const { return JsonMemberOrder::by_name; }
    virtual std::string quote(std::string_view identifier) const = 0;
    virtual std::size_t max_identifier_bytes() const = 0;
    // Bound values one statement may carry (SQL Server: 2100).
    virtual std::size_t max_parameters() const = 0;

    virtual std::string column_type(const Column& column) const = 0;
    // Idempotent: creates the table only if it does not exist.
    virtual std::string create_table(const Table& table) const = 0;
    virtual std::string add_column(const Table& table, const Column& column) const = 0;
    // CREATE INDEX for `index`, named index_name() or `name`.
    std::string create_index(const Table& table, const Index& index) const;
    virtual std::string create_index(const Table& table, const Index& index,
                                     const std::string& name) const;
    // Takes :table; returns one column of names.
    virtual std::string list_columns_query() const = 0;
    virtual std::string list_indexes_query() const = 0;
    // Takes :table; returns one column: the columns that on their own make up a primary key or
    // a unique index the upsert can match on (whole values, no filter, no expression), each
    // once. Upserts into a table whose key column is not among them would add duplicates
    // (MySQL) or fail (PostgreSQL, SQLite).
    virtual std::string unique_columns_query() const = 0;
    // Takes :name; returns a row when a relation of the current schema already has that name.
    // nullopt where index names belong to their table (MySQL, SQL Server). In PostgreSQL and
    // SQLite an index name is taken schema-wide, also by the indexes of a table renamed to keep
    // it (they keep their names).
    virtual std::optional<std::string> relation_name_query() const { return std::nullopt; }
    // Takes :table; returns name, data_type, character_maximum_length, numeric_precision,
    // numeric_scale per column. nullopt when the database enforces no widths (SQLite).
    virtual std::optional<std::string> column_types_query() const { return std::nullopt; }
    // The column, index and unique-column queries above for many tables at once: each takes
    // :t0 ... :t<tables - 1> and leads every row with its table's name. Every catalog query
    // costs a round trip, and in PostgreSQL a plan of the information_schema views, so a run
    // that checks its tables asks three times instead of three times per table. nullopt where
    // the database is asked table by table.
    struct TableShapeQueries {
        std::string column_types;   // table, then the columns of column_types_query()
        std::string indexes;        // table, index name
        std::string unique_columns; // table, column name
    };
    virtual std::optional<TableShapeQueries> table_shape_queries(std::size_t tables) const {
        (void)tables;
        return std::nullopt;
    }
    // The statement that widens `existing` to what column_type(column) holds, when the
    // existing column would refuse or cut values crmsync writes there (a bounded text column
    // for text or a key, or a decimal with fewer digits); nullopt when it already holds them
    // or the change would not be a pure widening (text to a json type is a retype: left alone).
    std::optional<std::string> widen_column(const Table& table, const Column& column,
                                            const ExistingColumn& existing) const;

    // Insert-or-update of `rows` rows of `columns` (all of the table's bound columns in table
    // order). Rows whose content equals the stored row are left untouched, changed_at column
    // included, so the affected-row count tells inserted + updated apart from unchanged.
    virtual std::string upsert(const Table& table, const std::vector<const Column*>& columns,
                               std::size_t rows) const = 0;
    // The same upsert taking its rows from every row of the table `source` (a staging table
    // with `columns`): INSERT ... SELECT ... FROM source. nullopt when the dialect has no bulk
    // path that needs it (the default).
    virtual std::optional<std::string> upsert_from_table(const Table& table,
                                                         const std::vector<const Column*>& columns,
                                                         std::string_view source) const {
        (void)table;
        (void)columns;
        (void)source;
        return std::nullopt;
    }
    // Rows updated by an upsert of `rows` rows that reported `affected` rows, of which
    // `inserted` were new.
    virtual long updated_from_affected(long affected, long inserted, long rows) const {
        (void)rows;
        return affected - inserted;
    }

    // SELECT <key>[, extra...] FROM table WHERE <key> IN (:k0, ...); `count` placeholders.
    virtual std::string select_by_keys(const Table& table, const std::vector<std::string>& columns,
                                       std::size_t count) const;

    // One row with 1 when `table` holds a row, else 0; the same SQL everywhere, SQL Server
    // included (no LIMIT).
    std::string holds_rows_query(const Table& table) const;

    // SELECT <columns> FROM table: every row, in no particular order.
    virtual std::string select_all(const Table& table,
                                   const std::vector<std::string>& columns) const;
    // UPDATE table SET <c0> = ?, ... WHERE <key> = ?: set_columns.size() placeholders for the
    // new values, in order, then one for the key.
    virtual std::string update_by_key(const Table& table,
                                      const std::vector<const Column*>& set_columns) const;

    // For `status`: job, checkpoint, progress, updated_at of every row of crmsync_state, by job.
    virtual std::string job_states_query() const;
    // For `status`: job and number of rows of crmsync_rejects, one row per job.
    virtual std::string reject_counts_query() const;

    // Why `value` cannot be stored in `column` without loss (too long a key, a number out of
    // the type's range, a year the type cannot hold), or nullopt when it fits.
    virtual std::optional<std::string> value_problem(const Column& column,
                                                     std::string_view value) const;

    // What a failure of one of this dialect's statements means, when the server's own message
    // would mislead (MySQL's upsert guard reports a NULL key, see its upsert()).
    struct FailureExplanation {
        std::string message; // replaces the server's message
        std::string hint;    // what the user can do about it
    };
    // The explanation of `server_message`, the failure of `sql`; nullopt keeps the message.
    virtual std::optional<FailureExplanation>
    explain_failure(std::string_view sql, std::string_view server_message) const {
        (void)sql;
        (void)server_message;
        return std::nullopt;
    }

    // Statements run once per connection (time zone UTC, strict modes, encodings).
    virtual std::vector<std::string> session_setup() const { return {}; }

    // A statement that takes a per-job lock for the session without waiting, returning one row
    // with 1 when taken; nullopt when the driver locks by other means (SQLite: a file lock).
    virtual std::optional<std::string> try_lock_query() const { return std::nullopt; }
    // Parameter bound to :lock for try_lock_query(): the job key turned into what the server
    // expects (a bigint for PostgreSQL, a short name for MySQL).
    virtual std::string lock_parameter(std::string_view job_key) const;

    // The index-th placeholder of a statement (":p3"); SQLite uses "?" since it resolves
    // named parameters in quadratic time.
    virtual std::string placeholder(std::string_view prefix, std::size_t index) const;
    // ", UNIQUE (<upsert key>)" when the table upserts on a column other than its primary
    // key, else "": appended to CREATE TABLE's column list.
    std::string unique_key_clause(const Table& table) const;
    std::string qualified(const Table& table, const Column& column) const;

protected:
    // ":t0, :t1, ..." for table_shape_queries(tables).
    static std::string table_placeholders(std::size_t tables);
    // ALTER statement giving `column` the type column_type(column), keeping NOT NULL where
    // create_table() would set it; nullopt when the database cannot change it in place.
    virtual std::optional<std::string> alter_column_type(const Table& table,
                                                         const Column& column) const {
        (void)table;
        (void)column;
        return std::nullopt;
    }
    // Whether a text column of `existing` (already known to be a character type) holds every
    // value of ColumnType::text: true only for the dialect's own unbounded text type.
    virtual bool holds_any_text(const ExistingColumn& existing) const {
        return !existing.char_length;
    }
    // Whether the number type is a decimal with fixed digits (MySQL, SQL Server); PostgreSQL's
    // numeric is unconstrained.
    virtual bool number_has_fixed_digits() const { return true; }
    // Upper bounds of the number type: integer digits and fraction digits.
    virtual std::size_t number_integer_digits() const { return 131072; }
    virtual std::size_t number_fraction_digits() const { return 16383; }
    virtual int min_timestamp_year() const { return 1; }
    // Length of a key value in the units the key column's limit counts (code points; SQL
    // Server counts UTF-16 code units, so characters beyond U+FFFF count twice).
    virtual std::size_t key_length(std::string_view value) const;
    static constexpr std::size_t k_key_length = 255;
};

// Name of an index on `table` over `columns`: "ix_<table>_<cols>", cut to the dialect's limit.
std::string index_name(const Dialect& dialect, const Table& table, const Index& index);

} // namespace crmsync::sql
