#include "lib/sql/dialect.hpp"

#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/format.h>

namespace crmsync::sql {

std::string Dialect::placeholder(std::string_view prefix, std::size_t index) const {
    return fmt::format(":{}{}", prefix, index);
}

std::string Dialect::unique_key_clause(const Table& table) const {
    if (table.upsert_key.empty() || table.upsert_key == table.primary_key) {
        return {};
    }
    return ", UNIQUE (" + quote(table.upsert_key) + ")";
}

std::string Dialect::qualified(const Table& table, const Column& column) const {
    return quote(table.name) + "." + quote(column.name);
}

std::string Dialect::table_placeholders(std::size_t tables) {
    std::string list;
    for (std::size_t i = 0; i < tables; ++i) {
        list += (i ? ", :t" : ":t") + std::to_string(i);
    }
    return list;
}

std::string Dialect::create_index(const Table& table, const Index& index) const {
    return create_index(table, index, index_name(*this, table, index));
}

std::string Dialect::create_index(const Table& table, const Index& index,
                                  const std::string& name) const {
    std::string sql = index.unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ";
    sql += quote(name) + " ON " + quote(table.name) + " (";
    for (std::size_t i = 0; i < index.columns.size(); ++i) {
        sql += (i ? ", " : "") + quote(index.columns[i]);
    }
    return sql + ")";
}

std::string Dialect::select_by_keys(const Table& table, const std::vector<std::string>& columns,
                                    std::size_t count) const {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        sql += (i ? ", " : "") + quote(columns[i]);
    }
    sql += " FROM " + quote(table.name) + " WHERE " + quote(table.key()) + " IN (";
    for (std::size_t i = 0; i < count; ++i) {
        sql += (i ? ", " : "") + placeholder("k", i);
    }
    return sql + ")";
}

std::string Dialect::holds_rows_query(const Table& table) const {
    return "SELECT CASE WHEN EXISTS (SELECT 1 FROM " + quote(table.name) + ") THEN 1 ELSE 0 END";
}

std::string Dialect::select_all(const Table& table, const std::vector<std::string>& columns) const {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        sql += (i ? ", " : "") + quote(columns[i]);
    }
    return sql + " FROM " + quote(table.name);
}

std::string Dialect::update_by_key(const Table& table,
                                   const std::vector<const Column*>& set_columns) const {
    std::string sql = "UPDATE " + quote(table.name) + " SET ";
    for (std::size_t i = 0; i < set_columns.size(); ++i) {
        sql += (i ? ", " : "") + quote(set_columns[i]->name) + " = " + placeholder("p", i);
    }
    return sql + " WHERE " + quote(table.key()) + " = " + placeholder("p", set_columns.size());
}

std::string Dialect::job_states_query() const {
    return "SELECT " + quote("job") + ", " + quote("checkpoint") + ", " + quote("progress") + ", " +
           quote("updated_at") + " FROM " + quote("crmsync_state") + " ORDER BY " + quote("job");
}

std::string Dialect::reject_counts_query() const {
    return "SELECT " + quote("job") + ", COUNT(*) FROM " + quote("crmsync_rejects") + " GROUP BY " +
           quote("job");
}

