// Records read from simdjson's document give exactly what the same records read from
// nlohmann's document give: the JSON texts (_raw) in both member orders, pruned texts, column
// values and their problems. Hostile texts: repeated names, NULs, big and negative numbers,
// floats, escapes, invalid UTF-8, objects with many members.

#include "lib/util/json_doc.hpp"

#include "lib/sql/json_values.hpp"

#include "lib/http/json_body.hpp"
#include "lib/sql/dialect.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace crmsync;
using util::json_doc::Nlohmann;
using util::json_doc::Simdjson;

namespace {

// Texts whose documents both paths must read alike.
std::vector<std::string> hostile_texts() {
    std::vector<std::string> texts = {
        R"({"b":1,"a":2,"a":3,"ab":{"z":null,"y":[1,2,{"k":"v","k":"w"}]},"":"empty"})",
        R"({"nul\u0000key":"v\u0000w","arr":[{"x":1,"y":2},{"x":"s","x":"t"}],"b":true})",
        R"({"big":18446744073709551615,"neg":-9223372036854775808,"f":1.0,"g":1e300,)"
        R"("h":-0.0,"i":0.1,"e":2.5E-3,"zero":0,"one":1,"minus_one":-1})",
        R"([1,"two",null,false,{"a":[]},[],{}])",
        R"("just a string \"quoted\" \\ \n")",
        R"({"uni":"\u00e9\ud83d\ude00 \u001f","esc":"tab\tnl\n\r\b\f/","lone":"\ud800x"})",
        "{\"bad\":\"\xff\xfe ok\",\"\xc3\":1}",
        R"({"time":"2026-12-07T10:00:00.123+02:00","late":"9999-12-31T23:00:00-05:00",)"
        R"("flag":"true","flag0":"0","num":"1.5e3","int":"42","empty":"","t":true})",
        R"({"arr":[{"x":{"deep":[{"x":1}]},"y":[1,[2,[3]]]}],"arr2":"not an array"})",
        R"(12345)",
        R"(null)",
    };
    // An object with more members than fit on the stack, 60 names of several lengths, each
    // repeated two or three times ("k1", a column below, at members 21, 81 and 141).
    std::string many = "{";
    for (int i = 0; i < 150; ++i) {
        many += (i == 0 ? "" : ",") + std::string("\"") +
                std::string(static_cast<std::size_t>(i % 3) + 1, 'k') + std::to_string(i % 20) +
                "\":" + std::to_string(i);
    }
    texts.push_back(many + "}");
    return texts;
}

// Columns of every type, reading the members the texts above have.
sql::TableSpec every_type() {
    sql::TableSpec spec;
    spec.table.name = "t";
    const std::vector<std::pair<std::string, sql::ColumnType>> columns = {
        {"a", sql::ColumnType::key},
        {"b", sql::ColumnType::boolean},
        {"ab", sql::ColumnType::json},
        {"big", sql::ColumnType::number},
        {"neg", sql::ColumnType::integer},
        {"f", sql::ColumnType::number},
        {"g", sql::ColumnType::text},
        {"h", sql::ColumnType::number},
        {"i", sql::ColumnType::number},
        {"e", sql::ColumnType::integer},
        {"zero", sql::ColumnType::boolean},
        {"one", sql::ColumnType::boolean},
        {"minus_one", sql::ColumnType::boolean},
        {"time", sql::ColumnType::timestamp},
        {"late", sql::ColumnType::timestamp},
        {"flag", sql::ColumnType::boolean},
        {"flag0", sql::ColumnType::boolean},
        {"num", sql::ColumnType::number},
        {"int", sql::ColumnType::integer},
        {"empty", sql::ColumnType::timestamp},
        {"t", sql::ColumnType::text},
        {"arr", sql::ColumnType::text},
        {"uni", sql::ColumnType::key},
        {std::string("nul\0key", 7), sql::ColumnType::text},
        {"bad", sql::ColumnType::text},
        {"k1", sql::ColumnType::integer},
    };
    for (const auto& [name, type] : columns) {
        spec.table.columns.push_back({name, type});
        spec.sources.push_back(name);
    }
    spec.table.columns.push_back({"_raw", sql::ColumnType::json});
    spec.sources.emplace_back();
    return spec;
}

} // namespace

