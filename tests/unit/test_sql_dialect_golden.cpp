// Golden SQL of the four dialects (drivers/<db>/dialect.hpp make_dialect()).
//
// SQL Server has no server here: its SQL is covered by these golden tests only, so every
// statement it runs is written out below in full. The other dialects also run against real
// servers in tests/integration; here their text is pinned so a change is always deliberate.

#include "cmd/targets.hpp"
#include "drivers/dialfire/transform.hpp"
#include "drivers/mysql/connection.hpp"
#include "drivers/mysql/dialect.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/dialect.hpp"
#include "drivers/sqlite/dialect.hpp"
#include "drivers/sqlserver/connection.hpp"
#include "drivers/sqlserver/dialect.hpp"
#include "lib/core/error.hpp"
#include "lib/sql/dialect.hpp"
#include "lib/sql/schema_catalog.hpp"
#include "lib/util/url.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <regex>
#include <string>
#include <vector>

using crmsync::sql::Column;
using crmsync::sql::ColumnType;
using crmsync::sql::Dialect;
using crmsync::sql::Index;
using crmsync::sql::Table;
namespace sql = crmsync::sql;
namespace drivers = crmsync::drivers;
namespace util = crmsync::util;

namespace {

// A small table with one column of each kind the Dialfire tables use.
Table small_table() {
    Table t;
    t.name = "small";
    t.primary_key = "id";
    t.changed_at_column = "changed_at";
    t.columns = {{"id", ColumnType::key, false},       {"name", ColumnType::text},
                 {"amount", ColumnType::number},       {"active", ColumnType::boolean},
                 {"seen_at", ColumnType::timestamp},   {"doc", ColumnType::json},
                 {"changed_at", ColumnType::timestamp}};
    t.indexes = {{{"seen_at"}}, {{"seen_at", "id"}, true}};
    return t;
}

std::vector<const Column*> bound_columns(const Table& t) {
    std::vector<const Column*> out;
    for (const auto& c : t.columns) {
        if (!c.identity) {
            out.push_back(&c);
        }
    }
    return out;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + needle.size())) {
        ++n;
    }
    return n;
}

Column column(const std::string& name, ColumnType type) {
    Column c;
    c.name = name;
    c.type = type;
    return c;
}

std::string repeat(const std::string& unit, std::size_t times) {
    std::string out;
    for (std::size_t i = 0; i < times; ++i) {
        out += unit;
    }
    return out;
}

// The part of a SQL Server connect string after DRIVER=...; (the driver path depends on the
// machine).
std::string after_driver(const std::string& connect) {
    REQUIRE(connect.rfind("DRIVER=", 0) == 0);
    const auto semi = connect.find(";SERVER=");
    REQUIRE(semi != std::string::npos);
    return connect.substr(semi + 1);
}

} // namespace

TEST_CASE("postgres dialect golden SQL", "[unit]") {
    const auto d = drivers::postgres::make_dialect();
    const Table t = small_table();

    SECTION("create_table is idempotent and maps every type") {
        CHECK(
            d->create_table(t) ==
            R"(CREATE TABLE IF NOT EXISTS "small" ("id" varchar(255) NOT NULL, "name" text, "amount" numeric, "active" boolean, "seen_at" timestamptz(3), "doc" jsonb, "changed_at" timestamptz(3), PRIMARY KEY ("id")))");
    }
    SECTION("add_column and create_index are idempotent") {
        CHECK(d->add_column(t, t.columns[1]) ==
              R"(ALTER TABLE "small" ADD COLUMN IF NOT EXISTS "name" text)");
        CHECK(d->create_index(t, t.indexes[0]) ==
              R"(CREATE INDEX IF NOT EXISTS "ix_small_seen_at" ON "small" ("seen_at"))");
        CHECK(
            d->create_index(t, t.indexes[1]) ==
            R"(CREATE UNIQUE INDEX IF NOT EXISTS "ix_small_seen_at_id" ON "small" ("seen_at", "id"))");
    }
    SECTION("upsert of 2 rows leaves identical rows and their change stamp alone") {
        CHECK(
            d->upsert(t, bound_columns(t), 2) ==
            R"(INSERT INTO "small" AS t ("id", "name", "amount", "active", "seen_at", "doc", "changed_at") VALUES (:p0, :p1, :p2, :p3, :p4, :p5, :p6), (:p7, :p8, :p9, :p10, :p11, :p12, :p13) ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name", "amount" = EXCLUDED."amount", "active" = EXCLUDED."active", "seen_at" = EXCLUDED."seen_at", "doc" = EXCLUDED."doc", "changed_at" = EXCLUDED."changed_at" WHERE ROW(t."name", t."amount", t."active", t."seen_at", t."doc"::jsonb) IS DISTINCT FROM ROW(EXCLUDED."name", EXCLUDED."amount", EXCLUDED."active", EXCLUDED."seen_at", EXCLUDED."doc"::jsonb))");
    }
    SECTION("select_by_keys binds one placeholder per key") {
        CHECK(d->select_by_keys(t, {"id", "name"}, 3) ==
              R"(SELECT "id", "name" FROM "small" WHERE "id" IN (:k0, :k1, :k2))");
    }
    SECTION("upsert_from_table selects from the staging table, whatever the column names say; "
            "rows equal to the stored ones never reach ON CONFLICT (which would lock them)") {
        CHECK(
            d->upsert_from_table(t, bound_columns(t), "stage") ==
            R"(INSERT INTO "small" AS t ("id", "name", "amount", "active", "seen_at", "doc", "changed_at") SELECT s."id", s."name", s."amount", s."active", s."seen_at", s."doc", s."changed_at" FROM "stage" AS s WHERE NOT EXISTS (SELECT FROM "small" AS u WHERE u."id" = s."id" AND ROW(u."name", u."amount", u."active", u."seen_at", u."doc"::jsonb) IS NOT DISTINCT FROM ROW(s."name", s."amount", s."active", s."seen_at", s."doc"::jsonb) OFFSET 0) ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name", "amount" = EXCLUDED."amount", "active" = EXCLUDED."active", "seen_at" = EXCLUDED."seen_at", "doc" = EXCLUDED."doc", "changed_at" = EXCLUDED."changed_at" WHERE ROW(t."name", t."amount", t."active", t."seen_at", t."doc"::jsonb) IS DISTINCT FROM ROW(EXCLUDED."name", EXCLUDED."amount", EXCLUDED."active", EXCLUDED."seen_at", EXCLUDED."doc"::jsonb))");
        Table hostile = t;
        hostile.columns[1].name = "x VALUES (y)";
        CHECK(
            d->upsert_from_table(hostile, bound_columns(hostile), "stage") ==
            R"sql(INSERT INTO "small" AS t ("id", "x VALUES (y)", "amount", "active", "seen_at", "doc", "changed_at") SELECT s."id", s."x VALUES (y)", s."amount", s."active", s."seen_at", s."doc", s."changed_at" FROM "stage" AS s WHERE NOT EXISTS (SELECT FROM "small" AS u WHERE u."id" = s."id" AND ROW(u."x VALUES (y)", u."amount", u."active", u."seen_at", u."doc"::jsonb) IS NOT DISTINCT FROM ROW(s."x VALUES (y)", s."amount", s."active", s."seen_at", s."doc"::jsonb) OFFSET 0) ON CONFLICT ("id") DO UPDATE SET "x VALUES (y)" = EXCLUDED."x VALUES (y)", "amount" = EXCLUDED."amount", "active" = EXCLUDED."active", "seen_at" = EXCLUDED."seen_at", "doc" = EXCLUDED."doc", "changed_at" = EXCLUDED."changed_at" WHERE ROW(t."x VALUES (y)", t."amount", t."active", t."seen_at", t."doc"::jsonb) IS DISTINCT FROM ROW(EXCLUDED."x VALUES (y)", EXCLUDED."amount", EXCLUDED."active", EXCLUDED."seen_at", EXCLUDED."doc"::jsonb))sql");
    }
    SECTION("try_lock_query takes a session advisory lock on a bigint key") {
        CHECK(d->try_lock_query() ==
              "SELECT CASE WHEN pg_try_advisory_lock(CAST(:lock AS bigint)) THEN 1 ELSE 0 END");
        CHECK(d->lock_parameter("job1") == "1127571414428539458");
    }
    SECTION("quote doubles the double quote") {
        CHECK(d->quote("a\"b") == "\"a\"\"b\"");
        CHECK(d->quote("a`b") == "\"a`b\"");
        CHECK(d->quote("a]b") == "\"a]b\"");
    }
    SECTION("column lookups are scoped to the connection's schema") {
        CHECK(d->list_columns_query() ==
              "SELECT column_name FROM information_schema.columns WHERE table_schema = "
              "current_schema() AND table_name = :table");
    }
    SECTION("the tables of a run are looked up together, each row naming its table") {
        const auto shape = d->table_shape_queries(2);
        REQUIRE(shape);
        CHECK(shape->column_types ==
              "SELECT table_name, column_name, data_type, character_maximum_length, "
              "numeric_precision, numeric_scale FROM information_schema.columns WHERE "
              "table_schema = current_schema() AND table_name IN (:t0, :t1)");
        CHECK(shape->indexes == "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = "
                                "current_schema() AND tablename IN (:t0, :t1)");
        CHECK(shape->unique_columns.find("c.relname IN (:t0, :t1) AND i.indisunique") !=
              std::string::npos);
        CHECK(d->table_shape_queries(1)->indexes.find("IN (:t0)") != std::string::npos);
    }
    SECTION("updated_from_affected counts inserted and updated rows as affected") {
        // 4 rows: 1 new, 2 changed, 1 identical (skipped by the WHERE) -> 3 affected.
        CHECK(d->updated_from_affected(3, 1, 4) == 2);
    }
}

