// The bulk upsert paths (PostgreSQL COPY, MariaDB LOAD DATA LOCAL INFILE) against the
// multi-row statements they replace: the same bytes stored, the same counts, a failure in the
// middle of a load rolled back, and MariaDB's fallback when the server refuses LOCAL INFILE.

#include "tests/integration/support.hpp"

#include "drivers/postgres/bulk_copy.hpp"
#include "drivers/postgres/dialect.hpp"
#include "lib/core/error.hpp"
#include "lib/pipeline/target_writer.hpp"
#include "lib/sql/batch_writer.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/sql/schema_manager.hpp"

#include <catch2/catch.hpp>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

using namespace crmsync;
using crmsync::testing::TempDir;

namespace {

// The writer takes the bulk path from this many rows on; one row at a time never does.
constexpr std::size_t k_bulk_rows = 50;

sql::Table hostile_table(const std::string& name) {
    sql::Table t;
    t.name = name;
    t.primary_key = "id";
    t.changed_at_column = "$changed";
    t.columns = {{"id", sql::ColumnType::key},        {"label", sql::ColumnType::text},
                 {"amount", sql::ColumnType::number}, {"count", sql::ColumnType::integer},
                 {"flag", sql::ColumnType::boolean},  {"at", sql::ColumnType::timestamp},
                 {"doc", sql::ColumnType::json},      {"$changed", sql::ColumnType::timestamp}};
    return t;
}

// Text that a tab- or line-separated load format could take apart or change. NUL bytes only
// where the database stores them (PostgreSQL's text cannot).
std::vector<sql::Value> hostile_texts(bool with_nul) {
    std::vector<sql::Value> texts = {
        std::nullopt,
        std::string(),
        std::string("\t"),
        std::string("\n"),
        std::string("\r\n"),
        std::string("\\"),
        std::string("\\N"),
        std::string("N"),
        std::string("NULL"),
        std::string("\\\\N"),
        std::string("a\tb\nc\\d\re"),
        std::string("ends with a backslash\\"),
        std::string("\\t is not a tab, \\n no newline"),
        std::string("nul\0byte", 8),
        std::string("\0", 1),
        std::string("ctrl-z \x1A and \b backspace \x01"),
        std::string("trailing space "),
        std::string(" leading space"),
        std::string("it's \"quoted\" `tick` ]; DROP TABLE x;-- \xF0\x9F\x98\x80 Z\xC3\xA4hler"),
        std::string("\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB"),
        std::string(1024 * 1024, 'x') + "\t\n\\",
    };
    if (!with_nul) {
        std::erase_if(texts,
                      [](const sql::Value& t) { return t && t->find('\0') != std::string::npos; });
    }
    return texts;
}

// At least k_bulk_rows rows; every hostile text, number, timestamp and NULL appears.
std::vector<sql::Row> hostile_rows(const std::string& target, const std::string& variant) {
    const bool mysql = target == "mysql";
    const auto texts = hostile_texts(mysql);
    const std::vector<const char*> amounts = {
        "0", "-0.5", "1234567.0625", "12345678901234567890123.00000000000000000001",
        "-9999999999999999999999999999999999999999.99999999999999999999"};
    const std::vector<const char*> counts = {"0", "-9223372036854775808", "9223372036854775807",
                                             "42"};
    const std::vector<const char*> times = {"1000-01-01 00:00:00.000", "9999-12-31 23:59:59.999",
                                            "2024-02-29 12:00:00.001", "1970-01-01 00:00:00.000"};
    const std::vector<const char*> docs = {
        mysql ? R"({"a":"tab\tnew\nline","b":null,"c":"\\","d":"\u0000"})"
              : R"({"a":"tab\tnew\nline","b":null,"c":"\\"})",
        R"([1,2.5,"x"])", R"({"emoji":"😀","nested":{"k":[true,false]}})", "null"};
    std::vector<sql::Row> rows;
    for (std::size_t i = 0; rows.size() < k_bulk_rows + 10; ++i) {
        sql::Row r;
        r.push_back("k" + std::to_string(i) + (i % 7 == 0 ? "\t\\" : ""));
        sql::Value text = texts[i % texts.size()];
        if (text && !variant.empty() && i % 3 == 0) {
            *text += variant;
        }
        r.push_back(text);
        r.push_back(i % 11 == 5 ? sql::Value{} : sql::Value{amounts[i % amounts.size()]});
        r.push_back(i % 13 == 6 ? sql::Value{} : sql::Value{counts[i % counts.size()]});
        r.push_back(i % 2 == 0 ? "1" : "0");
        r.push_back(i % 17 == 8 ? sql::Value{} : sql::Value{times[i % times.size()]});
        r.push_back(i % 19 == 9 ? sql::Value{} : sql::Value{docs[i % docs.size()]});
        r.push_back(std::nullopt);
        rows.push_back(std::move(r));
    }
    return rows;
}

sql::WriteCounts write(sql::Database& db, const sql::Table& table, std::vector<sql::Row> rows,
                       const std::string& changed_at) {
    sql::BatchWriter writer(db);
    std::vector<sql::RejectedRow> rejected;
    sql::Transaction tx(db);
    const auto counts = writer.upsert({&table, std::move(rows)}, changed_at, rejected);
    tx.commit();
    CHECK(rejected.empty());
    return counts;
}

// Below the bulk threshold: one row per statement.
sql::WriteCounts write_row_by_row(sql::Database& db, const sql::Table& table,
                                  const std::vector<sql::Row>& rows,
                                  const std::string& changed_at) {
    sql::WriteCounts total;
    for (const auto& r : rows) {
        total += write(db, table, {r}, changed_at);
    }
    return total;
}

// Rows of hostile_table with keys r<first> .. r<first + n - 1>, all labelled `label`.
std::vector<sql::Row> numbered_rows(std::size_t first, std::size_t n, const std::string& label) {
    std::vector<sql::Row> rows;
    for (std::size_t i = first; i < first + n; ++i) {
        rows.push_back({"r" + std::to_string(i), label, std::string("1.5"), std::string("7"),
                        std::string("1"), std::string("2024-01-02 03:04:05.678"), std::string("{}"),
                        std::nullopt});
    }
    return rows;
}

// Writes `rows` into `fast` in one batch (the bulk path) and into `slow` row by row, checks that
// both counted the same, and returns the bulk path's counts.
sql::WriteCounts write_both_ways(sql::Database& db, const sql::Table& fast, const sql::Table& slow,
                                 const std::vector<sql::Row>& rows, const std::string& changed_at) {
    const auto bulk = write(db, fast, rows, changed_at);
    const auto by_row = write_row_by_row(db, slow, rows, changed_at);
    CHECK(bulk.inserted == by_row.inserted);
    CHECK(bulk.updated == by_row.updated);
    CHECK(bulk.unchanged == by_row.unchanged);
    return bulk;
}

std::string text_of(sql::Database& db, const sql::Table& table, const std::string& id) {
    const auto rows = db.query(db.dialect().select_by_keys(table, {"label"}, 1), {id});
    REQUIRE(rows.size() == 1);
    return rows[0][0].value_or("<NULL>");
}

// Loads `clashing` (empty, so a straight-load table) with r0..r<k-1>, then in one transaction
// loads `loaded` straight in and a batch into `clashing` of which half the keys are stored: that
// straight load meets a stored key and is undone, and the batch falls back. Checks that
// `loaded` keeps its rows (the undo reached no further back) and that `clashing` is counted
// and stored as an upsert would.
void check_undone_straight_load_spares_the_one_before(sql::Database& db, const sql::Table& loaded,
                                                      const sql::Table& clashing) {
    CHECK(write(db, clashing, numbered_rows(0, k_bulk_rows, "one"), "2030-01-01 00:00:00.000")
              .inserted == static_cast<long>(k_bulk_rows));
    sql::WriteCounts loaded_counts;
    sql::WriteCounts clashing_counts;
    {
        sql::BatchWriter writer(db);
        std::vector<sql::RejectedRow> rejected;
        sql::Transaction tx(db);
        loaded_counts = writer.upsert({&loaded, numbered_rows(0, k_bulk_rows + 5, "loaded")},
                                      "2030-01-01 00:00:00.000", rejected);
        clashing_counts =
            writer.upsert({&clashing, numbered_rows(k_bulk_rows / 2, k_bulk_rows, "two")},
                          "2030-01-01 00:00:00.000", rejected);
        tx.commit();
        CHECK(rejected.empty());
    }
    CHECK(loaded_counts.inserted == static_cast<long>(k_bulk_rows + 5));
    CHECK(clashing_counts.inserted == static_cast<long>(k_bulk_rows / 2));
    CHECK(clashing_counts.updated == static_cast<long>(k_bulk_rows / 2));
    CHECK(crmsync::testing::count_rows(db, loaded.name) == static_cast<long>(k_bulk_rows + 5));
    CHECK(crmsync::testing::count_rows(db, clashing.name) ==
          static_cast<long>(k_bulk_rows + k_bulk_rows / 2));
    CHECK(text_of(db, clashing, "r0") == "one");
    CHECK(text_of(db, clashing, "r" + std::to_string(k_bulk_rows)) == "two");
}

} // namespace

