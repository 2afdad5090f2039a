#pragma once

#include "lib/sql/dialect.hpp"

#include <memory>
#include <string_view>

namespace crmsync::drivers::mysql {

// MySQL 8 and MariaDB 10.5+ (and engines speaking their SQL: TiDB, Vitess). INSERT ... ON
// DUPLICATE KEY UPDATE with VALUES(), utf8mb4, GET_LOCK, strict mode so nothing is truncated.
std::unique_ptr<sql::Dialect> make_dialect();

// Why a batch of `table` was refused when one of its rows met a stored row of another key (or
// another row of the batch) on a unique index besides `key`'s, or under a collation that
// takes the two keys for one; `what` says what the server did, both names come quoted. Upserts
// (the guard of ON DUPLICATE KEY UPDATE) and LOAD DATA's REPLACE count give the same account.
sql::Dialect::FailureExplanation other_record_met(std::string_view table, std::string_view key,
                                                  std::string_view what);

} // namespace crmsync::drivers::mysql