TEST_CASE("mysql dialect golden SQL", "[unit]") {
    const auto d = drivers::mysql::make_dialect();
    const Table t = small_table();

    SECTION("the tables of a run are looked up together, each row naming its table") {
        const auto shape = d->table_shape_queries(3);
        REQUIRE(shape);
        CHECK(shape->column_types ==
              "SELECT table_name, column_name, data_type, character_maximum_length, "
              "numeric_precision, numeric_scale FROM information_schema.columns WHERE "
              "table_schema = DATABASE() AND table_name IN (:t0, :t1, :t2)");
        CHECK(shape->indexes ==
              "SELECT DISTINCT table_name, index_name FROM information_schema.statistics WHERE "
              "table_schema = DATABASE() AND table_name IN (:t0, :t1, :t2)");
        CHECK(shape->unique_columns ==
              "SELECT table_name, MIN(column_name) FROM information_schema.statistics WHERE "
              "table_schema = DATABASE() AND table_name IN (:t0, :t1, :t2) AND non_unique = 0 "
              "GROUP BY table_name, index_name HAVING COUNT(*) = 1 AND COUNT(sub_part) = 0");
    }

    SECTION("create_table uses utf8mb4, a binary key and strict types") {
        CHECK(
            d->create_table(t) ==
            "CREATE TABLE IF NOT EXISTS `small` (`id` varchar(255) CHARACTER SET utf8mb4 "
            "COLLATE utf8mb4_bin NOT NULL, `name` longtext, `amount` decimal(65,20), `active` "
            "boolean, `seen_at` datetime(3), `doc` json, `changed_at` datetime(3), PRIMARY KEY "
            "(`id`), INDEX `ix_small_seen_at` (`seen_at`), UNIQUE INDEX `ix_small_seen_at_id` "
            "(`seen_at`, `id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci");
    }
    SECTION("on MariaDB, keys are compared without padding") {
        const auto maria = drivers::mysql::make_dialect(drivers::mysql::Server::mariadb);
        CHECK(maria->column_type(t.columns[0]) ==
              "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin");
        CHECK(maria->column_type(t.columns[1]) == d->column_type(t.columns[1]));
        using drivers::mysql::Server;
        using drivers::mysql::server_of_version;
        CHECK(server_of_version("10.11.6-MariaDB-0+deb12u1") == Server::mariadb);
        CHECK(server_of_version("5.5.5-10.11.6-MariaDB-log") == Server::mariadb);
        CHECK(server_of_version("8.0.36") == Server::mysql);
        CHECK(server_of_version("8.0.11-TiDB-v7.5.0") == Server::mysql);
        CHECK(server_of_version("") == Server::mysql);
    }
    SECTION("add_column and create_index") {
        CHECK(d->add_column(t, t.columns[1]) == "ALTER TABLE `small` ADD COLUMN `name` longtext");
        CHECK(d->create_index(t, t.indexes[0]) ==
              "CREATE INDEX `ix_small_seen_at` ON `small` (`seen_at`)");
        CHECK(d->create_index(t, t.indexes[1]) ==
              "CREATE UNIQUE INDEX `ix_small_seen_at_id` ON `small` (`seen_at`, `id`)");
    }
    SECTION("upsert of 2 rows refuses another key's row, then decides the change stamp from "
            "the old values") {
        CHECK(d->upsert(t, bound_columns(t), 2) ==
              "INSERT INTO `small` (`id`, `name`, `amount`, `active`, `seen_at`, `doc`, "
              "`changed_at`) VALUES (:p0, :p1, :p2, :p3, :p4, :p5, :p6), (:p7, :p8, :p9, :p10, "
              ":p11, :p12, :p13) ON DUPLICATE KEY UPDATE `id` = IF(BINARY `id` <=> BINARY "
              "VALUES(`id`), `id`, 1/0), `changed_at` = IF(BINARY `name` <=> "
              "BINARY VALUES(`name`) AND BINARY `amount` <=> BINARY VALUES(`amount`) AND BINARY "
              "`active` <=> BINARY VALUES(`active`) AND BINARY `seen_at` <=> BINARY "
              "VALUES(`seen_at`) AND BINARY `doc` <=> BINARY VALUES(`doc`), `changed_at`, "
              "VALUES(`changed_at`)), `name` = VALUES(`name`), `amount` = VALUES(`amount`), "
              "`active` = VALUES(`active`), `seen_at` = VALUES(`seen_at`), `doc` = VALUES(`doc`)");
    }
    SECTION("explain_failure names the guard's division by 0 as another record's row") {
        for (const auto& upsert : {d->upsert(t, bound_columns(t), 1),
                                   *d->upsert_from_table(t, bound_columns(t), "stage")}) {
            const auto why = d->explain_failure(upsert, "Division by 0 while executing a query");
            REQUIRE(why);
            CHECK(why->message.find("would overwrite a stored row of `small` with another `id`: "
                                    "the two meet on a unique index besides the one on `id`") !=
                  std::string::npos);
            CHECK(why->hint.find("SHOW INDEX FROM `small` WHERE Non_unique = 0") !=
                  std::string::npos);
            // Another error of the same statement: left alone.
            CHECK_FALSE(d->explain_failure(upsert, "Duplicate entry 'x' for key 'ix'"));
        }
        // A division by 0 of a statement without the guard: left alone.
        CHECK_FALSE(d->explain_failure("UPDATE `small` SET `amount` = 1/0", "Division by 0"));
        CHECK_FALSE(d->explain_failure("INSERT INTO `small` (`id`) VALUES (1/0)", "Division by 0"));
    }
    SECTION("upsert_from_table qualifies the target's columns, which the stage shares") {
        CHECK(d->upsert_from_table(t, bound_columns(t), "stage") ==
              "INSERT INTO `small` (`id`, `name`, `amount`, `active`, `seen_at`, `doc`, "
              "`changed_at`) SELECT s.`id`, s.`name`, s.`amount`, s.`active`, s.`seen_at`, "
              "s.`doc`, s.`changed_at` FROM `stage` AS s ON DUPLICATE KEY UPDATE "
              "`small`.`id` = IF(BINARY `small`.`id` <=> BINARY VALUES(`id`), `small`.`id`, "
              "1/0), `small`.`changed_at` = IF(BINARY `small`.`name` <=> BINARY VALUES(`name`) AND "
              "BINARY `small`.`amount` <=> BINARY VALUES(`amount`) AND BINARY `small`.`active` "
              "<=> BINARY VALUES(`active`) AND BINARY `small`.`seen_at` <=> BINARY "
              "VALUES(`seen_at`) AND BINARY `small`.`doc` <=> BINARY VALUES(`doc`), "
              "`small`.`changed_at`, VALUES(`changed_at`)), `small`.`name` = VALUES(`name`), "
              "`small`.`amount` = VALUES(`amount`), `small`.`active` = VALUES(`active`), "
              "`small`.`seen_at` = VALUES(`seen_at`), `small`.`doc` = VALUES(`doc`)");
    }
    SECTION("select_by_keys") {
        CHECK(d->select_by_keys(t, {"id", "name"}, 3) ==
              "SELECT `id`, `name` FROM `small` WHERE `id` IN (:k0, :k1, :k2)");
    }
    SECTION("try_lock_query takes a named lock without waiting") {
        CHECK(d->try_lock_query() == "SELECT GET_LOCK(:lock, 0)");
        CHECK(d->lock_parameter("job1") == "crmsync:0fa5f03a2fe5da42d187527e86f47de5");
        CHECK(d->lock_parameter("job1").size() <= 64);
    }
    SECTION("quote doubles the backtick") {
        CHECK(d->quote("a\"b") == "`a\"b`");
        CHECK(d->quote("a`b") == "`a``b`");
        CHECK(d->quote("a]b") == "`a]b`");
    }
    SECTION("updated_from_affected reads CLIENT_FOUND_ROWS counts (1 new, 2 changed, 1 same)") {
        // inserted 1 + updated 2*2 + unchanged 1 = 6 affected for 4 rows.
        CHECK(d->updated_from_affected(6, 1, 4) == 2);
        CHECK(d->updated_from_affected(4, 4, 4) == 0);
    }
}