TEST_CASE("bulk upserts store hostile data exactly as multi-row statements do",
          "[postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        if (target.name == "sqlite") {
            continue; // no bulk path
        }
        DYNAMIC_SECTION("on " << target.name) {
            auto db = crmsync::testing::open(target.url);
            const std::string prefix = crmsync::testing::unique_prefix();
            const sql::Table bulk = hostile_table(prefix + "bulk");
            const sql::Table slow = hostile_table(prefix + "slow");
            sql::SchemaManager schema(*db);
            schema.ensure(bulk);
            schema.ensure(slow);

            // First load: every row new.
            const auto first = hostile_rows(target.name, "");
            const auto bulk_first = write(*db, bulk, first, "2024-05-05 05:05:05.000");
            const auto slow_first = write_row_by_row(*db, slow, first, "2024-05-05 05:05:05.000");
            CHECK(bulk_first.inserted == static_cast<long>(first.size()));
            CHECK(slow_first.inserted == bulk_first.inserted);
            CHECK(crmsync::testing::dump_table(*db, bulk.name, {}) ==
                  crmsync::testing::dump_table(*db, slow.name, {}));
            for (const auto& r : first) {
                const auto expected = r[1] ? *r[1] : std::string("<NULL>");
                CHECK(text_of(*db, bulk, *r[0]) == expected);
            }

            // Second load: a third of the texts changed, some rows new, the rest unchanged;
            // the change stamp moves only on changed rows.
            auto second = hostile_rows(target.name, " changed");
            second.erase(second.begin(), second.begin() + 5);
            for (int i = 0; i < 5; ++i) {
                auto extra = second.back();
                extra[0] = "new" + std::to_string(i);
                second.push_back(extra);
            }
            const auto bulk_second = write(*db, bulk, second, "2030-01-01 00:00:00.000");
            const auto slow_second = write_row_by_row(*db, slow, second, "2030-01-01 00:00:00.000");
            CHECK(bulk_second.inserted == 5);
            CHECK(bulk_second.updated > 0);
            CHECK(bulk_second.unchanged > 0);
            CHECK(bulk_second.inserted == slow_second.inserted);
            CHECK(bulk_second.updated == slow_second.updated);
            CHECK(bulk_second.unchanged == slow_second.unchanged);
            CHECK(crmsync::testing::dump_table(*db, bulk.name, {}) ==
                  crmsync::testing::dump_table(*db, slow.name, {}));

            db->execute("DROP TABLE " + db->dialect().quote(bulk.name));
            db->execute("DROP TABLE " + db->dialect().quote(slow.name));
        }
    }
}

TEST_CASE("a bulk load that fails in the middle rolls the whole transaction back",
          "[postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        if (target.name == "sqlite") {
            continue;
        }
        DYNAMIC_SECTION("on " << target.name) {
            auto db = crmsync::testing::open(target.url);
            const auto& d = db->dialect();
            const std::string prefix = crmsync::testing::unique_prefix();
            const sql::Table table = hostile_table(prefix + "target");
            sql::Table other = hostile_table(prefix + "other");
            sql::SchemaManager schema(*db);
            schema.ensure(table);
            schema.ensure(other);
            std::vector<sql::Row> rows;
            for (std::size_t i = 0; i < k_bulk_rows + 20; ++i) {
                rows.push_back({"r" + std::to_string(i), std::string("short"), std::string("1"),
                                std::string("2"), std::string("1"),
                                std::string("2024-01-02 03:04:05.678"), std::string("{}"),
                                std::nullopt});
            }
            write(*db, table, rows, "2024-05-05 05:05:05.000");
            // A column narrower than what the next batch holds: MariaDB fails row 41 of the
            // load, after the rows before it went in (PostgreSQL, whose session keeps its staging
            // table, fails the INSERT ... SELECT that follows).
            db->execute(target.name == "mysql"
                            ? "ALTER TABLE " + d.quote(table.name) + " MODIFY " + d.quote("label") +
                                  " varchar(8)"
                            : "ALTER TABLE " + d.quote(table.name) + " ALTER COLUMN " +
                                  d.quote("label") + " TYPE varchar(8)");
            const auto before = crmsync::testing::dump_table(*db, table.name, {});
            auto changed = rows;
            for (auto& r : changed) {
                r[1] = std::string("changed");
            }
            changed[40][1] = std::string("far too long for the column");
            {
                sql::BatchWriter writer(*db);
                std::vector<sql::RejectedRow> rejected;
                sql::Transaction tx(*db);
                // Written first in the same transaction: must go too.
                writer.upsert({&other, {rows.front()}}, "2030-01-01 00:00:00.000", rejected);
                std::string message;
                try {
                    writer.upsert({&table, changed}, "2030-01-01 00:00:00.000", rejected);
                } catch (const crmsync::Error& e) {
                    message = e.what();
                }
                INFO(message);
                CHECK_FALSE(message.empty());
                if (target.name == "mysql") {
                    // The load itself fails, at the row that does not fit.
                    CHECK(message.find("LOAD DATA") != std::string::npos);
                    CHECK(message.find("at row 41") != std::string::npos);
                }
            }
            CHECK(crmsync::testing::dump_table(*db, table.name, {}) == before);
            CHECK(crmsync::testing::count_rows(*db, other.name) == 0);

            // The connection is in step with the server again: the next load works.
            changed[40][1] = std::string("fits");
            const auto healed = write(*db, table, changed, "2030-01-01 00:00:00.000");
            CHECK(healed.updated == static_cast<long>(changed.size()));
            CHECK(text_of(*db, table, "r40") == "fits");

            // Only new keys (MariaDB loads them straight into the target): the same rollback.
            const auto stored = crmsync::testing::dump_table(*db, table.name, {});
            auto fresh = changed;
            for (std::size_t i = 0; i < fresh.size(); ++i) {
                fresh[i][0] = "n" + std::to_string(i);
            }
            fresh[40][1] = std::string("far too long for the column");
            {
                sql::BatchWriter writer(*db);
                std::vector<sql::RejectedRow> rejected;
                sql::Transaction tx(*db);
                writer.upsert({&other, {rows.front()}}, "2030-01-01 00:00:00.000", rejected);
                CHECK_THROWS_AS(writer.upsert({&table, fresh}, "2030-01-01 00:00:00.000", rejected),
                                crmsync::Error);
            }
            CHECK(crmsync::testing::dump_table(*db, table.name, {}) == stored);
            CHECK(crmsync::testing::count_rows(*db, other.name) == 0);

            db->execute("DROP TABLE " + d.quote(table.name));
            db->execute("DROP TABLE " + d.quote(other.name));
        }
    }
}

namespace {

// numbered_rows whose count column holds `count_base` + i: unique across them.
std::vector<sql::Row> counted_rows(std::size_t first, std::size_t n, const std::string& label,
                                   std::size_t count_base = 0) {
    auto rows = numbered_rows(first, n, label);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        rows[i][3] = std::to_string(count_base + first + i);
    }
    return rows;
}

// Upserts `rows` in one transaction that must fail; returns the error's text and hint.
std::string failed_upsert(sql::Database& db, const sql::Table& table, std::vector<sql::Row> rows) {
    sql::BatchWriter writer(db);
    std::vector<sql::RejectedRow> rejected;
    try {
        sql::Transaction tx(db);
        writer.upsert({&table, std::move(rows)}, "2030-01-01 00:00:00.000", rejected);
        tx.commit();
    } catch (const Error& e) {
        return e.describe() + " | " + e.hint();
    }
    return "";
}

} // namespace

TEST_CASE("keys that differ only by trailing spaces are two records", "[postgres][mysql]") {
    // MySQL's utf8mb4_bin compares "k" and "k " as one key; the tables crmsync creates on
    // MariaDB use utf8mb4_nopad_bin, so such rows no longer fail their batch there.
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("on " << target.name) {
            auto db = crmsync::testing::open(target.url);
            const auto& d = db->dialect();
            const std::string prefix = crmsync::testing::unique_prefix();
            const sql::Table table = hostile_table(prefix + "pad");
            sql::SchemaManager schema(*db);
            schema.ensure(table);
            if (target.name == "mysql") {
                CHECK(db->query("SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE "
                                "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND COLUMN_NAME = "
                                "'id'",
                                {table.name})
                          .at(0)
                          .at(0) == std::optional<std::string>("utf8mb4_nopad_bin"));
            }
            // A first load (the bulk path) holding both, then each changed on its own, one row
            // per statement and in bulk.
            auto rows = numbered_rows(0, k_bulk_rows, "bulk");
            rows[1][0] = std::string("r0 ");
            rows[2][0] = std::string("r0  ");
            CHECK(write(*db, table, rows, "2024-05-05 05:05:05.000").inserted ==
                  static_cast<long>(k_bulk_rows));
            CHECK(write(*db, table,
                        {{"r0 ", std::string("one"), std::string("1.5"), std::string("7"),
                          std::string("1"), std::string("2024-01-02 03:04:05.678"),
                          std::string("{}"), std::nullopt}},
                        "2024-05-05 05:05:06.000")
                      .updated == 1);
            CHECK(text_of(*db, table, "r0") == "bulk");
            CHECK(text_of(*db, table, "r0 ") == "one");
            CHECK(text_of(*db, table, "r0  ") == "bulk");
            auto again = numbered_rows(0, k_bulk_rows, "again");
            again[2][0] = std::string("r0  ");
            again[1][0] = std::string("r1 "); // new
            const auto counts = write(*db, table, again, "2024-05-05 05:05:07.000");
            CHECK(counts.inserted == 1);
            CHECK(counts.updated == static_cast<long>(k_bulk_rows) - 1);
            CHECK(text_of(*db, table, "r0") == "again");
            CHECK(text_of(*db, table, "r0 ") == "one");
            CHECK(text_of(*db, table, "r0  ") == "again");
            CHECK(text_of(*db, table, "r1 ") == "again");
            CHECK(crmsync::testing::count_rows(*db, table.name) ==
                  static_cast<long>(k_bulk_rows) + 1);
            db->execute("DROP TABLE " + d.quote(table.name));
        }
    }
}

