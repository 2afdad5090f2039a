#include "lib/sql/table.hpp"

namespace crmsync::sql {

std::optional<ColumnType> column_type_from_string(std::string_view name) {
    if (name == "key")
        return ColumnType::key;
    if (name == "text")
        return ColumnType::text;
    if (name == "number")
        return ColumnType::number;
    if (name == "integer")
        return ColumnType::integer;
    if (name == "boolean")
        return ColumnType::boolean;
    if (name == "timestamp")
        return ColumnType::timestamp;
    if (name == "json")
        return ColumnType::json;
    return std::nullopt;
}

std::string_view to_string(ColumnType type) {
    switch (type) {
    case ColumnType::key:
        return "key";
    case ColumnType::text:
        return "text";
    case ColumnType::number:
        return "number";
    case ColumnType::integer:
        return "integer";
    case ColumnType::boolean:
        return "boolean";
    case ColumnType::timestamp:
        return "timestamp";
    case ColumnType::json:
        return "json";
    }
    return "text";
}

const Column* Table::find(std::string_view column) const {
    for (const auto& c : columns) {
        if (c.name == column) {
            return &c;
        }
    }
    return nullptr;
}

std::size_t Table::position(std::string_view column) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (columns[i].name == column) {
            return i;
        }
    }
    return std::string::npos;
}

} // namespace crmsync::sql