TEST_CASE("sqlite dialect golden SQL", "[unit]") {
    const auto d = drivers::sqlite::make_dialect();
    const Table t = small_table();

    SECTION("create_table uses affinities and an inline primary key") {
        CHECK(
            d->create_table(t) ==
            R"(CREATE TABLE IF NOT EXISTS "small" ("id" TEXT NOT NULL PRIMARY KEY, "name" TEXT, "amount" NUMERIC, "active" INTEGER, "seen_at" TEXT, "doc" TEXT, "changed_at" TEXT))");
    }
    SECTION("add_column and create_index") {
        CHECK(d->add_column(t, t.columns[1]) == R"(ALTER TABLE "small" ADD COLUMN "name" TEXT)");
        CHECK(
            d->create_index(t, t.indexes[1]) ==
            R"(CREATE UNIQUE INDEX IF NOT EXISTS "ix_small_seen_at_id" ON "small" ("seen_at", "id"))");
    }
    SECTION("upsert of 2 rows uses positional placeholders") {
        CHECK(
            d->upsert(t, bound_columns(t), 2) ==
            R"(INSERT INTO "small" AS t ("id", "name", "amount", "active", "seen_at", "doc", "changed_at") VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "amount" = excluded."amount", "active" = excluded."active", "seen_at" = excluded."seen_at", "doc" = excluded."doc", "changed_at" = excluded."changed_at" WHERE t."name" IS NOT excluded."name" OR t."amount" IS NOT excluded."amount" OR t."active" IS NOT excluded."active" OR t."seen_at" IS NOT excluded."seen_at" OR t."doc" IS NOT excluded."doc")");
    }
    SECTION("select_by_keys") {
        CHECK(d->select_by_keys(t, {"id"}, 2) ==
              R"(SELECT "id" FROM "small" WHERE "id" IN (?, ?))");
    }
    SECTION("locks by a file, not by a query") { CHECK_FALSE(d->try_lock_query().has_value()); }
    SECTION("quote doubles the double quote") {
        CHECK(d->quote("a\"b") == "\"a\"\"b\"");
        CHECK(d->quote("a`b") == "\"a`b\"");
        CHECK(d->quote("a]b") == "\"a]b\"");
    }
}