// MySQL's ON DUPLICATE KEY UPDATE (and LOAD DATA's REPLACE) act on the stored row that any
// unique index matches, so a row meeting another record on a unique index a user added used to
// overwrite (or delete) that record without a word. Every database must refuse the batch.
TEST_CASE("a row meeting a stored row of another key on a unique index fails its batch and "
          "changes no stored row",
          "[postgres][mysql]") {
    TempDir dir;
    for (const auto& target : crmsync::testing::targets(dir)) {
        DYNAMIC_SECTION("on " << target.name) {
            auto db = crmsync::testing::open(target.url);
            const auto& d = db->dialect();
            const bool mysql = target.name == "mysql";
            const std::string prefix = crmsync::testing::unique_prefix();
            const sql::Table table = hostile_table(prefix + "uniq");
            sql::SchemaManager schema(*db);
            schema.ensure(table);
            db->execute("CREATE UNIQUE INDEX " + d.quote(prefix + "uniq_count") + " ON " +
                        d.quote(table.name) + " (" + d.quote("count") + ")");
            // r0 .. r59 with counts 0 .. 59: a first load, straight in where the database can.
            const std::size_t stored = k_bulk_rows + 10;
            CHECK(write(*db, table, counted_rows(0, stored, "stored"), "2024-05-05 05:05:05.000")
                      .inserted == static_cast<long>(stored));
            const auto before = crmsync::testing::dump_table(*db, table.name, {});
            REQUIRE(before.size() == stored);

            // Each: rows of new keys (and changed stored ones) of which one takes count 3 (r3's).
            auto one = counted_rows(1000, 1, "new");
            one[0][3] = std::string("3");
            auto few = counted_rows(1000, 10, "new", 5000);
            few[7][3] = std::string("3");
            auto bulk_new = counted_rows(1000, stored, "new", 5000);
            bulk_new[41][3] = std::string("3");
            auto bulk_mixed = counted_rows(30, stored, "mixed", 5000);
            bulk_mixed[45][3] = std::string("3");
            // A stored key changed to the count of another stored row.
            auto moved = counted_rows(5, 1, "moved");
            moved[0][3] = std::string("6");
            const std::vector<std::pair<const char*, std::vector<sql::Row>>> batches = {
                {"one row", one},
                {"ten rows in one statement", few},
                {"a bulk load of new keys", bulk_new},
                {"a bulk load of new and stored keys", bulk_mixed},
                {"a stored key taking another row's value", moved}};
            for (const auto& [what, rows] : batches) {
                INFO(what);
                const auto error = failed_upsert(*db, table, rows);
                CHECK_FALSE(error.empty());
                if (mysql && std::string_view(what) != "a stored key taking another row's value") {
                    // Not MariaDB's "Column ... cannot be null" of the guard: what happened.
                    CHECK_THAT(error, Catch::Contains("unique index besides the one on `id`"));
                    CHECK_THAT(error, Catch::Contains("SHOW INDEX FROM"));
                }
                CHECK(crmsync::testing::dump_table(*db, table.name, {}) == before);
            }

            // A first load whose own rows meet on the index (two new contacts, one e-mail).
            const sql::Table fresh = hostile_table(prefix + "uniq_fresh");
            schema.ensure(fresh);
            db->execute("CREATE UNIQUE INDEX " + d.quote(prefix + "uniq_fresh_count") + " ON " +
                        d.quote(fresh.name) + " (" + d.quote("count") + ")");
            auto clashing = counted_rows(0, stored, "first");
            clashing[50][3] = std::string("7");
            const auto error = failed_upsert(*db, fresh, clashing);
            CHECK_FALSE(error.empty());
            if (mysql) {
                CHECK_THAT(error, Catch::Contains("unique index besides the one on `id`"));
            }
            CHECK(crmsync::testing::count_rows(*db, fresh.name) == 0);
            // Without the clash the same load goes in.
            clashing[50][3] = std::string("50");
            CHECK(write(*db, fresh, clashing, "2024-05-05 05:05:05.000").inserted ==
                  static_cast<long>(stored));

            // bulk-history's layout: an identity primary key and a nullable unique upsert key,
            // which a guard that sets the key to NULL would have changed without an error.
            sql::Table numbered;
            numbered.name = prefix + "uniq_ident";
            numbered.primary_key = "n";
            numbered.upsert_key = "id";
            numbered.columns = {{"n", sql::ColumnType::integer, false, true},
                                {"id", sql::ColumnType::key},
                                {"label", sql::ColumnType::text},
                                {"count", sql::ColumnType::integer}};
            schema.ensure(numbered);
            db->execute("CREATE UNIQUE INDEX " + d.quote(prefix + "uniq_ident_count") + " ON " +
                        d.quote(numbered.name) + " (" + d.quote("count") + ")");
            std::vector<sql::Row> numbered_rows;
            for (std::size_t i = 0; i < stored; ++i) {
                numbered_rows.push_back({std::nullopt, "r" + std::to_string(i),
                                         std::string("stored"), std::to_string(i)});
            }
            CHECK(write(*db, numbered, numbered_rows, "").inserted == static_cast<long>(stored));
            const auto numbered_before = crmsync::testing::dump_table(*db, numbered.name, {});
            // Values line up with the columns; the identity's is never bound.
            std::vector<sql::Row> one_clash{
                {std::nullopt, std::string("new"), std::string("new"), std::string("3")}};
            auto many_clash = numbered_rows;
            for (std::size_t i = 0; i < many_clash.size(); ++i) {
                many_clash[i][1] = "new" + std::to_string(i);
                many_clash[i][3] = std::to_string(5000 + i);
            }
            many_clash[33][3] = std::string("3");
            for (const auto& rows : {one_clash, many_clash}) {
                const auto clash_error = failed_upsert(*db, numbered, rows);
                CHECK_FALSE(clash_error.empty());
                if (mysql) {
                    CHECK_THAT(clash_error,
                               Catch::Contains("unique index besides the one on `id`"));
                }
                CHECK(crmsync::testing::dump_table(*db, numbered.name, {}) == numbered_before);
            }
            db->execute("DROP TABLE " + d.quote(numbered.name));

            if (mysql) {
                // dbsync2's tables compare keys case-insensitively: "abc" and "ABC" are one key
                // to the index but two records to crmsync, so the second must not overwrite the
                // first (Dialfire's ids are single-case; other sources' need not be).
                const sql::Table folded = hostile_table(prefix + "uniq_ci");
                schema.ensure(folded);
                db->execute("ALTER TABLE " + d.quote(folded.name) + " MODIFY " + d.quote("id") +
                            " varchar(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci "
                            "NOT NULL");
                auto lower = counted_rows(0, stored, "lower");
                lower[0][0] = std::string("abc");
                CHECK(write(*db, folded, lower, "2024-05-05 05:05:05.000").inserted ==
                      static_cast<long>(stored));
                const auto folded_before = crmsync::testing::dump_table(*db, folded.name, {});
                auto upper = counted_rows(1000, 1, "upper", 5000);
                upper[0][0] = std::string("ABC");
                auto upper_bulk = counted_rows(1000, stored, "upper", 5000);
                upper_bulk[20][0] = std::string("ABC");
                for (const auto& rows : {upper, upper_bulk}) {
                    const auto folded_error = failed_upsert(*db, folded, rows);
                    CHECK_THAT(folded_error, Catch::Contains("collation takes"));
                    CHECK(crmsync::testing::dump_table(*db, folded.name, {}) == folded_before);
                }
                db->execute("DROP TABLE " + d.quote(folded.name));
            }
            db->execute("DROP TABLE " + d.quote(table.name));
            db->execute("DROP TABLE " + d.quote(fresh.name));
        }
    }
}