TEST_CASE("util::json_doc: a record read from simdjson's document gives what nlohmann's gives",
          "[unit]") {
    const auto order = GENERATE(sql::JsonMemberOrder::by_name, sql::JsonMemberOrder::jsonb);
    sql::set_json_member_order(order);
    const sql::JsonPrune prune{{"b", "a"}, {{"arr", sql::JsonPrune{{"x"}, {}}}}};
    const auto spec = every_type();
    for (const auto& text : hostile_texts()) {
        INFO("text: " << text << "\norder " << static_cast<int>(order));
        const auto slow = http::parse_json_body(text);
        const auto fast = http::parse_json_body(text, true);
        REQUIRE_FALSE(slow.doc.is_discarded());
        REQUIRE(fast.simdjson_doc != nullptr);
        CHECK(fast.repaired_bytes == slow.repaired_bytes);
        const simdjson::dom::element root = fast.simdjson_doc->root();
        CHECK(sql::to_json_text(root) == sql::to_json_text(slow.doc));
        CHECK(sql::to_json_text_pruned(root, prune) == sql::to_json_text_pruned(slow.doc, prune));
        CHECK(sql::to_json_text_without(root, {"ab", "nul"}) ==
              sql::to_json_text_without(slow.doc, {"ab", "nul"}));
        if (slow.doc.is_object()) {
            CHECK(Simdjson::object_size(root) == Nlohmann::object_size(slow.doc));
        }
        // Each column alone, so that every value's problem (not only the first) is compared.
        for (std::size_t i = 0; i + 1 < spec.table.columns.size(); ++i) {
            sql::TableSpec one;
            one.table.columns = {spec.table.columns[i], spec.table.columns.back()};
            one.sources = {spec.sources[i], ""};
            INFO("column " << spec.table.columns[i].name);
            sql::Row slow_row;
            sql::Row fast_row;
            std::string slow_problem;
            std::string fast_problem;
            const bool slow_ok =
                sql::row_from_json(one, slow.doc, {{"_raw", "r"}}, slow_row, slow_problem);
            const bool fast_ok =
                sql::row_from_json(one, root, {{"_raw", "r"}}, fast_row, fast_problem);
            CHECK(fast_ok == slow_ok);
            CHECK(fast_problem == slow_problem);
            if (fast_ok && slow_ok) {
                CHECK(fast_row == slow_row);
            }
        }
    }
    sql::set_json_member_order(sql::JsonMemberOrder::by_name);
}

TEST_CASE("util::json_doc: simdjson's document is not kept for a text nlohmann reads differently",
          "[unit]") {
    // -0 is nlohmann's signed integer 0 and simdjson's plain 0; numbers beyond 64 bits and
    // text that is not JSON simdjson does not take. Those go nlohmann's way.
    for (const std::string text :
         {R"({"z":-0})", R"([1, -0 ])", R"({"n":123456789012345678901234567890})", R"({"a":)"}) {
        INFO(text);
        const auto body = http::parse_json_body(text, true);
        CHECK(body.simdjson_doc == nullptr);
        const auto slow = http::parse_json_body(text);
        REQUIRE(body.doc.is_discarded() == slow.doc.is_discarded());
        if (!slow.doc.is_discarded()) {
            CHECK(body.doc.dump() == slow.doc.dump());
        }
    }
}

TEST_CASE("util::json_doc::Simdjson::Members orders members as nlohmann's map does", "[unit]") {
    const std::string text = R"({"b":1,"a":2,"\u00ff":3,"a":4,"":5,"B":6,"aa":7,"b":8})";
    const auto body = http::parse_json_body(text, true);
    REQUIRE(body.simdjson_doc != nullptr);
    using Listed = std::vector<std::pair<std::string, std::int64_t>>;
    const auto listed = [&](Simdjson::Order order) {
        const Simdjson::Members members(body.simdjson_doc->root(), order);
        Listed seen;
        for (std::size_t i = 0; i < members.size(); ++i) {
            const auto [name, value] = members[i];
            seen.emplace_back(std::string(name), int64_t(value));
        }
        return seen;
    };
    // Bytes compared unsigned ("\u00ff" is C3 BF, after every ASCII name); a repeated name
    // keeps its last value.
    CHECK(listed(Simdjson::Order::by_name) ==
          Listed{{"", 5}, {"B", 6}, {"a", 4}, {"aa", 7}, {"b", 8}, {"\xC3\xBF", 3}});
    // jsonb's order: by length, by name within a length; a repeated name still once, last.
    CHECK(listed(Simdjson::Order::by_length_then_name) ==
          Listed{{"", 5}, {"B", 6}, {"a", 4}, {"b", 8}, {"aa", 7}, {"\xC3\xBF", 3}});
}