TEST_CASE("sqlserver dialect golden SQL", "[unit][sqlserver]") {
    const auto d = drivers::sqlserver::make_dialect();
    const Table t = small_table();

    SECTION("column types have explicit lengths and a binary collation for keys") {
        CHECK(d->column_type(column("k", ColumnType::key)) ==
              "nvarchar(255) COLLATE Latin1_General_100_BIN2");
        CHECK(d->column_type(column("t", ColumnType::text)) == "nvarchar(max)");
        CHECK(d->column_type(column("j", ColumnType::json)) == "nvarchar(max)");
        CHECK(d->column_type(column("n", ColumnType::number)) == "decimal(38,10)");
        CHECK(d->column_type(column("i", ColumnType::integer)) == "bigint");
        CHECK(d->column_type(column("b", ColumnType::boolean)) == "bit");
        CHECK(d->column_type(column("ts", ColumnType::timestamp)) == "datetime2(3)");
    }
    SECTION("create_table is guarded by OBJECT_ID") {
        CHECK(d->create_table(t) ==
              "IF OBJECT_ID(N'[small]', N'U') IS NULL CREATE TABLE [small] ([id] nvarchar(255) "
              "COLLATE Latin1_General_100_BIN2 NOT NULL, [name] nvarchar(max) NULL, [amount] "
              "decimal(38,10) NULL, [active] bit NULL, [seen_at] datetime2(3) NULL, [doc] "
              "nvarchar(max) NULL, [changed_at] datetime2(3) NULL, PRIMARY KEY ([id]))");
    }
    SECTION("create_table escapes a quote in the table name inside the N'' literal") {
        Table q = t;
        q.name = "it's";
        const auto sql = d->create_table(q);
        CHECK(sql.rfind("IF OBJECT_ID(N'[it''s]', N'U') IS NULL CREATE TABLE [it's] (", 0) == 0);
    }
    SECTION("add_column and create_index") {
        CHECK(d->add_column(t, t.columns[1]) ==
              "ALTER TABLE [small] ADD [name] nvarchar(max) NULL");
        CHECK(d->create_index(t, t.indexes[0]) ==
              "CREATE INDEX [ix_small_seen_at] ON [small] ([seen_at])");
        CHECK(d->create_index(t, t.indexes[1]) ==
              "CREATE UNIQUE INDEX [ix_small_seen_at_id] ON [small] ([seen_at], [id])");
    }
    SECTION("the columns unique on their own, and the index added when the key is not") {
        CHECK(d->unique_columns_query() ==
              "SELECT DISTINCT MIN(c.name) FROM sys.indexes i JOIN sys.index_columns ic ON "
              "ic.object_id = i.object_id AND ic.index_id = i.index_id AND "
              "ic.is_included_column = 0 JOIN sys.columns c ON c.object_id = ic.object_id AND "
              "c.column_id = ic.column_id WHERE i.object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) "
              "+ '.' + QUOTENAME(:table)) AND i.is_unique = 1 AND i.has_filter = 0 AND "
              "i.is_disabled = 0 GROUP BY i.index_id HAVING COUNT(*) = 1");
        CHECK(d->create_index(t, {{"id"}, true}) ==
              "CREATE UNIQUE INDEX [ix_small_id] ON [small] ([id])");
    }
    SECTION("upsert of 2 rows is a MERGE that skips identical rows") {
        CHECK(d->upsert(t, bound_columns(t), 2) ==
              "MERGE INTO [small] WITH (HOLDLOCK) AS t USING (VALUES (:p0, :p1, :p2, :p3, :p4, "
              ":p5, :p6), (:p7, :p8, :p9, :p10, :p11, :p12, :p13)) AS s ([id], [name], [amount], "
              "[active], [seen_at], [doc], [changed_at]) ON t.[id] = s.[id] WHEN MATCHED AND "
              "(t.[name] COLLATE Latin1_General_100_BIN2 <> s.[name] COLLATE "
              "Latin1_General_100_BIN2 OR (t.[name] IS NULL AND s.[name] IS NOT NULL) OR "
              "(t.[name] IS NOT NULL AND s.[name] IS NULL) OR t.[amount] <> s.[amount] OR "
              "(t.[amount] IS NULL AND s.[amount] IS NOT NULL) OR (t.[amount] IS NOT NULL AND "
              "s.[amount] IS NULL) OR t.[active] <> s.[active] OR (t.[active] IS NULL AND "
              "s.[active] IS NOT NULL) OR (t.[active] IS NOT NULL AND s.[active] IS NULL) OR "
              "t.[seen_at] <> s.[seen_at] OR (t.[seen_at] IS NULL AND s.[seen_at] IS NOT NULL) "
              "OR (t.[seen_at] IS NOT NULL AND s.[seen_at] IS NULL) OR t.[doc] COLLATE "
              "Latin1_General_100_BIN2 <> s.[doc] COLLATE Latin1_General_100_BIN2 OR (t.[doc] "
              "IS NULL AND s.[doc] IS NOT NULL) OR (t.[doc] IS NOT NULL AND s.[doc] IS NULL)) "
              "THEN UPDATE SET t.[name] = s.[name], t.[amount] = s.[amount], t.[active] = "
              "s.[active], t.[seen_at] = s.[seen_at], t.[doc] = s.[doc], t.[changed_at] = "
              "s.[changed_at] WHEN NOT MATCHED THEN INSERT ([id], [name], [amount], [active], "
              "[seen_at], [doc], [changed_at]) VALUES (s.[id], s.[name], s.[amount], s.[active], "
              "s.[seen_at], s.[doc], s.[changed_at]);");
    }
    SECTION("select_by_keys") {
        CHECK(d->select_by_keys(t, {"id", "name"}, 3) ==
              "SELECT [id], [name] FROM [small] WHERE [id] IN (:k0, :k1, :k2)");
    }
    SECTION("holds_rows_query needs no LIMIT") {
        CHECK(d->holds_rows_query(t) ==
              "SELECT CASE WHEN EXISTS (SELECT 1 FROM [small]) THEN 1 ELSE 0 END");
    }
    SECTION("try_lock_query takes a session app lock without waiting") {
        CHECK(d->try_lock_query() ==
              "DECLARE @result int; EXEC @result = sp_getapplock @Resource = :lock, @LockMode = "
              "'Exclusive', @LockOwner = 'Session', @LockTimeout = 0; SELECT CASE WHEN @result "
              ">= 0 THEN 1 ELSE 0 END");
        CHECK(d->lock_parameter("job1").size() <= 255);
    }
    SECTION("column and index lookups are scoped to the connection's schema") {
        CHECK(d->list_columns_query() ==
              "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
              "SCHEMA_NAME() AND TABLE_NAME = :table");
        CHECK(d->list_indexes_query() ==
              "SELECT name FROM sys.indexes WHERE object_id = "
              "OBJECT_ID(QUOTENAME(SCHEMA_NAME()) + '.' + QUOTENAME(:table)) AND name IS NOT NULL");
    }
    SECTION("session_setup reports row counts and aborts transactions on error") {
        const std::vector<std::string> expected{"SET NOCOUNT OFF", "SET XACT_ABORT ON"};
        CHECK(d->session_setup() == expected);
    }
    SECTION("quote doubles the closing bracket") {
        CHECK(d->quote("a\"b") == "[a\"b]");
        CHECK(d->quote("a`b") == "[a`b]");
        CHECK(d->quote("a]b") == "[a]]b]");
    }
    SECTION("MERGE counts inserted and updated rows as affected") {
        CHECK(d->updated_from_affected(3, 1, 4) == 2);
    }
    SECTION("the Dialfire tables never use a bare nvarchar (which means nvarchar(1))") {
        const auto schema = drivers::dialfire::DialfireSchema::build(
            "dfire_", {{"firstname", "text"}, {"revenue", "number"}}, 100,
            d->max_identifier_bytes());
        std::vector<const Table*> tables = schema.tables();
        const auto own = sql::load_schema("crmsync.json", "");
        for (const auto& spec : own) {
            tables.push_back(&spec.table);
        }
        const std::regex bare("nvarchar(?!\\()");
        for (const auto* table : tables) {
            INFO(table->name);
            const auto ddl = d->create_table(*table);
            CHECK_FALSE(std::regex_search(ddl, bare));
            for (const auto& c : table->columns) {
                CHECK_FALSE(std::regex_search(d->add_column(*table, c), bare));
            }
        }
    }
    SECTION("a BatchWriter chunk of the contacts table stays within 2100 parameters") {
        CHECK(d->max_parameters() <= 2100);
        for (std::size_t fields : {0u, 10u, 100u, 500u, 1000u}) {
            std::vector<drivers::dialfire::CampaignField> custom;
            for (std::size_t i = 0; i < fields; ++i) {
                custom.push_back({"field_" + std::to_string(i), i % 2 ? "number" : "text"});
            }
            const auto schema = drivers::dialfire::DialfireSchema::build("dfire_", custom, 0,
                                                                         d->max_identifier_bytes());
            const Table& contacts = schema.specs[schema.contacts].table;
            const auto columns = bound_columns(contacts);
            // BatchWriter's chunk: as many rows as the parameter limit allows, at most 1000.
            const std::size_t rows = std::max<std::size_t>(
                1, std::min<std::size_t>(1000, d->max_parameters() / columns.size()));
            const auto merge = d->upsert(contacts, columns, rows);
            INFO(fields << " custom fields, " << columns.size() << " columns, " << rows
                        << " rows per MERGE");
            CHECK(rows * columns.size() <= 2100);
            CHECK(count_of(merge, ":p") == rows * columns.size());
            CHECK(d->select_by_keys(contacts, {contacts.primary_key}, rows).size() > 0);
        }
    }
}