TEST_CASE("MariaDB loads a first load straight in without counting keys, and falls back when "
          "keys were stored",
          "[mysql]") {
    TempDir dir;
    auto db = crmsync::testing::open_named(dir, "mysql");
    if (!db) {
        return;
    }
    const auto& d = db->dialect();
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table table = hostile_table(prefix + "mydirect");
    const sql::Table slow = hostile_table(prefix + "mydirect_slow");
    sql::SchemaManager schema(*db);
    schema.ensure(table);
    schema.ensure(slow);

    CHECK(write_both_ways(*db, table, slow, numbered_rows(0, k_bulk_rows + 10, "one"),
                          "2024-05-05 05:05:05.000")
              .inserted == static_cast<long>(k_bulk_rows + 10));
    CHECK(write_both_ways(*db, table, slow, numbered_rows(k_bulk_rows + 10, k_bulk_rows, "two"),
                          "2024-05-05 05:05:05.000")
              .inserted == static_cast<long>(k_bulk_rows));
    // The table was empty at its first batch, so this batch is loaded straight in first:
    // half of its keys are stored (REPLACE counts them twice), so that load is undone and
    // the batch upserted through the staging table, with the counts of the slow path.
    auto mixed = numbered_rows(k_bulk_rows, 2 * k_bulk_rows, "two");
    for (std::size_t i = 0; i < mixed.size(); i += 4) {
        mixed[i][1] = std::string("changed");
    }
    const auto third = write_both_ways(*db, table, slow, mixed, "2030-01-01 00:00:00.000");
    CHECK(third.inserted == static_cast<long>(k_bulk_rows - 10));
    CHECK(third.updated > 0);
    CHECK(third.unchanged > 0);
    CHECK(crmsync::testing::dump_table(*db, table.name, {}) ==
          crmsync::testing::dump_table(*db, slow.name, {}));
    // From then on the table counts keys first: new keys still go in, stored ones upsert.
    const auto fourth =
        write_both_ways(*db, table, slow, numbered_rows(0, 3 * k_bulk_rows + 10, "three"),
                        "2031-01-01 00:00:00.000");
    CHECK(fourth.inserted == static_cast<long>(10));
    CHECK(crmsync::testing::dump_table(*db, table.name, {}) ==
          crmsync::testing::dump_table(*db, slow.name, {}));

    // Savepoints are not released: in one transaction, a table loaded straight in keeps
    // its rows when a later table's straight load is undone.
    const sql::Table first = hostile_table(prefix + "mydirect_first");
    const sql::Table second = hostile_table(prefix + "mydirect_second");
    schema.ensure(first);
    schema.ensure(second);
    check_undone_straight_load_spares_the_one_before(*db, first, second);
    for (const auto* t : {&table, &slow, &first, &second}) {
        db->execute("DROP TABLE " + d.quote(t->name));
    }
}

TEST_CASE("MariaDB falls back to multi-row statements when the server refuses LOCAL INFILE",
          "[mysql]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "mysql");
    if (!target) {
        return;
    }
    auto admin = crmsync::testing::open(target->url);
    const auto setting = admin->query("SELECT @@GLOBAL.local_infile");
    REQUIRE(setting.at(0).at(0) == std::optional<std::string>("1"));
    admin->execute("SET GLOBAL local_infile = 0");
    struct Restore {
        sql::Database& db;
        ~Restore() {
            try {
                db.execute("SET GLOBAL local_infile = 1");
            } catch (...) {
            }
        }
    } restore{*admin};

    auto db = crmsync::testing::open(target->url);
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table table = hostile_table(prefix + "refused");
    sql::SchemaManager(*db).ensure(table);
    const auto rows = hostile_rows(target->name, "");
    const auto first = write(*db, table, rows, "2024-05-05 05:05:05.000");
    CHECK(first.inserted == static_cast<long>(rows.size()));
    const auto changed = hostile_rows(target->name, " changed");
    const auto again = write(*db, table, changed, "2030-01-01 00:00:00.000");
    CHECK(again.inserted == 0);
    CHECK(again.updated + again.unchanged == static_cast<long>(rows.size()));
    CHECK(again.updated > 0);
    for (const auto& r : changed) {
        CHECK(text_of(*db, table, *r[0]) == r[1].value_or("<NULL>"));
    }
    db->execute("DROP TABLE " + db->dialect().quote(table.name));
}

TEST_CASE("PostgreSQL copies a first load straight into the empty table and upserts from then on",
          "[postgres]") {
    TempDir dir;
    auto db = crmsync::testing::open_named(dir, "postgres");
    if (!db) {
        return;
    }
    const auto& d = db->dialect();
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table table = hostile_table(prefix + "direct");
    const sql::Table slow = hostile_table(prefix + "direct_slow");
    const sql::Table other = hostile_table(prefix + "direct_other");
    sql::SchemaManager schema(*db);
    schema.ensure(table);
    schema.ensure(slow);
    schema.ensure(other);
    // The staging tables of this session: none while every load went straight in.
    const auto staging_tables = [&] {
        return db
            ->query("SELECT count(*) FROM pg_class WHERE relnamespace = "
                    "pg_my_temp_schema() AND relname LIKE 'crmsync\\_stage\\_%'")
            .at(0)
            .at(0)
            .value_or("?");
    };

    SECTION("new keys go straight in; a batch holding stored keys falls back and counts") {
        const auto first = write_both_ways(
            *db, table, slow, numbered_rows(0, k_bulk_rows + 10, "one"), "2024-05-05 05:05:05.000");
        CHECK(first.inserted == static_cast<long>(k_bulk_rows + 10));
        const auto second =
            write_both_ways(*db, table, slow, numbered_rows(k_bulk_rows + 10, k_bulk_rows, "two"),
                            "2024-05-05 05:05:05.000");
        CHECK(second.inserted == static_cast<long>(k_bulk_rows));
        CHECK(staging_tables() == "0");

        // Half of these keys are stored (half of those changed), half are new.
        auto mixed = numbered_rows(k_bulk_rows, 2 * k_bulk_rows, "two");
        for (std::size_t i = 0; i < mixed.size(); i += 4) {
            mixed[i][1] = std::string("changed");
        }
        const auto third = write_both_ways(*db, table, slow, mixed, "2030-01-01 00:00:00.000");
        CHECK(staging_tables() == "1");
        CHECK(third.inserted == static_cast<long>(k_bulk_rows - 10));
        CHECK(crmsync::testing::dump_table(*db, table.name, {}) ==
              crmsync::testing::dump_table(*db, slow.name, {}));
    }

    SECTION("in one transaction, a table loaded straight in keeps its rows when a later "
            "table's straight load falls back") {
        // `table` is empty at its first load, so it stays a straight-load table; `other`
        // gets its first load in the same transaction as `table`'s clashing one.
        check_undone_straight_load_spares_the_one_before(*db, other, table);
        CHECK(staging_tables() == "1");
    }

    SECTION("a value the column refuses rolls the straight load and its transaction back") {
        db->execute("ALTER TABLE " + d.quote(table.name) + " ALTER COLUMN " + d.quote("label") +
                    " TYPE varchar(8)");
        auto rows = numbered_rows(0, k_bulk_rows + 10, "fits");
        rows[40][1] = std::string("far too long for the column");
        std::string message;
        {
            sql::BatchWriter writer(*db);
            std::vector<sql::RejectedRow> rejected;
            sql::Transaction tx(*db);
            writer.upsert({&other, {rows.front()}}, "2030-01-01 00:00:00.000", rejected);
            try {
                writer.upsert({&table, rows}, "2030-01-01 00:00:00.000", rejected);
            } catch (const crmsync::Error& e) {
                message = e.what();
            }
        }
        INFO(message);
        CHECK(message.find("database error while loading rows of " + table.name) !=
              std::string::npos);
        CHECK(message.find("too long") != std::string::npos);
        CHECK(crmsync::testing::count_rows(*db, table.name) == 0);
        CHECK(crmsync::testing::count_rows(*db, other.name) == 0);
        CHECK(staging_tables() == "0");

        rows[40][1] = std::string("fits");
        CHECK(write(*db, table, rows, "2030-01-01 00:00:00.000").inserted ==
              static_cast<long>(rows.size()));
        CHECK(crmsync::testing::count_rows(*db, table.name) == static_cast<long>(rows.size()));
    }

    SECTION("a table without a unique key is never loaded straight, so never duplicated") {
        const std::string bare = prefix + "direct_bare";
        const sql::Table bare_table = hostile_table(bare);
        db->execute("CREATE TABLE " + d.quote(bare) + " (LIKE " + d.quote(table.name) + ")");
        const auto rows = numbered_rows(0, k_bulk_rows + 10, "one");
        CHECK_THROWS_AS(write(*db, bare_table, rows, "2030-01-01 00:00:00.000"), crmsync::Error);
        CHECK(crmsync::testing::count_rows(*db, bare) == 0);
        db->execute("DROP TABLE " + d.quote(bare));
    }

    for (const auto* t : {&table, &slow, &other}) {
        db->execute("DROP TABLE " + d.quote(t->name));
    }
}

