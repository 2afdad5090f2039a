// One conformance suite for every database driver: the same behaviours on SQLite, PostgreSQL
// and MariaDB (real servers, started by tests/run.sh). SQL Server has no server here; its SQL
// is covered by the golden tests in tests/unit/test_sql_dialect_golden.cpp.

#include "tests/integration/support.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/batch_writer.hpp"
#include "lib/sql/schema_manager.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"

#include <catch2/catch.hpp>

#include <set>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace crmsync;
using crmsync::testing::TempDir;

namespace {

sql::Table sample_table(const std::string& name) {
    sql::Table t;
    t.name = name;
    t.primary_key = "id";
    t.changed_at_column = "$changed";
    t.columns = {{"id", sql::ColumnType::key},        {"label", sql::ColumnType::text},
                 {"amount", sql::ColumnType::number}, {"count", sql::ColumnType::integer},
                 {"flag", sql::ColumnType::boolean},  {"at", sql::ColumnType::timestamp},
                 {"doc", sql::ColumnType::json},      {"$changed", sql::ColumnType::timestamp}};
    t.indexes = {{{"at"}, false}};
    return t;
}

sql::Row row(const std::string& id, const std::string& label, const char* amount = "12.5") {
    return {id,
            label,
            std::string(amount),
            std::string("7"),
            std::string("1"),
            std::string("2024-01-02 03:04:05.678"),
            std::string(R"({"a":1})"),
            std::nullopt};
}

// Keys of the rows that pad a batch past the writer's bulk threshold (50 rows), so that the
// same checks run through the bulk path (COPY, LOAD DATA) too. The padding rows never change:
// after their first write they count as unchanged, and write() leaves them out of its counts.
constexpr int k_padding_rows = 60;
const char* const k_padding_prefix = "~pad";

long stored_rows(sql::Database& db, const sql::Table& table) {
    return crmsync::testing::count_rows(db, table.name,
                                        db.dialect().quote("id") + " NOT LIKE '~pad%'");
}

sql::WriteCounts write(sql::Database& db, const sql::Table& table, std::vector<sql::Row> rows,
                       bool pad, std::vector<sql::RejectedRow>* rejected = nullptr,
                       const std::string& changed_at = "2024-05-05 05:05:05.000") {
    long padding_stored = 0;
    if (pad) {
        padding_stored = crmsync::testing::count_rows(db, table.name,
                                                      db.dialect().quote("id") + " LIKE '~pad%'");
        const std::size_t width = rows.empty() ? table.columns.size() : rows.front().size();
        for (int i = 0; i < k_padding_rows; ++i) {
            sql::Row padding = row(k_padding_prefix + std::to_string(i), "padding");
            padding.resize(width);
            rows.push_back(std::move(padding));
        }
    }
    sql::BatchWriter writer(db);
    std::vector<sql::RejectedRow> sink;
    sql::Transaction tx(db);
    auto counts = writer.upsert({&table, std::move(rows)}, changed_at, rejected ? *rejected : sink);
    tx.commit();
    if (pad) {
        counts.inserted -= k_padding_rows - padding_stored;
        counts.unchanged -= padding_stored;
    }
    return counts;
}

// `table` as another tool might have made it: the same columns, no primary key, and
// `extra_index` (a CREATE INDEX statement, or nothing) as its only index.
void create_without_key(sql::Database& db, const sql::Table& table,
                        const std::string& extra_index = "") {
    const auto& d = db.dialect();
    std::string sql = "CREATE TABLE " + d.quote(table.name) + " (";
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
        sql += (i ? ", " : "") + d.quote(table.columns[i].name) + " " +
               d.column_type(table.columns[i]);
    }
    db.execute(sql + ")");
    if (!extra_index.empty()) {
        db.execute(extra_index);
    }
}

// How many LOAD DATA statements this MariaDB session has run.
long loads_run(sql::Database& db) {
    const auto rows = db.query("SHOW SESSION STATUS LIKE 'Com_load'");
    return std::stol(rows.at(0).at(1).value_or("0"));
}