TEST_CASE("Dialect select_all, update_by_key and the status queries", "[unit][sqlserver]") {
    const Table t = small_table();
    const std::vector<std::string> names = {"id", "name", "changed_at"};
    const std::vector<const Column*> set = {t.find("name"), t.find("changed_at")};

    SECTION("postgres numbers its placeholders; the key comes last") {
        const auto d = drivers::postgres::make_dialect();
        CHECK(d->select_all(t, names) == R"(SELECT "id", "name", "changed_at" FROM "small")");
        CHECK(d->update_by_key(t, set) ==
              R"(UPDATE "small" SET "name" = :p0, "changed_at" = :p1 WHERE "id" = :p2)");
        CHECK(
            d->job_states_query() ==
            R"(SELECT "job", "checkpoint", "progress", "updated_at" FROM "crmsync_state" ORDER BY "job")");
        CHECK(d->reject_counts_query() ==
              R"(SELECT "job", COUNT(*) FROM "crmsync_rejects" GROUP BY "job")");
    }
    SECTION("mysql quotes with backticks") {
        const auto d = drivers::mysql::make_dialect();
        CHECK(d->select_all(t, names) == "SELECT `id`, `name`, `changed_at` FROM `small`");
        CHECK(d->update_by_key(t, set) ==
              "UPDATE `small` SET `name` = :p0, `changed_at` = :p1 WHERE `id` = :p2");
        CHECK(d->job_states_query() == "SELECT `job`, `checkpoint`, `progress`, `updated_at` FROM "
                                       "`crmsync_state` ORDER BY `job`");
        CHECK(d->reject_counts_query() ==
              "SELECT `job`, COUNT(*) FROM `crmsync_rejects` GROUP BY `job`");
    }
    SECTION("sqlite uses positional placeholders") {
        const auto d = drivers::sqlite::make_dialect();
        CHECK(d->select_all(t, names) == R"(SELECT "id", "name", "changed_at" FROM "small")");
        CHECK(d->update_by_key(t, set) ==
              R"(UPDATE "small" SET "name" = ?, "changed_at" = ? WHERE "id" = ?)");
        CHECK(
            d->job_states_query() ==
            R"(SELECT "job", "checkpoint", "progress", "updated_at" FROM "crmsync_state" ORDER BY "job")");
        CHECK(d->reject_counts_query() ==
              R"(SELECT "job", COUNT(*) FROM "crmsync_rejects" GROUP BY "job")");
    }
    SECTION("sqlserver quotes with brackets") {
        const auto d = drivers::sqlserver::make_dialect();
        CHECK(d->select_all(t, names) == "SELECT [id], [name], [changed_at] FROM [small]");
        CHECK(d->update_by_key(t, set) ==
              "UPDATE [small] SET [name] = :p0, [changed_at] = :p1 WHERE [id] = :p2");
        CHECK(d->job_states_query() == "SELECT [job], [checkpoint], [progress], [updated_at] FROM "
                                       "[crmsync_state] ORDER BY [job]");
        CHECK(d->reject_counts_query() ==
              "SELECT [job], COUNT(*) FROM [crmsync_rejects] GROUP BY [job]");
    }
}