std::optional<std::string> Dialect::value_problem(const Column& column,
                                                  std::string_view value) const {
    switch (column.type) {
    case ColumnType::key: {
        const std::size_t length = key_length(value);
        if (length > k_key_length) {
            return fmt::format("{} is {} characters long; the column holds {}", column.name, length,
                               k_key_length);
        }
        return std::nullopt;
    }
    case ColumnType::number: {
        const auto digits_end = value.find_first_of("eE");
        const std::string_view mantissa = value.substr(0, digits_end);
        const auto dot = mantissa.find('.');
        std::string_view int_part = mantissa.substr(0, dot);
        if (!int_part.empty() && (int_part.front() == '-' || int_part.front() == '+')) {
            int_part.remove_prefix(1);
        }
        while (int_part.size() > 1 && int_part.front() == '0') {
            int_part.remove_prefix(1);
        }
        const std::size_t frac = dot == std::string_view::npos ? 0 : mantissa.size() - dot - 1;
        if (digits_end != std::string_view::npos || int_part.size() > number_integer_digits() ||
            frac > number_fraction_digits()) {
            return fmt::format("{} = {} does not fit {} (at most {} integer and {} fraction "
                               "digits)",
                               column.name, value.substr(0, 40), column_type(column),
                               number_integer_digits(), number_fraction_digits());
        }
        return std::nullopt;
    }
    case ColumnType::integer: {
        std::string_view digits = value;
        const bool negative = !digits.empty() && digits.front() == '-';
        if (negative || (!digits.empty() && digits.front() == '+')) {
            digits.remove_prefix(1);
        }
        while (digits.size() > 1 && digits.front() == '0') {
            digits.remove_prefix(1);
        }
        const std::string_view limit = negative ? "9223372036854775808" : "9223372036854775807";
        const bool all_digits =
            !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
        if (!all_digits || digits.size() > limit.size() ||
            (digits.size() == limit.size() && digits > limit)) {
            return fmt::format("{} = {} is not a 64-bit integer", column.name, value.substr(0, 40));
        }
        return std::nullopt;
    }
    case ColumnType::timestamp: {
        int year = 0;
        std::size_t year_digits = 0;
        while (year_digits < value.size() && value[year_digits] >= '0' &&
               value[year_digits] <= '9') {
            year = year_digits < 6 ? year * 10 + (value[year_digits] - '0') : year;
            ++year_digits;
        }
        if (year_digits != 4) {
            return fmt::format("{} = {} is not a time between the years 0 and 9999 that {} can "
                               "hold",
                               column.name, value.substr(0, 40), column_type(column));
        }
        if (year < min_timestamp_year()) {
            return fmt::format("{} = {} is before the year {} that {} can hold", column.name, value,
                               min_timestamp_year(), column_type(column));
        }
        return std::nullopt;
    }
    default:
        return std::nullopt;
    }
}

namespace {

bool is_character_type(const std::string& data_type) {
    return data_type.find("char") != std::string::npos ||
           data_type.find("text") != std::string::npos;
}

bool is_decimal_type(const std::string& data_type) {
    return data_type == "decimal" || data_type == "numeric";
}

} // namespace

std::optional<std::string> Dialect::widen_column(const Table& table, const Column& column,
                                                 const ExistingColumn& existing) const {
    if (column.identity) {
        return std::nullopt;
    }
    bool narrower = false;
    switch (column.type) {
    case ColumnType::key:
        narrower = is_character_type(existing.data_type) && existing.char_length &&
                   *existing.char_length > 0 &&
                   *existing.char_length < static_cast<long long>(k_key_length);
        break;
    case ColumnType::text:
        narrower = is_character_type(existing.data_type) && !holds_any_text(existing);
        break;
    case ColumnType::number:
        if (is_decimal_type(existing.data_type) && existing.numeric_precision) {
            const long long scale = existing.numeric_scale.value_or(0);
            const long long whole = *existing.numeric_precision - scale;
            narrower = number_has_fixed_digits()
                           ? scale < static_cast<long long>(number_fraction_digits()) ||
                                 whole < static_cast<long long>(number_integer_digits())
                           : true; // a constrained numeric where ours is unconstrained
        }
        break;
    default:
        break;
    }
    return narrower ? alter_column_type(table, column) : std::nullopt;
}

std::size_t Dialect::key_length(std::string_view value) const {
    std::size_t code_points = 0;
    for (const char c : value) {
        code_points += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
    }
    return code_points;
}

std::string Dialect::lock_parameter(std::string_view job_key) const {
    return "crmsync:" + util::md5_hex(job_key);
}

std::string index_name(const Dialect& dialect, const Table& table, const Index& index) {
    std::string name = "ix_" + table.name;
    for (const auto& column : index.columns) {
        name += "_" + column;
    }
    return util::sanitize_identifier(name, dialect.max_identifier_bytes());
}

} // namespace crmsync::sql