// ON CONFLICT DO UPDATE locks every row it meets before its WHERE finds the row unchanged, and a
// lock writes the row's page and a WAL record (on a durable server a whole page per checkpoint:
// a full refresh of unchanged rows wrote 140 MB). A locked row keeps the locker's xid in xmax
// after its transaction ends.
TEST_CASE("PostgreSQL bulk upserts leave rows equal to the stored ones unlocked", "[postgres]") {
    TempDir dir;
    auto db = crmsync::testing::open_named(dir, "postgres");
    if (!db) {
        return;
    }
    const auto& d = db->dialect();
    const sql::Table table = hostile_table(crmsync::testing::unique_prefix() + "unlocked");
    sql::SchemaManager schema(*db);
    schema.ensure(table);
    const std::size_t n = 2 * k_bulk_rows;
    REQUIRE(write(*db, table, numbered_rows(0, n, "one"), "2024-05-05 05:05:05.000").inserted ==
            static_cast<long>(n));
    // Rows labelled "one" that carry a lock (an updated row carries its update's lock).
    const auto locked_unchanged = [&] {
        return crmsync::testing::count_rows(
            *db, table.name, "xmax <> '0'::xid AND " + d.quote("label") + " = 'one'");
    };
    REQUIRE(locked_unchanged() == 0);

    // The same rows again, every fourth one changed, and two new ones.
    auto again = numbered_rows(0, n + 2, "one");
    for (std::size_t i = 0; i < n; i += 4) {
        again[i][1] = std::string("changed");
    }
    const auto counts = write(*db, table, again, "2030-01-01 00:00:00.000");
    CHECK(counts.inserted == 2);
    CHECK(counts.updated == static_cast<long>(n / 4));
    CHECK(counts.unchanged == static_cast<long>(n - n / 4));
    CHECK(locked_unchanged() == 0);
    // The changed rows took the new time, the unchanged ones kept theirs.
    CHECK(crmsync::testing::count_rows(*db, table.name,
                                       d.quote("label") + " = 'changed' AND " +
                                           d.quote("$changed") + " >= '2030-01-01'") ==
          static_cast<long>(n / 4));
    CHECK(crmsync::testing::count_rows(*db, table.name,
                                       d.quote("label") + " = 'one' AND " + d.quote("$changed") +
                                           " < '2030-01-01'") == static_cast<long>(n - n / 4));
    db->execute("DROP TABLE " + d.quote(table.name));
}

TEST_CASE("PostgreSQL's staging table empties itself at each commit, in place", "[postgres]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "postgres");
    if (!target) {
        return;
    }
    auto db = crmsync::testing::open(target->url);
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table table = hostile_table(prefix + "staged");
    sql::SchemaManager(*db).ensure(table);
    // The first load goes straight in; every later batch goes through the staging table.
    write(*db, table, numbered_rows(0, k_bulk_rows, "one"), "2024-05-05 05:05:05.000");
    // The staging table's file and how many rows and pages it holds, as "file rows pages".
    const auto stage = [&] {
        const auto rows =
            db->query("SELECT relfilenode, reltuples, pg_relation_size(oid) FROM pg_class WHERE "
                      "relnamespace = pg_my_temp_schema() AND relname LIKE 'crmsync\\_stage\\_%'");
        REQUIRE(rows.size() == 1);
        const auto count = db->query(
            "SELECT count(*) FROM pg_temp." +
            db->dialect().quote(*db->query("SELECT relname FROM pg_class WHERE relnamespace = "
                                           "pg_my_temp_schema() AND relname LIKE "
                                           "'crmsync\\_stage\\_%'")[0][0]));
        return *rows[0][0] + " " + count.at(0).at(0).value_or("?") + " " + rows[0][2].value_or("?");
    };
    const auto file_of = [](const std::string& s) { return s.substr(0, s.find(' ')); };

    const auto c1 = write(*db, table, numbered_rows(0, k_bulk_rows, "two"), "2030-01-01");
    CHECK(c1.updated == static_cast<long>(k_bulk_rows));
    const std::string after_first = stage();
    CHECK(after_first.substr(after_first.find(' ')) == " 0 0");
    const auto c2 = write(*db, table, numbered_rows(0, k_bulk_rows, "three"), "2030-01-02");
    CHECK(c2.updated == static_cast<long>(k_bulk_rows));
    // The same file, empty again: no new file per batch.
    CHECK(stage() == after_first);

    SECTION("the same table loaded twice in one transaction") {
        sql::BatchWriter writer(*db);
        std::vector<sql::RejectedRow> rejected;
        sql::Transaction tx(*db);
        const auto a = writer.upsert({&table, numbered_rows(0, k_bulk_rows, "four")},
                                     "2030-01-03 00:00:00.000", rejected);
        const auto b = writer.upsert({&table, numbered_rows(0, k_bulk_rows, "four")},
                                     "2030-01-03 00:00:00.000", rejected);
        tx.commit();
        CHECK(a.updated == static_cast<long>(k_bulk_rows));
        CHECK(b.unchanged == static_cast<long>(k_bulk_rows));
        CHECK(b.updated == 0);
        CHECK(file_of(stage()) == file_of(after_first));
    }
    SECTION("a load outside a transaction commits on its own and leaves none open") {
        sql::BatchWriter writer(*db);
        std::vector<sql::RejectedRow> rejected;
        const auto c = writer.upsert({&table, numbered_rows(0, k_bulk_rows, "five")},
                                     "2030-01-04 00:00:00.000", rejected);
        CHECK(c.updated == static_cast<long>(k_bulk_rows));
        auto other = crmsync::testing::open(target->url);
        CHECK(crmsync::testing::count_rows(*other, table.name,
                                           other->dialect().quote("label") + " = 'five'") ==
              static_cast<long>(k_bulk_rows));
        // A transaction left open would be the load's, which wrote rows: it has an id.
        CHECK(db->query("SELECT COALESCE(txid_current_if_assigned()::text, 'none open')")
                  .at(0)
                  .at(0)
                  .value_or("NULL") == "none open");
    }
    db->execute("DROP TABLE " + db->dialect().quote(table.name));
}

TEST_CASE("a column the database refuses to widen is left as it is, and the schema step goes on",
          "[postgres]") {
    TempDir dir;
    auto db = crmsync::testing::open_named(dir, "postgres");
    if (!db) {
        return;
    }
    const auto& d = db->dialect();
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table table = hostile_table(prefix + "narrow");
    const std::string view = prefix + "narrow_view";
    sql::SchemaManager schema(*db);
    schema.ensure(table);
    db->execute("ALTER TABLE " + d.quote(table.name) + " ALTER COLUMN " + d.quote("label") +
                " TYPE varchar(8)");
    // PostgreSQL will not change the type of a column a view reads.
    db->execute("CREATE VIEW " + d.quote(view) + " AS SELECT " + d.quote("label") + " FROM " +
                d.quote(table.name));
    const auto label_length = [&] {
        return db
            ->query("SELECT character_maximum_length FROM information_schema.columns WHERE "
                    "table_schema = current_schema() AND table_name = :t AND column_name = "
                    "'label'",
                    {table.name})
            .at(0)
            .at(0)
            .value_or("none");
    };

    sql::SchemaChanges refused;
    REQUIRE_NOTHROW(refused = schema.ensure(table));
    CHECK(refused.widened_columns.empty());
    CHECK(label_length() == "8");
    // The step went on past the refusal: a column added to the spec is still created.
    sql::Table grown = table;
    grown.columns.push_back({"added_later", sql::ColumnType::text});
    const auto added = schema.ensure(grown);
    CHECK(added.added_columns == std::vector<std::string>{table.name + ".added_later"});

    // Without the view the same step widens it.
    db->execute("DROP VIEW " + d.quote(view));
    const auto widened = schema.ensure(grown);
    REQUIRE(widened.widened_columns.size() == 1);
    CHECK(widened.widened_columns[0].find(table.name + ".label: ") == 0);
    CHECK(label_length() == "none");
    db->execute("DROP TABLE " + d.quote(table.name));
}

namespace {

// A libpq connection set up as crmsync's own (UTC, UTF-8), for calling copy_upsert directly.
class PgConnection {
public:
    PgConnection(const std::string& url, const sql::Dialect& dialect)
        : m_connection(PQconnectdb(url.c_str())) {
        REQUIRE(PQstatus(m_connection) == CONNECTION_OK);
        for (const auto& statement : dialect.session_setup()) {
            PQclear(PQexec(m_connection, statement.c_str()));
        }
    }
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;
    ~PgConnection() { PQfinish(m_connection); }
    PGconn* get() const { return m_connection; }

private:
    PGconn* m_connection;
};

// copy_upsert of `rows` into `table` (all of its columns bound).
sql::Database::BulkResult copy_rows(PGconn* connection, const sql::Dialect& dialect,
                                    const sql::Table& table, const std::vector<sql::Row>& rows,
                                    drivers::postgres::CopySession& session) {
    std::vector<const sql::Column*> columns;
    for (const auto& c : table.columns) {
        columns.push_back(&c);
    }
    std::vector<std::vector<const sql::Value*>> bound;
    for (const auto& r : rows) {
        auto& b = bound.emplace_back();
        for (const auto& v : r) {
            b.push_back(&v);
        }
    }
    return drivers::postgres::copy_upsert(connection, dialect, table, columns, bound, session);
}

// Numbers and times at the edges of numeric's base-10000 digits and of the calendar, in the
// columns of hostile_table, after its hostile texts.
std::vector<sql::Row> binary_edge_rows() {
    auto rows = hostile_rows("postgres", "");
    const std::vector<const char*> amounts = {"-0",
                                              "-0.000",
                                              "0.0001",
                                              "0.00001",
                                              "00012.3400",
                                              "9999",
                                              "10000",
                                              "99999999.99999999",
                                              "0.5",
                                              "-1",
                                              "1234567890123456789012345678901234567890.0123456789",
                                              "0.000000000000000000000000000001",
                                              "100000000",
                                              "-100000000.00010000"};
    const std::vector<const char*> times = {
        "0001-01-01 00:00:00",      "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00",
        "1999-12-31 23:59:59.9995", "2000-02-29 23:59:59.9999",   "1900-02-28 23:59:59.5",
        "2100-03-01 00:00:00.001",  "1969-12-31 23:59:59.999",    "9999-12-31 23:59:59.999"};
    const std::vector<const char*> flags = {"1", "0", "t", "f", "true", "false"};
    for (std::size_t i = 0; i < amounts.size() || i < times.size(); ++i) {
        sql::Row r = rows.at(i);
        r[0] = "edge" + std::to_string(i);
        r[2] = std::string(amounts[i % amounts.size()]);
        r[3] = std::to_string(-(1LL << (i % 63)));
        r[4] = std::string(flags[i % flags.size()]);
        r[5] = std::string(times[i % times.size()]);
        r[7] = std::string(times[(i + 3) % times.size()]);
        rows.push_back(std::move(r));
    }
    return rows;
}

} // namespace

