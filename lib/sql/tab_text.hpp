#pragma once

#include "lib/sql/database.hpp"

#include <string>
#include <vector>

namespace crmsync::sql {

// What the target does with a NUL byte in a value.
enum class TabTextNul {
    absent,  // PostgreSQL: text cannot hold one, and the writer scrubs them before a COPY
    escaped, // MySQL/MariaDB LOAD DATA: written as \0
};

// Appends `row` as one line of the tab-separated text that PostgreSQL's COPY (text format) and
// LOAD DATA (default FIELDS ESCAPED BY '\\') read: values split by tabs, a newline at the end,
// NULL as \N, and backslash, tab, newline and carriage return written \\ \t \n \r (NUL as \0
// with TabTextNul::escaped). Every other byte (emoji, ctrl-Z, "NULL", "\N" as text) arrives
// unchanged.
void append_tab_text_row(std::string& out, const std::vector<const Value*>& row, TabTextNul nul);

} // namespace crmsync::sql
