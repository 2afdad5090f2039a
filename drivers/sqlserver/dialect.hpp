#pragma once

#include "lib/sql/dialect.hpp"

#include <memory>

namespace crmsync::drivers::sqlserver {

// SQL Server 2016+ through ODBC (FreeTDS). MERGE within 2100 parameters, nvarchar with explicit
// lengths (dbsync2's bare nvarchar meant nvarchar(1)), datetime2(3), sp_getapplock.
std::unique_ptr<sql::Dialect> make_dialect();

} // namespace crmsync::drivers::sqlserver