TEST_CASE("Dialect::value_problem", "[unit][sqlserver]") {
    const auto pg = drivers::postgres::make_dialect();
    const auto my = drivers::mysql::make_dialect();
    const auto ss = drivers::sqlserver::make_dialect();
    const auto lite = drivers::sqlite::make_dialect();
    const std::vector<const Dialect*> all{pg.get(), my.get(), ss.get(), lite.get()};
    const Column key = column("id", ColumnType::key);
    const Column number = column("amount", ColumnType::number);
    const Column stamp = column("fired", ColumnType::timestamp);

    SECTION("a key of 255 characters fits everywhere, 256 characters fits nowhere") {
        for (const auto* d : all) {
            INFO(d->name());
            CHECK_FALSE(d->value_problem(key, std::string(255, 'k')).has_value());
            CHECK_FALSE(d->value_problem(key, repeat("\xC3\xA4", 255)).has_value());
            const auto problem = d->value_problem(key, std::string(256, 'k'));
            REQUIRE(problem.has_value());
            CHECK(problem->find("id") != std::string::npos);
        }
    }
    SECTION("SQL Server counts a key in UTF-16 units, so 200 emoji do not fit nvarchar(255)") {
        CHECK(ss->value_problem(key, repeat("\xF0\x9F\x98\x80", 200)).has_value());
        CHECK_FALSE(ss->value_problem(key, repeat("\xF0\x9F\x98\x80", 127)).has_value());
    }
    SECTION("a 50-digit number fits PostgreSQL but not MySQL or SQL Server") {
        const std::string big = "1" + std::string(49, '0');
        CHECK_FALSE(pg->value_problem(number, big).has_value());
        CHECK(my->value_problem(number, big).has_value());
        CHECK(ss->value_problem(number, big).has_value());
        CHECK(my->value_problem(number, "-" + big).has_value());
    }
    SECTION("digits at the limits of decimal(65,20) and decimal(38,10)") {
        CHECK_FALSE(my->value_problem(number, std::string(45, '9') + "." + std::string(20, '9'))
                        .has_value());
        CHECK(my->value_problem(number, std::string(46, '9')).has_value());
        CHECK(my->value_problem(number, "0." + std::string(21, '1')).has_value());
        CHECK_FALSE(ss->value_problem(number, std::string(28, '9') + "." + std::string(10, '9'))
                        .has_value());
        CHECK(ss->value_problem(number, std::string(29, '9')).has_value());
        CHECK(ss->value_problem(number, "0.12345678901").has_value());
        CHECK_FALSE(pg->value_problem(number, "0.12345678901").has_value());
    }
    SECTION("ordinary numbers fit everywhere") {
        for (const auto* d : all) {
            INFO(d->name());
            for (const char* v : {"0", "12.5", "-12.5", "1000000", "0.0001"}) {
                CHECK_FALSE(d->value_problem(number, v).has_value());
            }
        }
    }
    SECTION("a timestamp before the year 1000 does not fit MySQL's datetime") {
        const std::string early = "0999-12-31 23:59:59.000";
        CHECK(my->value_problem(stamp, early).has_value());
        CHECK_FALSE(my->value_problem(stamp, "1000-01-01 00:00:00.000").has_value());
        CHECK_FALSE(pg->value_problem(stamp, early).has_value());
        CHECK_FALSE(ss->value_problem(stamp, early).has_value());
    }
    SECTION("an integer beyond 64 bits and a year past 9999 fit no dialect") {
        const Column count = column("count", ColumnType::integer);
        for (const auto* d : all) {
            INFO(d->name());
            CHECK(d->value_problem(count, "1" + std::string(30, '0')).has_value());
            CHECK(d->value_problem(count, "9223372036854775808").has_value());
            CHECK_FALSE(d->value_problem(count, "9223372036854775807").has_value());
            CHECK_FALSE(d->value_problem(count, "-9223372036854775808").has_value());
            CHECK(d->value_problem(stamp, "10000-01-01 04:30:00.000").has_value());
            CHECK_FALSE(d->value_problem(stamp, "9999-12-31 23:59:59.999").has_value());
        }
    }
    SECTION("year 0 fits no dialect") {
        for (const auto* d : {pg.get(), my.get(), ss.get()}) {
            INFO(d->name());
            CHECK(d->value_problem(stamp, "0000-01-01 00:00:00.000").has_value());
        }
    }
    SECTION("text, booleans and json are never a problem") {
        for (const auto* d : all) {
            CHECK_FALSE(d->value_problem(column("t", ColumnType::text), std::string(100000, 'x'))
                            .has_value());
            CHECK_FALSE(d->value_problem(column("b", ColumnType::boolean), "1").has_value());
            CHECK_FALSE(d->value_problem(column("j", ColumnType::json), "{}").has_value());
        }
    }
}

