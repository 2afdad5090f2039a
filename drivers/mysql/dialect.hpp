#pragma once

#include "lib/sql/dialect.hpp"

#include <memory>

namespace crmsync::drivers::mysql {

// MySQL 8 and MariaDB 10.5+ (and engines speaking their SQL: TiDB, Vitess). INSERT ... ON
// DUPLICATE KEY UPDATE with VALUES(), utf8mb4, GET_LOCK, strict mode so nothing is truncated.
std::unique_ptr<sql::Dialect> make_dialect();

} // namespace crmsync::drivers::mysql