TEST_CASE("PostgreSQL's binary COPY stores what its text COPY stores", "[postgres]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "postgres");
    if (!target) {
        return;
    }
    auto db = crmsync::testing::open(target->url);
    const auto dialect = drivers::postgres::make_dialect();
    PgConnection connection(target->url, *dialect);
    drivers::postgres::CopySession binary;
    drivers::postgres::CopySession text;
    text.binary_allowed = false;
    const std::string prefix = crmsync::testing::unique_prefix();
    // Loads `rows` into `a` through `binary` and into `b` as text; both count the same.
    const auto load_both = [&](const sql::Table& a, const sql::Table& b,
                               const std::vector<sql::Row>& rows) {
        const auto by_binary = copy_rows(connection.get(), *dialect, a, rows, binary);
        const auto by_text = copy_rows(connection.get(), *dialect, b, rows, text);
        CHECK(by_binary.existing == by_text.existing);
        CHECK(by_binary.affected == by_text.affected);
        CHECK(crmsync::testing::dump_table(*db, a.name, {}) ==
              crmsync::testing::dump_table(*db, b.name, {}));
        CHECK(text.binary_copies == 0);
    };

    SECTION("crmsync's column types: a first load, then upserts through the staging table") {
        const sql::Table a = hostile_table(prefix + "bin");
        const sql::Table b = hostile_table(prefix + "bin_text");
        sql::SchemaManager schema(*db);
        schema.ensure(a);
        schema.ensure(b);
        const auto first = binary_edge_rows();
        load_both(a, b, first);
        CHECK(binary.binary_copies == 1);
        CHECK(binary.text_copies == 0);
        CHECK(db->query("SELECT count(*) FROM " + dialect->quote(a.name)).at(0).at(0) ==
              std::to_string(first.size()));

        auto second = binary_edge_rows();
        for (std::size_t i = 0; i < second.size(); i += 3) {
            second[i][2] = std::string("-12.5");
            second[i][5] = std::string("2031-07-08 09:10:11.012");
        }
        second.push_back(second.front());
        second.back()[0] = "a new key";
        load_both(a, b, second);
        // The COPY straight into the table, refused for its stored keys, then the COPY into
        // the staging table.
        CHECK(binary.binary_copies == 3);
        CHECK(binary.text_copies == 0);
    }

    SECTION("a table made by hand: other types and typmods, rounded as text input rounds") {
        sql::Table a;
        a.name = prefix + "hand";
        a.primary_key = "id";
        a.columns = {{"id", sql::ColumnType::key},          {"small", sql::ColumnType::integer},
                     {"medium", sql::ColumnType::integer},  {"money", sql::ColumnType::number},
                     {"plain", sql::ColumnType::timestamp}, {"zoned", sql::ColumnType::timestamp},
                     {"doc", sql::ColumnType::json},        {"note", sql::ColumnType::text}};
        sql::Table b = a;
        b.name = prefix + "hand_text";
        for (const auto* t : {&a, &b}) {
            db->execute("CREATE TABLE " + dialect->quote(t->name) +
                        " (id varchar(40) PRIMARY KEY, small int2, medium int4, "
                        "money numeric(12,2), plain timestamp(0), zoned timestamptz, doc json, "
                        "note varchar(200))");
        }
        std::vector<sql::Row> rows;
        const std::vector<const char*> money = {"12.345",         "-12.345", "0.005",
                                                "9999999999.994", "1",       "-0.004"};
        const std::vector<const char*> times = {"2024-01-01 00:00:00.5", "2024-01-01 23:59:59.5",
                                                "1999-12-31 23:59:59.499999",
                                                "2000-01-01 00:00:00"};
        for (int i = 0; i < 40; ++i) {
            rows.push_back({"h" + std::to_string(i), std::to_string(i % 2 ? -32768 : 32767),
                            std::to_string(i % 2 ? -2147483647 - 1 : 2147483647),
                            std::string(money[static_cast<std::size_t>(i) % money.size()]),
                            std::string(times[static_cast<std::size_t>(i) % times.size()]),
                            std::string(times[static_cast<std::size_t>(i + 1) % times.size()]),
                            std::string(R"({"b": 1, "a": [1, 2.50], "b": "dup"})"),
                            i % 5 == 0 ? sql::Value{} : sql::Value{"note " + std::to_string(i)}});
        }
        load_both(a, b, rows);
        CHECK(binary.binary_copies == 1);
        CHECK(binary.text_copies == 0);

        // A bound column of a type the encoder does not write (date): the table goes as
        // text, and stores what text stores.
        for (const auto* t : {&a, &b}) {
            db->execute("ALTER TABLE " + dialect->quote(t->name) + " ADD COLUMN day date");
        }
        sql::Table a_day = a;
        sql::Table b_day = b;
        a_day.columns.push_back({"day", sql::ColumnType::text});
        b_day.columns.push_back({"day", sql::ColumnType::text});
        for (auto& r : rows) {
            r.push_back(std::string("2024-02-29"));
            r[7] = std::string("changed");
        }
        load_both(a_day, b_day, rows);
        // Two COPYs: straight into the table, refused for its stored keys, then into the
        // staging table.
        CHECK(binary.binary_copies == 1);
        CHECK(binary.text_copies == 2);
        for (const auto* t : {&a, &b}) {
            db->execute("DROP TABLE " + dialect->quote(t->name));
        }
    }

    SECTION("a server that keeps times as floats gets tables with times as text") {
        const sql::Table probe = hostile_table(prefix + "probe");
        const sql::Table a = hostile_table(prefix + "floats");
        const sql::Table b = hostile_table(prefix + "floats_text");
        sql::SchemaManager schema(*db);
        for (const auto* t : {&probe, &a, &b}) {
            schema.ensure(*t);
        }
        // PostgreSQL 10 and later always keep them as integers, and say so.
        copy_rows(connection.get(), *dialect, probe, numbered_rows(0, 1, "probe"), binary);
        CHECK(binary.integer_datetimes == std::optional<bool>(true));
        CHECK(binary.binary_copies == 1);
        drivers::postgres::CopySession floats;
        floats.integer_datetimes = false;
        const auto rows = binary_edge_rows();
        copy_rows(connection.get(), *dialect, a, rows, floats);
        copy_rows(connection.get(), *dialect, b, rows, text);
        CHECK(floats.binary_copies == 0);
        CHECK(floats.text_copies == 1);
        CHECK(crmsync::testing::dump_table(*db, a.name, {}) ==
              crmsync::testing::dump_table(*db, b.name, {}));
        // A table without times still goes in binary.
        sql::Table plain;
        plain.name = prefix + "floats_plain";
        plain.primary_key = "id";
        plain.columns = {{"id", sql::ColumnType::key}, {"n", sql::ColumnType::integer}};
        db->execute("CREATE TABLE " + dialect->quote(plain.name) +
                    " (id varchar(40) PRIMARY KEY, n int8)");
        copy_rows(connection.get(), *dialect, plain, {{"p1", "1"}, {"p2", "-2"}}, floats);
        CHECK(floats.binary_copies == 1);
        CHECK(db->query("SELECT sum(n) FROM " + dialect->quote(plain.name)).at(0).at(0) ==
              std::optional<std::string>("-1"));
    }

    SECTION("a binary COPY the server refuses half-way leaves the transaction undone") {
        const sql::Table a = hostile_table(prefix + "refused");
        const sql::Table other = hostile_table(prefix + "refused_other");
        sql::SchemaManager schema(*db);
        schema.ensure(a);
        schema.ensure(other);
        copy_rows(connection.get(), *dialect, a, numbered_rows(0, 10, "one"), binary);
        db->execute("ALTER TABLE " + dialect->quote(a.name) + " ALTER COLUMN " +
                    dialect->quote("label") + " TYPE varchar(8)");
        const auto before = crmsync::testing::dump_table(*db, a.name, {});
        const long sent = binary.binary_copies;
        PQclear(PQexec(connection.get(), "BEGIN"));
        copy_rows(connection.get(), *dialect, other, numbered_rows(0, 10, "two"), binary);
        auto fresh = numbered_rows(10, k_bulk_rows, "fits");
        fresh[40][1] = std::string("far too long for the column");
        std::string message;
        try {
            copy_rows(connection.get(), *dialect, a, fresh, binary);
        } catch (const crmsync::Error& e) {
            message = e.what();
        }
        INFO(message);
        CHECK(message.find("too long") != std::string::npos);
        CHECK(binary.binary_copies == sent + 2); // both went in binary
        PQclear(PQexec(connection.get(), "ROLLBACK"));
        CHECK(crmsync::testing::dump_table(*db, a.name, {}) == before);
        CHECK(crmsync::testing::count_rows(*db, other.name) == 0);
    }

    SECTION("a value the encoder does not read with certainty sends its batch as text") {
        const sql::Table a = hostile_table(prefix + "unsure");
        const sql::Table b = hostile_table(prefix + "unsure_text");
        sql::SchemaManager schema(*db);
        schema.ensure(a);
        schema.ensure(b);
        auto rows = numbered_rows(0, 10, "one");
        rows[3][5] = std::string("2024-01-02T03:04:05+02:00"); // the server reads it
        load_both(a, b, rows);
        CHECK(binary.binary_copies == 0);
        CHECK(binary.text_copies == 1);
        CHECK(db->query("SELECT at FROM " + dialect->quote(a.name) + " WHERE id = 'r3'")
                  .at(0)
                  .at(0)
                  .value_or("")
                  .find("01:04:05") != std::string::npos);
        // The next batch, all canonical, goes in binary again.
        load_both(a, b, numbered_rows(10, 10, "two"));
        CHECK(binary.binary_copies == 1);
        CHECK(binary.text_copies == 1);
    }
}