TEST_CASE("sqlserver connect_string", "[unit][sqlserver]") {
    SECTION("is a DSN-less FreeTDS string") {
        const auto s = drivers::sqlserver::connect_string(crmsync::cli::parse_target_url(
            "sqlserver://my_user:my_password@db.example:1433/my_database"));
        CHECK((s.rfind("DRIVER=/", 0) == 0 || s.rfind("DRIVER={FreeTDS};", 0) == 0));
        CHECK(after_driver(s) ==
              "SERVER=db.example;PORT=1433;DATABASE=my_database;UID=my_user;PWD=my_password;"
              "TDS_Version=7.4;ClientCharset=UTF-8");
    }
    SECTION("dbsync2's instance form with a port connects to that port") {
        const auto s = drivers::sqlserver::connect_string(
            crmsync::cli::parse_target_url("sqlserver://u:pw@host:1433/instance/db"));
        CHECK(after_driver(s) ==
              "SERVER=host;PORT=1433;DATABASE=db;UID=u;PWD=pw;TDS_Version=7.4;ClientCharset=UTF-8");
    }
    SECTION("the instance form without a port asks the SQL Server Browser (no PORT, which "
            "would override the instance in FreeTDS)") {
        const auto s = drivers::sqlserver::connect_string(
            crmsync::cli::parse_target_url("sqlserver://u:pw@host/instance/db"));
        CHECK(after_driver(s).rfind("SERVER=host\\instance;", 0) == 0);
        CHECK(s.find(";PORT=") == std::string::npos);
    }
    SECTION("a password with ; and } is braced, } doubled") {
        const auto s = drivers::sqlserver::connect_string(
            crmsync::cli::parse_target_url("sqlserver://u:pa%3Bss%7Dword@h:1433/db"));
        CHECK(after_driver(s) ==
              "SERVER=h;PORT=1433;DATABASE=db;UID=u;PWD={pa;ss}}word};TDS_Version=7.4;"
              "ClientCharset=UTF-8");
    }
    SECTION("a password starting with { or holding = or a space is braced") {
        const auto s = drivers::sqlserver::connect_string(
            crmsync::cli::parse_target_url("sqlserver://u:%7Bx%3Dy%20z@h:1433/db"));
        CHECK(s.find(";PWD={{x=y z};") != std::string::npos);
    }
}

TEST_CASE("postgres and mysql connect_string", "[unit]") {
    const auto url = util::parse_database_url("postgres://u:pa'ss%5Cword@h/db?sslmode=require");
    REQUIRE(url.password == "pa'ss\\word");

    SECTION("postgres quotes values and escapes ' and \\ with a backslash") {
        CHECK(
            drivers::postgres::connect_string(url) ==
            R"(host='h' port=5432 dbname='db' user='u' password='pa\'ss\\word' application_name='crmsync' connect_timeout=10 sslmode='verify-full')");
    }
    SECTION("postgres passes only parameters with plain names") {
        auto hostile = url;
        hostile.params = {{"sslmode", "verify-full"}, {"x' password='evil", "1"}};
        const auto s = drivers::postgres::connect_string(hostile);
        CHECK(s.find("evil") == std::string::npos);
        CHECK(s.find("sslmode='verify-full'") != std::string::npos);
    }
    SECTION("mysql quotes values and escapes ' and \\ with a backslash") {
        auto my = url;
        my.scheme = "mysql";
        my.params.clear();
        CHECK(
            drivers::mysql::connect_string(my) ==
            R"(host='h' port=3306 db='db' user='u' password='pa\'ss\\word' charset=utf8mb4 connect_timeout=10 local_infile=1)");
    }
    SECTION("mysql refuses a TLS parameter it cannot honour instead of dropping it") {
        const auto tls = util::parse_database_url("mysql://u:pw@h:3306/db?ssl-mode=REQUIRED");
        CHECK_THROWS_AS(drivers::mysql::check_params(tls), crmsync::Error);
        const auto ca = util::parse_database_url("mysql://u:pw@h:3306/db?sslca=/etc/ca.pem");
        CHECK_NOTHROW(drivers::mysql::check_params(ca));
        CHECK(drivers::mysql::connect_string(ca).find("sslca='/etc/ca.pem'") != std::string::npos);
        const auto dbsync2 = util::parse_database_url("mysql://u:pw@h:3306/db?useSSL=false");
        CHECK_NOTHROW(drivers::mysql::check_params(dbsync2));
    }
}

TEST_CASE("database TLS: verified when the URL asks for it", "[unit]") {
    const auto pg = [](const std::string& url) {
        return drivers::postgres::connect_string(crmsync::cli::parse_target_url(url));
    };
    SECTION("postgres sslmode=require and prefer become verify-full") {
        CHECK(pg("postgres://u@db.example/d?sslmode=require") ==
              "host='db.example' port=5432 dbname='d' user='u' application_name='crmsync' "
              "connect_timeout=10 sslmode='verify-full'");
        CHECK(pg("postgres://u@db.example/d?sslmode=prefer").find("sslmode='verify-full'") !=
              std::string::npos);
    }
    SECTION("postgres keeps what the URL says otherwise, and sslverify=false is not passed on") {
        CHECK(pg("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/ca.pem") ==
              "host='h' port=5432 dbname='d' user='u' application_name='crmsync' "
              "connect_timeout=10 sslmode='verify-ca' sslrootcert='/ca.pem'");
        CHECK(pg("postgres://u@h/d?sslmode=require&sslverify=false") ==
              "host='h' port=5432 dbname='d' user='u' application_name='crmsync' "
              "connect_timeout=10 sslmode='require'");
        CHECK(pg("postgres://u@h/d?sslmode=disable").find("sslmode='disable'") !=
              std::string::npos);
        CHECK_THROWS_AS(crmsync::cli::parse_target_url("postgres://u@h/d?sslverify=maybe"),
                        crmsync::Error);
    }
    SECTION("postgres without sslmode leaves libpq's default and is not taken as encrypted") {
        const auto url = crmsync::cli::parse_target_url("postgres://u:pw@db.example/d");
        CHECK(drivers::postgres::connect_string(url).find("sslmode") == std::string::npos);
        CHECK_FALSE(drivers::postgres::encrypts(url));
        CHECK(drivers::postgres::encrypts(
            crmsync::cli::parse_target_url("postgres://u:pw@db.example/d?sslmode=require")));
    }
    SECTION("mysql: a client certificate without a CA to verify against is refused") {
        CHECK_THROWS_AS(crmsync::cli::parse_target_url(
                            "mysql://u:pw@db.example/d?sslcert=/c.pem&sslkey=/k.pem"),
                        crmsync::Error);
        const auto unverified = crmsync::cli::parse_target_url(
            "mysql://u:pw@db.example/d?sslcert=/c.pem&sslkey=/k.pem&sslverify=false");
        CHECK(drivers::mysql::connect_string(unverified).find("sslverify") == std::string::npos);
        const auto verified =
            crmsync::cli::parse_target_url("mysql://u:pw@db.example/d?sslca=/ca.pem");
        CHECK(drivers::mysql::connect_string(verified) ==
              "host='db.example' port=3306 db='d' user='u' password='pw' charset=utf8mb4 "
              "connect_timeout=10 local_infile=1 sslca='/ca.pem'");
        CHECK(drivers::mysql::encrypts(verified));
    }
    SECTION("sqlserver encrypt=strict asks FreeTDS to require encryption") {
        const auto url =
            crmsync::cli::parse_target_url("sqlserver://u:pw@db.example:1433/d?encrypt=strict");
        CHECK(after_driver(drivers::sqlserver::connect_string(url)) ==
              "SERVER=db.example;PORT=1433;DATABASE=d;UID=u;PWD=pw;TDS_Version=7.4;"
              "ClientCharset=UTF-8;Encryption=require");
        CHECK(drivers::sqlserver::encrypts(url));
        CHECK_THROWS_AS(
            crmsync::cli::parse_target_url("sqlserver://u:pw@h:1433/d?TrustServerCertificate=1"),
            crmsync::Error);
    }
}