// The message and hint of the error schema.ensure(table) must throw; empty when it did not.
std::pair<std::string, std::string> ensure_error(sql::SchemaManager& schema,
                                                 const sql::Table& table) {
    try {
        schema.ensure(table);
    } catch (const crmsync::Error& e) {
        return {e.what(), e.hint()};
    }
    return {};
}

std::string value_of(sql::Database& db, const sql::Table& table, const std::string& column,
                     const std::string& id) {
    const auto rows = db.query(db.dialect().select_by_keys(table, {column}, 1), {id});
    REQUIRE(rows.size() == 1);
    return rows[0][0].value_or("NULL");
}

} // namespace

TEST_CASE("dialect conformance", "[sqlite][postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        for (const bool pad : {false, true}) {
            DYNAMIC_SECTION("on " << target.name
                                  << (pad ? ", batches padded to take the bulk path" : "")) {
                auto db = crmsync::testing::open(target.url);
                const std::string prefix = crmsync::testing::unique_prefix();
                sql::Table table = sample_table(prefix + "contacts");
                sql::SchemaManager schema(*db);

                SECTION("creates a table once and adds a missing column on the next run") {
                    auto first = schema.ensure(table);
                    CHECK(first.created_tables.size() == 1);
                    auto again = schema.ensure(table);
                    CHECK(again.created_tables.empty());
                    CHECK(again.added_columns.empty());
                    CHECK(again.created_indexes.empty());
                    table.columns.push_back({"added later", sql::ColumnType::text});
                    auto grown = schema.ensure(table);
                    CHECK(grown.added_columns ==
                          std::vector<std::string>{table.name + ".added later"});
                    CHECK(schema.existing_columns(table.name).count("added later") == 1);
                }

                SECTION("checks several tables at once as it checks each alone") {
                    // One catalog read for all (Dialect::table_shape_queries), so each table
                    // must get only what its own rows say it lacks.
                    const auto& d = db->dialect();
                    sql::Table missing = sample_table(prefix + "missing");
                    sql::Table keyless = sample_table(prefix + "keyless");
                    create_without_key(*db, keyless);
                    sql::Table grown = sample_table(prefix + "grown");
                    schema.ensure(grown);
                    grown.columns.push_back({"added later", sql::ColumnType::text});
                    sql::Table narrow = sample_table(prefix + "narrow");
                    db->execute("CREATE TABLE " + d.quote(narrow.name) + " (" + d.quote("id") +
                                " varchar(20) NOT NULL PRIMARY KEY)");

                    // `missing` twice: a table listed again is checked once.
                    const auto changes =
                        schema.ensure_all({&missing, &keyless, &grown, &narrow, &missing});
                    CHECK(changes.created_tables == std::vector<std::string>{missing.name});
                    std::vector<std::string> added{grown.name + ".added later"};
                    for (const auto& c : narrow.columns) {
                        if (c.name != "id") {
                            added.push_back(narrow.name + "." + c.name);
                        }
                    }
                    auto added_sorted = changes.added_columns;
                    std::sort(added.begin(), added.end());
                    std::sort(added_sorted.begin(), added_sorted.end());
                    CHECK(added_sorted == added);
                    std::vector<std::string> indexes{
                        sql::index_name(d, missing, missing.indexes[0]),
                        sql::index_name(d, keyless, keyless.indexes[0]),
                        sql::index_name(d, keyless, {{"id"}, true}),
                        sql::index_name(d, narrow, narrow.indexes[0])};
                    auto indexes_sorted = changes.created_indexes;
                    std::sort(indexes.begin(), indexes.end());
                    std::sort(indexes_sorted.begin(), indexes_sorted.end());
                    CHECK(indexes_sorted == indexes);
                    if (d.column_types_query()) {
                        REQUIRE(changes.widened_columns.size() == 1);
                        CHECK(changes.widened_columns[0].rfind(narrow.name + ".id: ", 0) == 0);
                    } else {
                        CHECK(changes.widened_columns.empty());
                    }

                    const auto again = schema.ensure_all({&missing, &keyless, &grown, &narrow});
                    CHECK(again.created_tables.empty());
                    CHECK(again.added_columns.empty());
                    CHECK(again.created_indexes.empty());
                    CHECK(again.widened_columns.empty());
                    for (const auto* t : {&missing, &keyless, &narrow}) {
                        CHECK(write(*db, *t, {row("a", "one")}, pad).inserted == 1);
                        CHECK(write(*db, *t, {row("a", "two")}, pad).updated == 1);
                        CHECK(stored_rows(*db, *t) == 1);
                    }
                }

                SECTION("gives a table made without a key a unique index, so no row repeats") {
                    const auto& d = db->dialect();
                    const std::string key_index = sql::index_name(d, table, {{"id"}, true});
                    std::string why;
                    SECTION("no index at all") { create_without_key(*db, table); }
                    SECTION("only a plain index on the key") {
                        create_without_key(*db, table,
                                           "CREATE INDEX " + d.quote(prefix + "plain") + " ON " +
                                               d.quote(table.name) + " (" + d.quote("id") + ")");
                    }
                    SECTION("a unique index on the key and another column") {
                        create_without_key(*db, table,
                                           "CREATE UNIQUE INDEX " + d.quote(prefix + "pair") +
                                               " ON " + d.quote(table.name) + " (" + d.quote("id") +
                                               ", " + d.quote("count") + ")");
                    }
                    std::string expected_index = key_index;
                    SECTION("a plain index on the key that already has crmsync's name") {
                        create_without_key(*db, table,
                                           "CREATE INDEX " + d.quote(key_index) + " ON " +
                                               d.quote(table.name) + " (" + d.quote("id") + ")");
                        expected_index = "ux_" + table.name + "_id";
                    }
                    const auto changes = schema.ensure(table);
                    CHECK(changes.created_tables.empty());
                    CHECK(std::count(changes.created_indexes.begin(), changes.created_indexes.end(),
                                     expected_index) == 1);
                    CHECK(schema.ensure(table).created_indexes.empty());
                    CHECK(write(*db, table, {row("a", "one")}, pad).inserted == 1);
                    auto again = write(*db, table, {row("a", "two"), row("b", "new")}, pad);
                    CHECK(again.inserted == 1);
                    CHECK(again.updated == 1);
                    CHECK(stored_rows(*db, table) == 2);
                    CHECK(value_of(*db, table, "label", "a") == "two");
                }

                SECTION("indexes a table anew when a renamed one kept the index names") {
                    // A user keeps the old table under another name and lets crmsync start a
                    // fresh one: in PostgreSQL and SQLite the old table's indexes still hold
                    // crmsync's names, which are schema-wide there.
                    const auto& d = db->dialect();
                    const std::string at_index = sql::index_name(d, table, table.indexes[0]);
                    schema.ensure(table);
                    const std::string kept = prefix + "kept";
                    db->execute("ALTER TABLE " + d.quote(table.name) + " RENAME TO " +
                                d.quote(kept));
                    const auto changes = schema.ensure(table);
                    CHECK(changes.created_tables == std::vector<std::string>{table.name});
                    REQUIRE(changes.created_indexes.size() == 1);
                    const std::string created = changes.created_indexes[0];
                    if (d.relation_name_query()) {
                        CHECK(created != at_index);
                        CHECK(created.rfind(at_index, 0) == 0);
                    } else {
                        CHECK(created == at_index); // index names belong to their table
                    }
                    const auto indexes_of = [&](const std::string& t) {
                        std::set<std::string> names;
                        for (const auto& r : db->query(d.list_indexes_query(), {t})) {
                            names.insert(r.at(0).value_or(""));
                        }
                        return names;
                    };
                    CHECK(indexes_of(table.name).count(created) == 1);
                    CHECK(indexes_of(kept).count(at_index) == 1);
                    CHECK(schema.ensure(table).created_indexes.empty());
                    CHECK(write(*db, table, {row("a", "one")}, pad).inserted == 1);
                    db->execute("DROP TABLE " + d.quote(kept));
                }

                SECTION("names the taken names when no name is left for a key's unique index") {
                    const auto& d = db->dialect();
                    if (!d.relation_name_query()) {
                        SUCCEED("index names belong to their table: a name is always free");
                    } else {
                        // The table's own plain index holds crmsync's name; relations of other
                        // tables hold the other two candidates.
                        const std::string own = sql::index_name(d, table, {{"id"}, true});
                        create_without_key(*db, table,
                                           "CREATE INDEX " + d.quote(own) + " ON " +
                                               d.quote(table.name) + " (" + d.quote("id") + ")");
                        const std::string second = util::sanitize_identifier(
                            "ux_" + table.name + "_id", d.max_identifier_bytes());
                        const std::string third = util::sanitize_identifier(
                            second + "_" + util::md5_hex(table.name).substr(0, 8),
                            d.max_identifier_bytes());
                        for (const auto& name : {second, third}) {
                            db->execute("CREATE TABLE " + d.quote(name) + " (x integer)");
                        }
                        const auto [message, hint] = ensure_error(schema, table);
                        INFO(message);
                        CHECK(message.find("has no primary key or unique index on id, and one "
                                           "cannot be added: the index names " +
                                           second + ", " + third + " are all taken") !=
                              std::string::npos);
                        CHECK(hint.find("--table-prefix") != std::string::npos);
                        // Once a name is free again, the next run adds the index under it.
                        db->execute("DROP TABLE " + d.quote(third));
                        const auto changes = schema.ensure(table);
                        CHECK(std::count(changes.created_indexes.begin(),
                                         changes.created_indexes.end(), third) == 1);
                        CHECK(write(*db, table, {row("a", "one")}, pad).inserted == 1);
                        CHECK(write(*db, table, {row("a", "two")}, pad).updated == 1);
                        CHECK(stored_rows(*db, table) == 1);
                        db->execute("DROP TABLE " + d.quote(second));
                    }
                }

                SECTION("leaves a key that is unique by a user's own index as it is") {
                    const auto& d = db->dialect();
                    create_without_key(*db, table,
                                       "CREATE UNIQUE INDEX " + d.quote(prefix + "own") + " ON " +
                                           d.quote(table.name) + " (" + d.quote("id") + ")");
                    const auto changes = schema.ensure(table);
                    CHECK(std::count(changes.created_indexes.begin(), changes.created_indexes.end(),
                                     sql::index_name(d, table, {{"id"}, true})) == 0);
                    write(*db, table, {row("a", "one")}, pad);
                    CHECK(write(*db, table, {row("a", "two")}, pad).updated == 1);
                    CHECK(stored_rows(*db, table) == 1);
                }

                SECTION("refuses a table without a key that already repeats one, and says why") {
                    create_without_key(*db, table);
                    const auto& d = db->dialect();
                    for (int i = 0; i < 2; ++i) {
                        db->execute("INSERT INTO " + d.quote(table.name) + " (" + d.quote("id") +
                                    ", " + d.quote("label") + ") VALUES ('twice', 'x')");
                    }
                    const auto [message, hint] = ensure_error(schema, table);
                    INFO(message);
                    CHECK(message.find("table " + table.name +
                                       " has no primary key or unique index on id") !=
                          std::string::npos);
                    CHECK(hint.find("remove the rows that share a value of id") !=
                          std::string::npos);
                    CHECK(crmsync::testing::count_rows(*db, table.name) == 2);
                }

                SECTION("counts inserted, updated and unchanged rows of an upsert") {
                    schema.ensure(table);
                    auto c1 = write(*db, table, {row("a", "one"), row("b", "two")}, pad);
                    CHECK(c1.inserted == 2);
                    CHECK(c1.updated == 0);
                    auto c2 =
                        write(*db, table, {row("a", "one"), row("b", "TWO"), row("c", "new")}, pad);
                    CHECK(c2.inserted == 1);
                    CHECK(c2.updated == 1);
                    CHECK(c2.unchanged == 1);
                    CHECK(value_of(*db, table, "label", "b") == "TWO");
                }

                SECTION("keeps the change stamp of a row whose content did not change") {
                    schema.ensure(table);
                    write(*db, table, {row("a", "one")}, pad);
                    const auto stamp = value_of(*db, table, "$changed", "a");
                    const auto again = write(*db, table, {row("a", "one")}, pad, nullptr,
                                             "2030-01-01 00:00:00.000");
                    CHECK(again.unchanged == 1);
                    CHECK(value_of(*db, table, "$changed", "a") == stamp);
                }

                SECTION("treats keys that differ only in case as two rows") {
                    schema.ensure(table);
                    auto c = write(*db, table, {row("abc", "lower"), row("ABC", "upper")}, pad);
                    CHECK(c.inserted == 2);
                    CHECK(stored_rows(*db, table) == 2);
                    auto again = write(*db, table, {row("abc", "LOWER")}, pad);
                    CHECK(again.updated == 1);
                    CHECK(value_of(*db, table, "label", "ABC") == "upper");
                }

                SECTION("notices a change that is only in letter case") {
                    schema.ensure(table);
                    write(*db, table, {row("a", "hello")}, pad);
                    auto c = write(*db, table, {row("a", "Hello")}, pad);
                    CHECK(c.updated == 1);
                    CHECK(value_of(*db, table, "label", "a") == "Hello");
                }

                SECTION("stores a 1 MB value, emoji and hostile text byte for byte") {
                    schema.ensure(table);
                    const std::string huge(1024 * 1024, 'x');
                    const std::string hostile =
                        "it's \"quoted\" `tick` ]; DROP TABLE x;-- \xF0\x9F\x98\x80 Zähler";
                    write(*db, table, {row("huge", huge), row("hostile", hostile)}, pad);
                    CHECK(value_of(*db, table, "label", "huge") == huge);
                    CHECK(value_of(*db, table, "label", "hostile") == hostile);
                }

                SECTION("keeps the fraction of numbers") {
                    schema.ensure(table);
                    write(*db, table, {row("n", "x", "1234567.0625")}, pad);
                    const auto stored = value_of(*db, table, "amount", "n");
                    CHECK(std::stod(stored) == Approx(1234567.0625));
                    CHECK(stored.find(".0625") != std::string::npos);
                }

                SECTION("stores timestamps in UTC with milliseconds") {
                    schema.ensure(table);
                    write(*db, table, {row("t", "x")}, pad);
                    CHECK(value_of(*db, table, "at", "t").rfind("2024-01-02 03:04:05", 0) == 0);
                    const auto rows = db->query(
                        "SELECT COUNT(*) FROM " + db->dialect().quote(table.name) + " WHERE " +
                            db->dialect().quote("at") + " > " + db->dialect().placeholder("p", 0) +
                            " AND " + db->dialect().quote("id") + " NOT LIKE '~pad%'",
                        {std::string("2024-01-02 03:04:05.600")});
                    CHECK(rows.at(0).at(0) == std::optional<std::string>("1"));
                }

                SECTION("rejects a key longer than the key column instead of failing the batch") {
                    schema.ensure(table);
                    std::vector<sql::RejectedRow> rejected;
                    auto c =
                        write(*db, table, {row(std::string(300, 'k'), "long"), row("ok", "fine")},
                              pad, &rejected);
                    CHECK(c.inserted == 1);
                    REQUIRE(rejected.size() == 1);
                    CHECK(rejected[0].reason.find("300 characters") != std::string::npos);
                }

                SECTION("collapses rows sharing a key within one batch to the last one") {
                    schema.ensure(table);
                    auto c = write(*db, table, {row("dup", "first"), row("dup", "second")}, pad);
                    CHECK(c.inserted == 1);
                    CHECK(value_of(*db, table, "label", "dup") == "second");
                }

                SECTION("writes more rows than one statement may carry") {
                    schema.ensure(table);
                    std::vector<sql::Row> rows;
                    for (int i = 0; i < 2500; ++i) {
                        rows.push_back(row("r" + std::to_string(i), "v"));
                    }
                    CHECK(write(*db, table, rows, pad).inserted == 2500);
                    CHECK(stored_rows(*db, table) == 2500);
                }

                SECTION("quotes hostile column names") {
                    for (const char* name :
                         {"a\"b", "semi;colon", "space name", "Zähler_Nr", "$id2"}) {
                        table.columns.push_back({name, sql::ColumnType::text});
                    }
                    schema.ensure(table);
                    auto r = row("h", "x");
                    for (int i = 0; i < 5; ++i) {
                        r.emplace_back("v" + std::to_string(i));
                    }
                    CHECK(write(*db, table, {r}, pad).inserted == 1);
                    CHECK(value_of(*db, table, "Zähler_Nr", "h") == "v3");
                    // Into a table that holds rows: PostgreSQL's staging table and its upsert,
                    // which compares every column by name.
                    r[r.size() - 2] = std::string("w3");
                    auto other = row("h2", "y");
                    other.resize(r.size());
                    const auto again = write(*db, table, {r, other}, pad);
                    CHECK(again.inserted == 1);
                    CHECK(again.updated == 1);
                    CHECK(value_of(*db, table, "Zähler_Nr", "h") == "w3");
                }

                SECTION("lets only one session hold a job's lock") {
                    // SQLite's lock is a file lock on the database, so it covers every job.
                    auto other = crmsync::testing::open(target.url);
                    CHECK(db->try_lock("job:" + prefix));
                    CHECK_FALSE(other->try_lock("job:" + prefix));
                    CHECK(other->try_lock("other-job:" + prefix) == (target.name != "sqlite"));
                    db.reset();
                    // The server notices the closed session a moment later.
                    bool taken = false;
                    for (int i = 0; i < 100 && !taken; ++i) {
                        taken = other->try_lock("job:" + prefix);
                        if (!taken) {
                            std::this_thread::sleep_for(std::chrono::milliseconds(20));
                        }
                    }
                    CHECK(taken);
                    db = crmsync::testing::open(target.url);
                }

                if (target.name == "mysql") {
                    SECTION("loads a batch of 50 rows or more with LOAD DATA") {
                        schema.ensure(table);
                        const long before = loads_run(*db);
                        std::vector<sql::Row> rows;
                        for (int i = 0; i < 50; ++i) {
                            rows.push_back(row("l" + std::to_string(i), "v"));
                        }
                        CHECK(write(*db, table, rows, false).inserted == 50);
                        CHECK(loads_run(*db) == before + 1);
                        rows.pop_back();
                        write(*db, table, rows, false);
                        CHECK(loads_run(*db) == before + 1);
                    }
                }

                if (db) {
                    db->execute("DROP TABLE IF EXISTS " + db->dialect().quote(table.name));
                }
            }
        }
    }
}