TEST_CASE("PostgreSQL locks and looks up the tables of a first load once per transaction",
          "[postgres]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "postgres");
    if (!target) {
        return;
    }
    auto db = crmsync::testing::open(target->url);
    const auto dialect = drivers::postgres::make_dialect();
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table a = hostile_table(prefix + "locked_a");
    const sql::Table b = hostile_table(prefix + "locked_b");
    sql::SchemaManager schema(*db);
    schema.ensure(a);
    schema.ensure(b);
    // Whether the session of backend `pid` holds ROW EXCLUSIVE on `table`, as another
    // session (`db`) sees it.
    const auto locked_by = [&](const std::string& pid, const sql::Table& table) {
        return db->query("SELECT count(*) FROM pg_locks WHERE relation = " + std::string("'") +
                         dialect->quote(table.name) +
                         "'::regclass AND mode = 'RowExclusiveLock' AND granted AND "
                         "pid = " +
                         pid)
                   .at(0)
                   .at(0) == std::optional<std::string>("1");
    };

    SECTION("a session told of its transactions looks up once per transaction, and again "
            "after a table changed between them") {
        PgConnection connection(target->url, *dialect);
        const std::string pid = std::to_string(PQbackendPID(connection.get()));
        drivers::postgres::CopySession session;
        const auto begin = [&] {
            PQclear(PQexec(connection.get(), "BEGIN"));
            ++session.transaction;
        };
        const auto commit = [&] {
            PQclear(PQexec(connection.get(), "COMMIT"));
            ++session.transaction;
        };
        // Each table is new to the session in its first transaction: a lookup each.
        begin();
        copy_rows(connection.get(), *dialect, a, numbered_rows(0, k_bulk_rows, "one"), session);
        copy_rows(connection.get(), *dialect, b, numbered_rows(0, k_bulk_rows, "one"), session);
        commit();
        CHECK(session.type_lookups == 2);

        // The next transaction looks both up at its first load, and locks both: nobody
        // can alter b between that lookup and b's own COPY.
        begin();
        copy_rows(connection.get(), *dialect, a, numbered_rows(k_bulk_rows, k_bulk_rows, "two"),
                  session);
        CHECK(locked_by(pid, b));
        copy_rows(connection.get(), *dialect, b, numbered_rows(k_bulk_rows, k_bulk_rows, "two"),
                  session);
        commit();
        CHECK(session.type_lookups == 3);
        CHECK_FALSE(locked_by(pid, b));

        // An integer column turned into text between transactions: binary integers sent
        // into it would be stored as other text. The new transaction looks the type up.
        db->execute("ALTER TABLE " + dialect->quote(b.name) + " ALTER COLUMN " +
                    dialect->quote("count") + " TYPE text");
        begin();
        copy_rows(connection.get(), *dialect, a,
                  numbered_rows(2 * k_bulk_rows, k_bulk_rows, "three"), session);
        copy_rows(connection.get(), *dialect, b,
                  numbered_rows(2 * k_bulk_rows, k_bulk_rows, "three"), session);
        commit();
        CHECK(session.type_lookups == 4);
        CHECK(crmsync::testing::count_rows(*db, b.name) == static_cast<long>(3 * k_bulk_rows));
        CHECK(db->query("SELECT " + dialect->quote("count") + " FROM " + dialect->quote(b.name) +
                        " WHERE id = 'r" + std::to_string(2 * k_bulk_rows) + "'") ==
              std::vector<sql::Row>{{std::string("7")}});
        CHECK(session.binary_copies == 6);

        // A session not told of transactions looks up at every COPY.
        drivers::postgres::CopySession untold;
        PQclear(PQexec(connection.get(), "BEGIN"));
        const sql::Table c = hostile_table(prefix + "locked_c");
        schema.ensure(c);
        copy_rows(connection.get(), *dialect, c, numbered_rows(0, k_bulk_rows, "one"), untold);
        copy_rows(connection.get(), *dialect, c, numbered_rows(k_bulk_rows, k_bulk_rows, "two"),
                  untold);
        PQclear(PQexec(connection.get(), "COMMIT"));
        CHECK(untold.type_lookups == 2);
        CHECK(crmsync::testing::count_rows(*db, c.name) == static_cast<long>(2 * k_bulk_rows));
        db->execute("DROP TABLE " + dialect->quote(c.name));
    }

    SECTION("a crmsync connection numbers its transactions itself") {
        auto writer_db = crmsync::testing::open(target->url);
        const std::string pid = *writer_db->query("SELECT pg_backend_pid()").at(0).at(0);
        CHECK(write(*writer_db, a, numbered_rows(0, k_bulk_rows, "one"), "2030-01-01 00:00:00.000")
                  .inserted == static_cast<long>(k_bulk_rows));
        CHECK(write(*writer_db, b, numbered_rows(0, k_bulk_rows, "one"), "2030-01-01 00:00:00.000")
                  .inserted == static_cast<long>(k_bulk_rows));
        db->execute("ALTER TABLE " + dialect->quote(b.name) + " ALTER COLUMN " +
                    dialect->quote("count") + " TYPE text");
        {
            sql::BatchWriter writer(*writer_db);
            std::vector<sql::RejectedRow> rejected;
            sql::Transaction tx(*writer_db);
            writer.upsert({&a, numbered_rows(k_bulk_rows, k_bulk_rows, "two")},
                          "2030-01-01 00:00:00.000", rejected);
            CHECK(locked_by(pid, b));
            writer.upsert({&b, numbered_rows(k_bulk_rows, k_bulk_rows, "two")},
                          "2030-01-01 00:00:00.000", rejected);
            tx.commit();
            CHECK(rejected.empty());
        }
        CHECK_FALSE(locked_by(pid, b));
        CHECK(db->query("SELECT " + dialect->quote("count") + " FROM " + dialect->quote(b.name) +
                        " WHERE id = 'r" + std::to_string(k_bulk_rows) + "'") ==
              std::vector<sql::Row>{{std::string("7")}});
        CHECK(crmsync::testing::dump_table(*db, a.name, {}).size() ==
              crmsync::testing::dump_table(*db, b.name, {}).size());
    }

    SECTION("a transaction told which tables it writes locks only those") {
        auto writer_db = crmsync::testing::open(target->url);
        const std::string pid = *writer_db->query("SELECT pg_backend_pid()").at(0).at(0);
        write(*writer_db, a, numbered_rows(0, k_bulk_rows, "one"), "2030-01-01 00:00:00.000");
        write(*writer_db, b, numbered_rows(0, k_bulk_rows, "one"), "2030-01-01 00:00:00.000");
        // One batch of both tables, and then one of `a` alone; each time a is loaded first.
        const auto batch = [&](const std::vector<const sql::Table*>& tables, std::size_t first,
                               std::optional<bool> b_locked_after_a) {
            sql::BatchWriter writer(*writer_db);
            std::vector<sql::RejectedRow> rejected;
            sql::Transaction tx(*writer_db);
            std::vector<std::string> names;
            for (const auto* t : tables) {
                names.push_back(t->name);
            }
            writer_db->expect_writes(names);
            for (const auto* t : tables) {
                writer.upsert({t, numbered_rows(first, k_bulk_rows, "more")},
                              "2030-01-01 00:00:00.000", rejected);
                if (t == &a && b_locked_after_a) {
                    CHECK(locked_by(pid, b) == *b_locked_after_a);
                }
            }
            tx.commit();
            CHECK(rejected.empty());
        };
        batch({&a, &b}, k_bulk_rows, true);
        batch({&a}, 2 * k_bulk_rows, false);
        // b dropped between two batches that do not write it: they go on. (Locking every
        // table still loaded straight in, a batch failed on it: relation does not exist.)
        db->execute("DROP TABLE " + dialect->quote(b.name));
        batch({&a}, 3 * k_bulk_rows, std::nullopt);
        CHECK(crmsync::testing::count_rows(*db, a.name) == static_cast<long>(4 * k_bulk_rows));
        schema.ensure(b);
    }

    for (const auto* t : {&a, &b}) {
        db->execute("DROP TABLE " + dialect->quote(t->name));
    }
}