TEST_CASE("cli::sends_password_in_clear", "[unit]") {
    const auto clear = [](const std::string& url) {
        return crmsync::cli::sends_password_in_clear(crmsync::cli::parse_target_url(url));
    };
    CHECK(clear("postgres://u:pw@db.example/d"));
    CHECK(clear("mysql://u:pw@10.1.2.3/d"));
    CHECK(clear("sqlserver://u:pw@db.example:1433/d"));
    CHECK_FALSE(clear("postgres://u:pw@127.0.0.1/d"));
    CHECK_FALSE(clear("postgres://u:pw@localhost/d"));
    CHECK_FALSE(clear("postgres://u@db.example/d"));
    CHECK_FALSE(clear("postgres://u:pw@db.example/d?sslmode=require"));
    CHECK_FALSE(clear("mysql://u:pw@db.example/d?sslca=/ca.pem"));
    CHECK_FALSE(clear("sqlserver://u:pw@db.example:1433/d?encrypt=strict"));
    CHECK_FALSE(clear("sqlite:///tmp/x.db"));
}

TEST_CASE("Dialect::widen_column widens what dbsync2 made too narrow, and nothing else",
          "[unit][sqlserver]") {
    const Table t = small_table(); // id key (primary key), name text, amount number
    const Column& id = t.columns[0];
    const Column& name = t.columns[1];
    const Column& amount = t.columns[2];
    const Column& seen_at = t.columns[4];
    using sql::ExistingColumn;
    const ExistingColumn varchar50{"x", "character varying", 50, std::nullopt, std::nullopt};
    const ExistingColumn pg_unbounded{"x", "character varying", std::nullopt, std::nullopt,
                                      std::nullopt};
    const ExistingColumn pg_text{"x", "text", std::nullopt, std::nullopt, std::nullopt};
    const ExistingColumn varchar255{"x", "character varying", 255, std::nullopt, std::nullopt};
    const ExistingColumn decimal10{"x", "numeric", std::nullopt, 10, 0};

    SECTION("postgres: bounded varchar to text or varchar(255), constrained numeric to numeric") {
        const auto d = drivers::postgres::make_dialect();
        CHECK(d->widen_column(t, name, varchar50) ==
              R"(ALTER TABLE "small" ALTER COLUMN "name" TYPE text)");
        CHECK(d->widen_column(t, id, varchar50) ==
              R"(ALTER TABLE "small" ALTER COLUMN "id" TYPE varchar(255))");
        CHECK(d->widen_column(t, amount, decimal10) ==
              R"(ALTER TABLE "small" ALTER COLUMN "amount" TYPE numeric)");
        CHECK_FALSE(d->widen_column(t, name, pg_unbounded));
        CHECK_FALSE(d->widen_column(t, name, pg_text));
        CHECK_FALSE(d->widen_column(t, id, varchar255));
        CHECK_FALSE(
            d->widen_column(t, amount, {"x", "numeric", std::nullopt, std::nullopt, std::nullopt}));
        // A timestamp kept as dbsync2's varchar(50) holds crmsync's text form: no retyping.
        CHECK_FALSE(d->widen_column(t, seen_at, varchar50));
        // Not a widening: text into a number column, or into jsonb.
        CHECK_FALSE(d->widen_column(t, amount, varchar50));
        CHECK_FALSE(d->widen_column(t, t.columns[5], varchar50));
    }
    SECTION("mysql: MODIFY repeats NOT NULL, text types below longtext widen") {
        const auto d = drivers::mysql::make_dialect();
        CHECK(d->widen_column(t, id, {"x", "varchar", 50, std::nullopt, std::nullopt}) ==
              "ALTER TABLE `small` MODIFY COLUMN `id` varchar(255) CHARACTER SET utf8mb4 COLLATE "
              "utf8mb4_bin NOT NULL");
        CHECK(d->widen_column(t, name, {"x", "text", 32767, std::nullopt, std::nullopt}) ==
              "ALTER TABLE `small` MODIFY COLUMN `name` longtext");
        CHECK(d->widen_column(t, amount, {"x", "decimal", std::nullopt, 10, 0}) ==
              "ALTER TABLE `small` MODIFY COLUMN `amount` decimal(65,20)");
        CHECK_FALSE(
            d->widen_column(t, name, {"x", "longtext", 4294967295LL, std::nullopt, std::nullopt}));
        CHECK_FALSE(d->widen_column(t, amount, {"x", "decimal", std::nullopt, 65, 20}));
        CHECK_FALSE(d->widen_column(t, amount, {"x", "bigint", std::nullopt, 19, 0}));
    }
    SECTION("sqlserver: widens other columns, never a primary key column in place") {
        const auto d = drivers::sqlserver::make_dialect();
        CHECK(d->widen_column(t, name, {"x", "nvarchar", 1, std::nullopt, std::nullopt}) ==
              "ALTER TABLE [small] ALTER COLUMN [name] nvarchar(max) NULL");
        CHECK(d->widen_column(t, name, {"x", "text", 2147483647LL, std::nullopt, std::nullopt}) ==
              "ALTER TABLE [small] ALTER COLUMN [name] nvarchar(max) NULL");
        CHECK(d->widen_column(t, amount, {"x", "decimal", std::nullopt, 18, 0}) ==
              "ALTER TABLE [small] ALTER COLUMN [amount] decimal(38,10) NULL");
        CHECK_FALSE(d->widen_column(t, id, {"x", "nvarchar", 50, std::nullopt, std::nullopt}));
        CHECK_FALSE(d->widen_column(t, name, {"x", "nvarchar", -1, std::nullopt, std::nullopt}));
    }
    SECTION("sqlite enforces no widths, so it reads none") {
        CHECK_FALSE(drivers::sqlite::make_dialect()->column_types_query());
    }
    SECTION("sqlite and sql server are asked table by table") {
        CHECK_FALSE(drivers::sqlite::make_dialect()->table_shape_queries(3));
        CHECK_FALSE(drivers::sqlserver::make_dialect()->table_shape_queries(3));
    }
}
