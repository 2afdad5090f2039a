#pragma once

#include "lib/sql/dialect.hpp"

#include <memory>
#include <string_view>

namespace crmsync::drivers::mysql {

// Which server the dialect writes for, where their SQL differs.
enum class Server {
    mysql,   // MySQL 8, and engines speaking its SQL (TiDB, Vitess)
    mariadb, // MariaDB 10.5+, Galera clusters of it
};

// The server as its version text names it ("10.11.6-MariaDB-0+deb12u1", "8.0.36").
Server server_of_version(std::string_view version);

// MySQL 8 and MariaDB 10.5+ (and engines speaking their SQL: TiDB, Vitess). INSERT ... ON
// DUPLICATE KEY UPDATE with VALUES(), utf8mb4, GET_LOCK, strict mode so nothing is truncated.
// Key columns compare byte for byte: utf8mb4_bin, and on MariaDB utf8mb4_nopad_bin, where
// "k" and "k " are two keys too (utf8mb4_bin pads with spaces when comparing: such keys were
// one to the server, two to crmsync, and their batch failed every run).
std::unique_ptr<sql::Dialect> make_dialect(Server server = Server::mysql);

// Why a batch of `table` was refused when one of its rows met a stored row of another key (or
// another row of the batch) on a unique index besides `key`'s, or under a collation that
// takes the two keys for one; `what` says what the server did, both names come quoted. Upserts
// (the guard of ON DUPLICATE KEY UPDATE) and LOAD DATA's REPLACE count give the same account.
sql::Dialect::FailureExplanation other_record_met(std::string_view table, std::string_view key,
                                                  std::string_view what);

} // namespace crmsync::drivers::mysql
