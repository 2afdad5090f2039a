#pragma once

#include "lib/sql/dialect.hpp"

#include <memory>

namespace crmsync::drivers::sqlite {

// SQLite 3.24+ (UPSERT). Types are affinities; timestamps are ISO text in UTC, sortable.
std::unique_ptr<sql::Dialect> make_dialect();

} // namespace crmsync::drivers::sqlite