TEST_CASE("sql::row_from_json: a simdjson record's columns come from one walk over it", "[unit]") {
    // fill_row finds a simdjson record's members through an index of the table's sources,
    // kept per thread by the spec's address. Every column at once, columns sharing a source, a
    // table with more columns than the index's first size, and a spec whose sources change in
    // place after a row (the index must follow) all read what nlohmann's document gives.
    const auto same_rows = [](const sql::TableSpec& spec, const std::string& text) {
        INFO("text: " << text);
        const auto slow = http::parse_json_body(text);
        const auto fast = http::parse_json_body(text, true);
        REQUIRE(fast.simdjson_doc != nullptr);
        sql::Row slow_row;
        sql::Row fast_row;
        std::string slow_problem;
        std::string fast_problem;
        const bool slow_ok = sql::row_from_json(spec, slow.doc, {}, slow_row, slow_problem);
        const bool fast_ok =
            sql::row_from_json(spec, fast.simdjson_doc->root(), {}, fast_row, fast_problem);
        CHECK(fast_ok == slow_ok);
        CHECK(fast_problem == slow_problem);
        CHECK(fast_row == slow_row);
        return fast_row;
    };

    SECTION("every column at once, the first problem in column order") {
        const auto spec = every_type();
        for (const auto& text : hostile_texts()) {
            same_rows(spec, text);
        }
    }
    SECTION("columns sharing a source each get its last value") {
        sql::TableSpec spec;
        for (const char* name : {"x", "a", "y", "a", "b", "a"}) {
            spec.table.columns.push_back(
                {std::string(name) + std::to_string(spec.sources.size()), sql::ColumnType::text});
            spec.sources.emplace_back(name);
        }
        const auto row = same_rows(spec, R"({"a":"first","b":"b","a":"last","z":1})");
        CHECK(row == sql::Row{std::nullopt, "last", std::nullopt, "last", "b", "last"});
    }
    SECTION("a column for each of 150 members, names of many lengths, some repeated") {
        sql::TableSpec spec;
        std::string text = "{";
        for (int i = 0; i < 150; ++i) {
            // Names repeat every 40 members.
            const std::string name =
                std::string(static_cast<std::size_t>(i % 5) + 1, 'k') + std::to_string(i % 40);
            text += (i == 0 ? "\"" : ",\"") + name + "\":" + std::to_string(i);
            spec.table.columns.push_back({"c" + std::to_string(i), sql::ColumnType::integer});
            spec.sources.push_back(name);
        }
        const auto row = same_rows(spec, text + "}");
        // "k0" is members 0, 40, 80 and 120: every column reading it gets the last value.
        for (const std::size_t column : {0, 40, 80, 120}) {
            CHECK(row.at(column) == "120");
        }
    }
    SECTION("a spec whose sources change after a row") {
        sql::TableSpec spec;
        spec.table.columns = {{"first", sql::ColumnType::text}, {"second", sql::ColumnType::text}};
        spec.sources = {"a", "b"};
        const std::string text = R"({"a":"A","b":"B","c":"C"})";
        CHECK(same_rows(spec, text) == sql::Row{"A", "B"});
        spec.sources = {"b", "a"};
        CHECK(same_rows(spec, text) == sql::Row{"B", "A"});
        spec.sources[1] = "c";
        CHECK(same_rows(spec, text) == sql::Row{"B", "C"});
        spec.table.columns.push_back({"third", sql::ColumnType::text});
        spec.sources.emplace_back("a");
        CHECK(same_rows(spec, text) == sql::Row{"B", "C", "A"});
    }
}

TEST_CASE("util::json_doc: a kept document larger than the thread's parser reads alike", "[unit]") {
    // Answers above 1 MB go through a parser made for them alone, which is gone when
    // parse_json_body returns: the kept document must own everything it points to. A small
    // answer parsed after it goes through the thread's parser again.
    const std::string big_value(1536 * 1024, 'x');
    const std::string big = R"([{"$id":"c1","note":")" + big_value +
                            R"(","n":-5,"f":2.5,"tags":["a","b"]},{"$id":"c2","note":"\u00e9"}])";
    REQUIRE(big.size() > std::size_t{1} << 20);
    const auto small_text = std::string(R"({"$id":"s","note":"small"})");
    for (const auto& text : {big, small_text, big}) {
        const auto slow = http::parse_json_body(text);
        const auto fast = http::parse_json_body(text, true);
        REQUIRE(fast.simdjson_doc != nullptr);
        const simdjson::dom::element root = fast.simdjson_doc->root();
        CHECK(sql::to_json_text(root) == sql::to_json_text(slow.doc));
        if (text.size() > small_text.size()) {
            sql::TableSpec spec;
            spec.table.columns = {{"note", sql::ColumnType::text}, {"n", sql::ColumnType::integer}};
            spec.sources = {"note", "n"};
            sql::Row row;
            std::string problem;
            const simdjson::dom::element first = root.at(std::size_t{0});
            REQUIRE(sql::row_from_json(spec, first, {}, row, problem));
            CHECK(row == sql::Row{big_value, "-5"});
        }
    }
}