// A run's batches are committed without waiting for the disk (synchronous_commit off for their
// own transactions); the commit that ends the run waits, as the session's setting says, and so
// makes every batch before it durable. A deferred trigger records the setting each COMMIT ran
// with: it fires inside the COMMIT, after what a driver sends before it. The session's setting
// is on here (the test server's own is off).
TEST_CASE("PostgreSQL: a run's batches commit without waiting for the disk and its end waits",
          "[postgres]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "postgres");
    if (!target) {
        return;
    }
    const std::string durable_url = target->url +
                                    (target->url.find('?') == std::string::npos ? "?" : "&") +
                                    "options=-csynchronous_commit%3Don";
    auto db = crmsync::testing::open(target->url);
    auto writer_db = crmsync::testing::open(durable_url);
    const std::string prefix = crmsync::testing::unique_prefix();
    const std::string job = "test:" + prefix;
    const sql::Table table = hostile_table(prefix + "durability");
    pipeline::RunSummary summary;
    pipeline::TargetWriter writer(*writer_db, job, summary);
    REQUIRE(writer.lock());
    writer.prepare({&table});
    const std::string log = prefix + "commit_log";
    db->execute("CREATE TABLE " + log + " (n serial PRIMARY KEY, setting text)");
    db->execute("CREATE FUNCTION " + prefix +
                "log_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN INSERT INTO " +
                log +
                " (setting) VALUES "
                "(current_setting('synchronous_commit')); "
                "RETURN NULL; END $$");
    db->execute("CREATE CONSTRAINT TRIGGER " + prefix +
                "commit_log AFTER INSERT OR UPDATE ON "
                "crmsync_state DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.job = '" +
                job + "') EXECUTE FUNCTION " + prefix + "log_commit()");
    const auto cleanup = [&] {
        db->execute("DROP TRIGGER IF EXISTS " + prefix + "commit_log ON crmsync_state");
        db->execute("DROP FUNCTION IF EXISTS " + prefix + "log_commit()");
        db->execute("DROP TABLE IF EXISTS " + log);
        db->execute("DROP TABLE IF EXISTS " + db->dialect().quote(table.name));
        db->execute("DELETE FROM crmsync_state WHERE job = '" + job + "'");
    };
    const auto next_xid = [&] {
        return std::stol(
            *db->query("SELECT txid_snapshot_xmax(txid_current_snapshot())").at(0).at(0));
    };
    long row = 0;
    const auto add_rows = [&] {
        for (auto& r : numbered_rows(static_cast<std::size_t>(row), k_bulk_rows, "batch")) {
            writer.add(table, std::move(r));
        }
        row += static_cast<long>(k_bulk_rows);
    };
    try {
        for (int batch = 1; batch <= 3; ++batch) {
            add_rows();
            writer.commit_deferred("checkpoint " + std::to_string(batch), "{}");
            // Committed and visible at once, like any commit.
            CHECK(crmsync::testing::count_rows(*db, table.name) == row);
        }
        add_rows();
        writer.commit(std::nullopt, R"({"phase":"end"})");
        add_rows();
        writer.commit_deferred("checkpoint 4", "{}");
        // The driver alone: a durable commit after a deferred one, in a transaction that
        // wrote nothing. Such a transaction has no id, hence no commit record, and would flush
        // nothing; it must take an id to make the commits before it durable. (The writer's
        // commits always have one: its state row upsert locks the row.)
        {
            sql::Transaction deferred(*writer_db);
            writer_db->execute("INSERT INTO " + log + " (setting) VALUES ('driver')");
            deferred.commit(sql::CommitWait::deferred);
        }
        const long xid_before = next_xid();
        sql::Transaction empty(*writer_db);
        empty.commit();
        CHECK(next_xid() > xid_before);
        add_rows();
        writer.commit(std::nullopt, R"({"phase":"end again"})");
        std::vector<std::string> settings;
        for (const auto& r : db->query("SELECT setting FROM " + log + " ORDER BY n")) {
            settings.push_back(r.at(0).value_or("NULL"));
        }
        CHECK(settings ==
              std::vector<std::string>{"off", "off", "off", "on", "off", "driver", "on"});
        CHECK(writer.load_checkpoint() == "checkpoint 4");
        CHECK(crmsync::testing::count_rows(*db, table.name) == row);
        CHECK(summary.tables[table.name].inserted == row);
        // A transaction that failed is not reported committed, deferred or not (the server
        // answers its COMMIT with ROLLBACK).
        for (const auto wait : {sql::CommitWait::durable, sql::CommitWait::deferred}) {
            sql::Transaction failed(*writer_db);
            CHECK_THROWS_AS(writer_db->execute("SELECT 1 / 0"), Error);
            CHECK_THROWS_AS(failed.commit(wait), Error);
        }
    } catch (...) {
        cleanup();
        throw;
    }
    cleanup();
}

// The same through the writer every SQL job uses: it tells each transaction which tables its
// batch writes, so a later batch of a run does not touch a table only an earlier one wrote
// (Dialfire's inbound calls arrive in the first batch only).
TEST_CASE("PostgreSQL: a run's batch goes on when a table it does not write was dropped",
          "[postgres]") {
    TempDir dir;
    const auto target = crmsync::testing::target_named(dir, "postgres");
    if (!target) {
        return;
    }
    auto db = crmsync::testing::open(target->url);
    auto writer_db = crmsync::testing::open(target->url);
    const auto& dialect = db->dialect();
    const std::string prefix = crmsync::testing::unique_prefix();
    const sql::Table a = hostile_table(prefix + "batch_a");
    const sql::Table b = hostile_table(prefix + "batch_b");
    pipeline::RunSummary summary;
    pipeline::TargetWriter writer(*writer_db, "test:" + prefix, summary);
    REQUIRE(writer.lock());
    writer.prepare({&a, &b});
    for (auto& row : numbered_rows(0, k_bulk_rows, "one")) {
        writer.add(a, row);
        writer.add(b, std::move(row));
    }
    writer.commit(std::nullopt, "first batch");
    db->execute("DROP TABLE " + dialect.quote(b.name));
    for (auto& row : numbered_rows(k_bulk_rows, k_bulk_rows, "two")) {
        writer.add(a, std::move(row));
    }
    CHECK_NOTHROW(writer.commit(std::nullopt, "second batch"));
    CHECK(crmsync::testing::count_rows(*db, a.name) == static_cast<long>(2 * k_bulk_rows));
    CHECK(summary.tables[a.name].inserted == static_cast<long>(2 * k_bulk_rows));
    db->execute("DROP TABLE " + dialect.quote(a.name));
    db->execute("DELETE FROM " + dialect.quote("crmsync_state") + " WHERE " + dialect.quote("job") +
                " = 'test:" + prefix + "'");
}

TEST_CASE("JSON texts in jsonb's member order list members as PostgreSQL stores them",
          "[postgres]") {
    // The dialect asks for that order so that the server stores _raw without sorting each
    // object: the order must be the server's own, or it sorts them anyway.
    TempDir dir;
    auto db = crmsync::testing::open_named(dir, "postgres");
    if (!db) {
        return;
    }
    REQUIRE(db->dialect().json_member_order() == sql::JsonMemberOrder::jsonb);
    nlohmann::json record = nlohmann::json::object();
    // Names whose escaped text is longer than the name (a quote, a backslash, a control
    // character) sort by the name: so does jsonb.
    for (const char* name :
         {"zz",  "a",    "bb",           "\xc3\xa9", "Z",  "id", "aa",       "$id",
          "a b", "_raw", "\xe2\x82\xac", "B",        "ab", "ba", "$changed", "user_loginName",
          "q\"", "\\",   "t\tb",         "\x01"}) {
        record[name] = name;
    }
    record["nested"] = nlohmann::json::object({{"yy", 1}, {"x", 2}, {"Xx", 3}});
    sql::set_json_member_order(sql::JsonMemberOrder::jsonb);
    const std::string text = sql::to_json_text(record);
    sql::set_json_member_order(sql::JsonMemberOrder::by_name);
    // The top-level names of a JSON text, in the text's order.
    const auto names_in = [](const std::string& json_text) {
        std::vector<std::string> names;
        const auto parsed = nlohmann::json::parse(
            json_text, [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& value) {
                if (depth == 1 && event == nlohmann::json::parse_event_t::key) {
                    names.push_back(value.get<std::string>());
                }
                return true;
            });
        CHECK(parsed.is_object());
        return names;
    };
    std::vector<std::string> stored;
    for (const auto& row :
         db->query("SELECT k FROM jsonb_object_keys(CAST(:doc AS jsonb)) AS k", {text})) {
        stored.push_back(row.at(0).value_or("NULL"));
    }
    CHECK(names_in(text) == stored);
    const auto nested = db->query(
        "SELECT string_agg(k, ',') FROM jsonb_object_keys(CAST(:doc AS jsonb) -> 'nested') AS k",
        {text});
    REQUIRE(nested.size() == 1);
    CHECK(nested[0].at(0) == std::optional<std::string>("x,Xx,yy"));
    CHECK(names_in(text) != names_in(record.dump())); // the default order is not jsonb's
}
