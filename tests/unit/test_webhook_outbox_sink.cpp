// Delivery bodies are composed from JSON texts (webhook::message_body) instead of parsing them
// back into objects; they must be byte for byte what writing the whole object wrote.

#include "drivers/webhook/outbox_sink.hpp"

#include "lib/sql/database.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/sql/table.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace crmsync;
namespace webhook = crmsync::drivers::webhook;

namespace {

// What the body was before: the members parsed back into one object, "state" set, written.
std::string body_the_old_way(const webhook::Message& m, const std::string& state) {
    nlohmann::json body = nlohmann::json::object();
    for (const auto& [name, text] : m.fields) {
        body[name] = nlohmann::json::parse(text);
    }
    body["state"] = state;
    return sql::to_json_text(body);
}

} // namespace

TEST_CASE("webhook::message_body writes what writing the whole object wrote", "[unit]") {
    const std::string nul("a\0b", 3);
    const std::string invalid_utf8 = "caf\xc3(\xff";
    const nlohmann::json contact = {
        {"$id", "C1"},
        {"name", nul},
        {"note", invalid_utf8},
        {"emoji", "\xf0\x9f\x98\x80 and \"quotes\" \\ /"},
        {"control", "\x01\x1f\t\n"},
        {"numbers", {1, -0.0, 1e30, 0.1, 18446744073709551615ULL, -9223372036854775807LL}},
        {"nested", {{"z", nullptr}, {"a", {true, false}}}},
    };
    const nlohmann::json transaction = {
        {"fired", "2026-01-01T00:00:00.000Z"}, {"task", "fc_call"}, {"\xff key", nul}};

    SECTION("a Dialfire transaction: contact and transaction, state between them") {
        webhook::Message m;
        m.fields = {{"contact", sql::to_json_text_without(contact, {"numbers"})},
                    {"transaction", sql::to_json_text(transaction)}};
        for (const std::string state : {"new", "updated"}) {
            const auto body = webhook::message_body(m, state);
            CHECK(body == body_the_old_way(m, state));
            CHECK(nlohmann::json::parse(body)["state"] == state);
        }
        m.fields["contact"] = sql::to_json_text(contact);
        CHECK(webhook::message_body(m, "new") == body_the_old_way(m, "new"));
    }
    SECTION("a row: table, key and record, names around and equal to state") {
        sql::Table table;
        table.name = "t\xff\"x";
        table.primary_key = "id";
        table.columns = {{"id", sql::ColumnType::text},
                         {"n", sql::ColumnType::integer},
                         {"doc", sql::ColumnType::json},
                         {"state", sql::ColumnType::text}};
        const sql::Row row{nul, std::string("42"), sql::to_json_text(contact), std::string("x")};
        const auto m = webhook::row_message(table, row);
        REQUIRE(m.has_value());
        CHECK(webhook::message_body(*m, "new") == body_the_old_way(*m, "new"));
        webhook::Message only_state;
        only_state.fields = {{"state", "\"old\""}, {"a", "1"}, {"zz", "[]"}};
        CHECK(webhook::message_body(only_state, "updated") ==
              R"({"a":1,"state":"updated","zz":[]})");
        CHECK(webhook::message_body(webhook::Message{}, "new") == R"({"state":"new"})");
    }
}
