#pragma once

#include "lib/sql/dialect.hpp"

#include <memory>

namespace crmsync::drivers::postgres {

// PostgreSQL (and engines speaking its SQL: Citus, YugabyteDB). INSERT ... ON CONFLICT,
// jsonb, timestamptz(3), session advisory locks.
std::unique_ptr<sql::Dialect> make_dialect();

} // namespace crmsync::drivers::postgres