// cron starts every job of a minute at once, so on a fresh database several runs find the same
// tables missing together. PostgreSQL then refuses the second CREATE TABLE IF NOT EXISTS of a
// name (a duplicate key in its catalog) and the second CREATE INDEX IF NOT EXISTS: each run
// must still end with its tables ready, not fail its first minute.
TEST_CASE("runs that prepare the same tables at the same moment all succeed",
          "[sqlite][postgres][mysql]") {
    TempDir dir;
    constexpr int k_runs = 6;
    constexpr int k_rounds = 8;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("on " << target.name) {
            std::vector<std::unique_ptr<sql::Database>> connections;
            for (int i = 0; i < k_runs; ++i) {
                connections.push_back(crmsync::testing::open(target.url));
            }
            for (int round = 0; round < k_rounds; ++round) {
                const std::string prefix = crmsync::testing::unique_prefix();
                std::vector<sql::Table> tables;
                for (const char* name : {"contacts", "calls", "notes"}) {
                    tables.push_back(sample_table(prefix + name));
                    tables.back().indexes.push_back({{"label"}, false});
                }
                std::vector<const sql::Table*> listed;
                for (const auto& t : tables) {
                    listed.push_back(&t);
                }
                std::mutex mutex;
                std::condition_variable start_signal;
                int waiting = 0;
                bool started = false;
                std::vector<std::string> failures(k_runs);
                std::vector<std::thread> runs;
                for (int i = 0; i < k_runs; ++i) {
                    runs.emplace_back([&, i] {
                        {
                            std::unique_lock lock(mutex);
                            ++waiting;
                            start_signal.notify_all();
                            start_signal.wait(lock, [&] { return started; });
                        }
                        try {
                            sql::SchemaManager schema(*connections[static_cast<std::size_t>(i)]);
                            schema.ensure_all(listed);
                        } catch (const std::exception& e) {
                            failures[static_cast<std::size_t>(i)] = e.what();
                        }
                    });
                }
                {
                    std::unique_lock lock(mutex);
                    start_signal.wait(lock, [&] { return waiting == k_runs; });
                    started = true;
                }
                start_signal.notify_all();
                for (auto& run : runs) {
                    run.join();
                }
                INFO("round " << round);
                for (const auto& failure : failures) {
                    CHECK(failure == "");
                }
                auto& db = *connections.front();
                sql::SchemaManager schema(db);
                for (const auto& table : tables) {
                    const auto again = schema.ensure(table);
                    CHECK(again.created_tables.empty());
                    CHECK(again.added_columns.empty());
                    CHECK(again.created_indexes.empty());
                    CHECK(write(db, table, {row("a", "first")}, false).inserted == 1);
                    CHECK(stored_rows(db, table) == 1);
                }
            }
        }
    }
}
// The retries above are for races. A failure that is not one (here: no right to create) must
// end after the last attempt with the server's own words, not loop or hide them.
TEST_CASE("a schema step that keeps failing gives up after its attempts with the server's error",
          "[postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        std::string url = target.url;
        const auto credentials = url.find("crmsync:crmsync@");
        if (target.name == "sqlite" || credentials == std::string::npos) {
            continue;
        }
        DYNAMIC_SECTION("on " << target.name) {
            auto admin = crmsync::testing::open(target.url);
            if (target.name == "postgres") {
                admin->execute("DO $$ BEGIN CREATE ROLE crmsync_schema_limited LOGIN PASSWORD "
                               "'limited'; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
                admin->execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
                url.replace(credentials, 16, "crmsync_schema_limited:limited@");
            } else {
                admin->execute("CREATE USER IF NOT EXISTS 'crmsync_schema_ro'@'%' IDENTIFIED BY "
                               "'readonly'");
                admin->execute("GRANT SELECT ON crmsync_test.* TO 'crmsync_schema_ro'@'%'");
                url.replace(credentials, 16, "crmsync_schema_ro:readonly@");
            }
            const std::string log_file = dir.file(target.name + "-schema.log");
            log::LogOptions options;
            options.file = log_file;
            log::init(options);
            std::string failure;
            bool failed = false;
            try {
                auto limited = crmsync::testing::open(url);
                sql::SchemaManager schema(*limited);
                schema.ensure(sample_table(crmsync::testing::unique_prefix() + "refused"));
            } catch (const Error& e) {
                failed = true;
                failure = e.what();
            }
            log::shutdown();
            INFO(failure);
            REQUIRE(failed);
            CHECK(failure.find("denied") != std::string::npos);
            // Attempts 2 to 5 announced, one each; no sixth.
            const std::string log = crmsync::testing::read_file(log_file);
            std::size_t retries = 0;
            for (auto at = log.find("reading them again (attempt "); at != std::string::npos;
                 at = log.find("reading them again (attempt ", at + 1)) {
                ++retries;
            }
            CHECK(retries == 4);
            CHECK(log.find("(attempt 5 of 5)") != std::string::npos);
        }
    }
}
