// drivers/bitrix24/transform.hpp and parse_webhook_url: API records to rows, the stage-list
// diff, and the SQL the two tables get on SQL Server (no server here: golden text only).

#include "drivers/bitrix24/api_client.hpp"
#include "drivers/bitrix24/transform.hpp"
#include "drivers/sqlserver/dialect.hpp"
#include "lib/core/error.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace crmsync;
using namespace crmsync::drivers::bitrix24;
using nlohmann::json;

namespace {

sql::Value at(const sql::Table& table, const sql::Row& row, const std::string& column) {
    const auto pos = table.position(column);
    REQUIRE(pos != std::string::npos);
    return row.at(pos);
}

sql::Row stage(const Bitrix24Schema& schema, const json& record) {
    sql::Row row;
    std::string problem;
    REQUIRE(stage_row(schema.list(), record, row, problem));
    return row;
}

json stage_json(const std::string& id, const std::string& entity, const std::string& status,
                const std::string& name, const std::string& sort) {
    return {{"ID", id},      {"ENTITY_ID", entity},    {"STATUS_ID", status},
            {"NAME", name},  {"NAME_INIT", name},      {"SORT", sort},
            {"SYSTEM", "Y"}, {"CATEGORY_ID", nullptr}, {"SEMANTICS", nullptr}};
}

std::vector<const sql::Column*> bound(const sql::Table& table) {
    std::vector<const sql::Column*> out;
    for (const auto& c : table.columns) {
        if (!c.identity) {
            out.push_back(&c);
        }
    }
    return out;
}

} // namespace

TEST_CASE("bitrix24 schema: two tables per environment with identity IDs", "[unit]") {
    const auto schema = Bitrix24Schema::load("b24_", "TEST");
    const auto& list = schema.list().table;
    const auto& history = schema.history().table;
    CHECK(list.name == "b24_CRM_STAGE_LIST_TEST");
    CHECK(history.name == "b24_CRM_STAGE_HISTORY_TEST");
    for (const auto* t : {&list, &history}) {
        CHECK(t->primary_key == "ID");
        CHECK(t->find("ID")->identity);
        CHECK(t->key() == "EXTERNAL_ID");
    }
    CHECK(list.changed_at_column == "DATE_UPDATE");
    CHECK(history.changed_at_column == "DATE_INSERT");
    std::vector<std::string> indexed;
    for (const auto& index : history.indexes) {
        indexed.insert(indexed.end(), index.columns.begin(), index.columns.end());
    }
    CHECK(indexed == std::vector<std::string>{"OWNER_ID", "STAGE_ID", "CREATED_TIME"});
    std::vector<std::string> names;
    for (const auto& c : history.columns) {
        names.push_back(c.name);
    }
    CHECK(names == std::vector<std::string>{"ID", "EXTERNAL_ID", "TYPE_ID", "OWNER_ID",
                                            "DATE_INSERT", "CREATED_TIME", "START_DATE", "END_DATE",
                                            "NAME", "RESPONSIBLE_ID", "CATEGORY_ID",
                                            "STAGE_SEMANTIC_ID", "STAGE_ID", "IS_LOST"});
}

TEST_CASE("bitrix24 transform: API records become rows", "[unit]") {
    const auto schema = Bitrix24Schema::load("", "PROD");
    const auto& list = schema.list().table;
    const auto& history = schema.history().table;

    SECTION("pipelines are read from ENTITY_ID") {
        CHECK(stage_entity_id(0) == "DEAL_STAGE");
        CHECK(stage_entity_id(3) == "DEAL_STAGE_3");
        CHECK(category_of_entity("DEAL_STAGE") == 0);
        CHECK(category_of_entity("DEAL_STAGE_12") == 12);
        CHECK_FALSE(category_of_entity("STATUS"));
        CHECK_FALSE(category_of_entity("DEAL_STAGE_"));
        CHECK_FALSE(category_of_entity("DEAL_STAGE_3x"));
        CHECK_FALSE(category_of_entity("DEAL_STAGEX"));
        CHECK_FALSE(category_of_entity("DYNAMIC_130_STAGE_2"));
    }

    SECTION("a default-pipeline stage gets CATEGORY_ID 0 and numbers sent as strings") {
        const auto row = stage(schema, stage_json("101", "DEAL_STAGE", "NEW", "Новая", "10"));
        CHECK(at(list, row, "EXTERNAL_ID") == "101");
        CHECK(at(list, row, "CATEGORY_ID") == "0");
        CHECK(at(list, row, "SORT") == "10");
        CHECK(at(list, row, "ACTIVE") == "Y");
        CHECK(at(list, row, "NAME") == "Новая");
        CHECK_FALSE(at(list, row, "SEMANTICS"));
        CHECK_FALSE(at(list, row, "ID"));
        CHECK_FALSE(at(list, row, "DATE_INSERT"));
        CHECK_FALSE(at(list, row, "DATE_UPDATE"));
    }

    SECTION("a stage of another pipeline keeps the CATEGORY_ID the portal sends") {
        auto record = stage_json("117", "DEAL_STAGE_3", "C3:WON", "Engaged", "50");
        record["CATEGORY_ID"] = "3";
        record["SEMANTICS"] = "S";
        const auto row = stage(schema, record);
        CHECK(at(list, row, "CATEGORY_ID") == "3");
        CHECK(at(list, row, "SEMANTICS") == "S");
    }

    SECTION("a stage without an ID or with a SORT that is no number is refused") {
        sql::Row row;
        std::string problem;
        auto record = stage_json("", "DEAL_STAGE", "NEW", "New", "10");
        record.erase("ID");
        CHECK_FALSE(stage_row(schema.list(), record, row, problem));
        CHECK(problem == "a stage without ID");
        record["ID"] = "5";
        record["SORT"] = "ten";
        CHECK_FALSE(stage_row(schema.list(), record, row, problem));
        CHECK(problem == "SORT: expected an integer, got \"ten\"");
    }

    SECTION("a history item: UTC times, the deal title as NAME, IS_LOST from the semantics") {
        const json item = {{"ID", 35},
                           {"TYPE_ID", "3"},
                           {"OWNER_ID", 21},
                           {"CREATED_TIME", "2024-04-25T17:59:11+03:00"},
                           {"CATEGORY_ID", 3},
                           {"STAGE_SEMANTIC_ID", "F"},
                           {"STAGE_ID", "C3:LOSE"}};
        sql::Row row;
        std::string problem;
        REQUIRE(history_row(schema.history(), item, std::string("Match #21"), row, problem));
        CHECK(at(history, row, "EXTERNAL_ID") == "35");
        CHECK(at(history, row, "TYPE_ID") == "3");
        CHECK(at(history, row, "OWNER_ID") == "21");
        CHECK(at(history, row, "CREATED_TIME") == "2024-04-25 14:59:11.000");
        CHECK(at(history, row, "CATEGORY_ID") == "3");
        CHECK(at(history, row, "STAGE_ID") == "C3:LOSE");
        CHECK(at(history, row, "NAME") == "Match #21");
        CHECK(at(history, row, "IS_LOST") == "Y");
        for (const char* empty :
             {"ID", "DATE_INSERT", "START_DATE", "END_DATE", "RESPONSIBLE_ID"}) {
            INFO(empty);
            CHECK_FALSE(at(history, row, empty));
        }
        auto won = item;
        won["STAGE_SEMANTIC_ID"] = "S";
        REQUIRE(history_row(schema.history(), won, std::nullopt, row, problem));
        CHECK(at(history, row, "IS_LOST") == "N");
        CHECK_FALSE(at(history, row, "NAME"));
    }

    SECTION("a history item without an ID or with a date that is not one is refused") {
        sql::Row row;
        std::string problem;
        CHECK_FALSE(
            history_row(schema.history(), json{{"OWNER_ID", 1}}, std::nullopt, row, problem));
        CHECK(problem == "a history item without ID");
        CHECK_FALSE(history_row(schema.history(), json{{"ID", 1}, {"CREATED_TIME", "yesterday"}},
                                std::nullopt, row, problem));
        CHECK(problem == "CREATED_TIME: expected an ISO-8601 time, got \"yesterday\"");
    }
}

TEST_CASE("bitrix24 diff_stages: what the stage list must do to match the portal", "[unit]") {
    const auto schema = Bitrix24Schema::load("", "PROD");
    const auto& list = schema.list().table;
    const auto stored_row = [&](const json& record, const char* active = "Y") {
        auto row = stage(schema, record);
        row[list.position("ID")] = "1";
        row[list.position("DATE_INSERT")] = "2024-01-01 00:00:00";
        row[list.position("DATE_UPDATE")] = "2024-01-02 00:00:00";
        row[list.position("ACTIVE")] = active;
        return row;
    };
    const auto new_ = stage_json("101", "DEAL_STAGE", "NEW", "New", "10");
    const auto won = stage_json("111", "DEAL_STAGE", "WON", "Won", "60");
    const auto lose = stage_json("113", "DEAL_STAGE", "LOSE", "Lost", "70");
    const auto c3 = stage_json("117", "DEAL_STAGE_3", "C3:NEW", "New match", "10");

    SECTION("the same stages are unchanged, whatever the stamps say") {
        const auto changes = diff_stages(list, {stage(schema, new_), stage(schema, won)},
                                         {stored_row(new_), stored_row(won)}, std::nullopt);
        CHECK(changes.unchanged == 2);
        CHECK(changes.inserts.empty());
        CHECK(changes.updates.empty());
        CHECK(changes.deactivate.empty());
    }

    SECTION("renamed and re-sorted stages are updated, new ones inserted") {
        auto renamed = won;
        renamed["NAME"] = "Deal won";
        auto resorted = new_;
        resorted["SORT"] = "5";
        const auto changes = diff_stages(
            list, {stage(schema, resorted), stage(schema, renamed), stage(schema, lose)},
            {stored_row(new_), stored_row(won)}, std::nullopt);
        CHECK(changes.unchanged == 0);
        REQUIRE(changes.updates.size() == 2);
        CHECK(at(list, changes.updates[0], "SORT") == "5");
        CHECK(at(list, changes.updates[1], "NAME") == "Deal won");
        REQUIRE(changes.inserts.size() == 1);
        CHECK(at(list, changes.inserts[0], "EXTERNAL_ID") == "113");
    }

    SECTION("a stage gone from the portal is deactivated once, within the pipelines in scope") {
        const std::vector<sql::Row> stored{stored_row(new_), stored_row(won), stored_row(c3),
                                           stored_row(lose, "N")};
        const std::vector<sql::Row> portal{stage(schema, new_)};
        CHECK(diff_stages(list, portal, stored, std::nullopt).deactivate ==
              std::vector<std::string>{"111", "117"});
        CHECK(diff_stages(list, portal, stored, 0).deactivate == std::vector<std::string>{"111"});
        CHECK(diff_stages(list, {}, stored, 3).deactivate == std::vector<std::string>{"117"});
    }

    SECTION("a deleted stage that comes back is updated to ACTIVE Y") {
        const auto changes =
            diff_stages(list, {stage(schema, lose)}, {stored_row(lose, "N")}, std::nullopt);
        REQUIRE(changes.updates.size() == 1);
        CHECK(at(list, changes.updates[0], "ACTIVE") == "Y");
    }

    SECTION("updates write every content column and DATE_UPDATE, never DATE_INSERT") {
        std::vector<std::string> names;
        for (const auto* c : stage_update_columns(list)) {
            names.push_back(c->name);
        }
        CHECK(names == std::vector<std::string>{"ACTIVE", "ENTITY_ID", "STATUS_ID", "NAME",
                                                "NAME_INIT", "SORT", "SYSTEM", "SEMANTICS",
                                                "CATEGORY_ID", "DATE_UPDATE"});
    }
}

TEST_CASE("bitrix24 parse_webhook_url: the inbound webhook forms Bitrix24 shows", "[unit]") {
    const auto url =
        parse_webhook_url("https://Example.Bitrix24.com/rest/1/abc123def456ghi7/", "$X");
    CHECK(url.base == "https://example.bitrix24.com/rest/1/abc123def456ghi7/");
    CHECK(url.host == "example.bitrix24.com");
    CHECK(url.code == "abc123def456ghi7");
    CHECK(parse_webhook_url("https://p.example:8443/rest/7/code", "$X").base ==
          "https://p.example:8443/rest/7/code/");
    CHECK(parse_webhook_url("https://p.example:8443/rest/7/code", "$X").host == "p.example:8443");
    CHECK(parse_webhook_url(" https://p.example/rest/7/code/profile.json\n", "$X").base ==
          "https://p.example/rest/7/code/");

    const auto refused = [](const std::string& text) -> std::string {
        try {
            parse_webhook_url(text, "$B24");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::usage);
            // The URL is a secret: never part of the message.
            CHECK(std::string(e.what()).find("secretcode") == std::string::npos);
            return e.what();
        }
        FAIL("accepted " << text);
        return {};
    };
    CHECK(refused("example.bitrix24.com/rest/1/secretcode/") ==
          "the portal URL in $B24 is not an http(s) URL");
    CHECK(
        refused("https://example.bitrix24.com/crm/deal/secretcode") ==
        "the portal URL in $B24 is not an inbound webhook URL (https://PORTAL/rest/USER_ID/CODE/)");
    CHECK(
        refused("https://example.bitrix24.com/rest/x/secretcode/") ==
        "the portal URL in $B24 is not an inbound webhook URL (https://PORTAL/rest/USER_ID/CODE/)");
    CHECK(refused("https://user:secretcode@example.bitrix24.com/rest/1/c/") ==
          "the portal URL in $B24 names no host (or carries a user name)");
    CHECK(refused("https://example.bitrix24.com:secretcode/rest/1/c/") ==
          "the portal URL in $B24 has an invalid port");
}

// SQL Server has no server here, so every statement bulk-history runs there is pinned below.
TEST_CASE("bitrix24 tables in SQL Server: golden DDL, upserts and updates", "[unit][sqlserver]") {
    const auto dialect = drivers::sqlserver::make_dialect();
    const auto schema = Bitrix24Schema::load("", "PROD");
    const auto& list = schema.list().table;
    const auto& history = schema.history().table;
    const auto indexes = [&](const sql::Table& table) {
        std::vector<std::string> out;
        for (const auto& index : table.indexes) {
            out.push_back(dialect->create_index(table, index));
        }
        return out;
    };

    SECTION("CRM_STAGE_LIST_PROD: identity ID, EXTERNAL_ID unique, updates by EXTERNAL_ID") {
        CHECK(
            dialect->create_table(list) ==
            "IF OBJECT_ID(N'[CRM_STAGE_LIST_PROD]', N'U') IS NULL CREATE TABLE "
            "[CRM_STAGE_LIST_PROD] "
            "([ID] bigint IDENTITY(1,1) NOT NULL, [ACTIVE] nvarchar(255) COLLATE "
            "Latin1_General_100_BIN2 NULL, [DATE_INSERT] datetime2(3) NULL, [DATE_UPDATE] "
            "datetime2(3) NULL, [ENTITY_ID] nvarchar(255) COLLATE Latin1_General_100_BIN2 NULL, "
            "[STATUS_ID] nvarchar(255) COLLATE Latin1_General_100_BIN2 NULL, [EXTERNAL_ID] bigint "
            "NULL, [NAME] nvarchar(max) NULL, [NAME_INIT] nvarchar(max) NULL, [SORT] bigint NULL, "
            "[SYSTEM] nvarchar(255) COLLATE Latin1_General_100_BIN2 NULL, [SEMANTICS] "
            "nvarchar(255) "
            "COLLATE Latin1_General_100_BIN2 NULL, [CATEGORY_ID] bigint NULL, PRIMARY KEY ([ID]), "
            "UNIQUE ([EXTERNAL_ID]))");
        CHECK(indexes(list) ==
              std::vector<std::string>{"CREATE INDEX [ix_CRM_STAGE_LIST_PROD_STATUS_ID] ON "
                                       "[CRM_STAGE_LIST_PROD] ([STATUS_ID])"});
        // Only new stages go through MERGE; changed ones are updated, leaving DATE_INSERT.
        CHECK(
            dialect->upsert(list, bound(list), 1) ==
            "MERGE INTO [CRM_STAGE_LIST_PROD] WITH (HOLDLOCK) AS t USING (VALUES (:p0, :p1, :p2, "
            ":p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11)) AS s ([ACTIVE], [DATE_INSERT], "
            "[DATE_UPDATE], [ENTITY_ID], [STATUS_ID], [EXTERNAL_ID], [NAME], [NAME_INIT], [SORT], "
            "[SYSTEM], [SEMANTICS], [CATEGORY_ID]) ON t.[EXTERNAL_ID] = s.[EXTERNAL_ID] WHEN "
            "MATCHED "
            "AND (t.[ACTIVE] COLLATE Latin1_General_100_BIN2 <> s.[ACTIVE] COLLATE "
            "Latin1_General_100_BIN2 OR (t.[ACTIVE] IS NULL AND s.[ACTIVE] IS NOT NULL) OR "
            "(t.[ACTIVE] IS NOT NULL AND s.[ACTIVE] IS NULL) OR t.[DATE_INSERT] <> s.[DATE_INSERT] "
            "OR (t.[DATE_INSERT] IS NULL AND s.[DATE_INSERT] IS NOT NULL) OR (t.[DATE_INSERT] IS "
            "NOT "
            "NULL AND s.[DATE_INSERT] IS NULL) OR t.[ENTITY_ID] COLLATE Latin1_General_100_BIN2 <> "
            "s.[ENTITY_ID] COLLATE Latin1_General_100_BIN2 OR (t.[ENTITY_ID] IS NULL AND "
            "s.[ENTITY_ID] IS NOT NULL) OR (t.[ENTITY_ID] IS NOT NULL AND s.[ENTITY_ID] IS NULL) "
            "OR "
            "t.[STATUS_ID] COLLATE Latin1_General_100_BIN2 <> s.[STATUS_ID] COLLATE "
            "Latin1_General_100_BIN2 OR (t.[STATUS_ID] IS NULL AND s.[STATUS_ID] IS NOT NULL) OR "
            "(t.[STATUS_ID] IS NOT NULL AND s.[STATUS_ID] IS NULL) OR t.[NAME] COLLATE "
            "Latin1_General_100_BIN2 <> s.[NAME] COLLATE Latin1_General_100_BIN2 OR (t.[NAME] IS "
            "NULL AND s.[NAME] IS NOT NULL) OR (t.[NAME] IS NOT NULL AND s.[NAME] IS NULL) OR "
            "t.[NAME_INIT] COLLATE Latin1_General_100_BIN2 <> s.[NAME_INIT] COLLATE "
            "Latin1_General_100_BIN2 OR (t.[NAME_INIT] IS NULL AND s.[NAME_INIT] IS NOT NULL) OR "
            "(t.[NAME_INIT] IS NOT NULL AND s.[NAME_INIT] IS NULL) OR t.[SORT] <> s.[SORT] OR "
            "(t.[SORT] IS NULL AND s.[SORT] IS NOT NULL) OR (t.[SORT] IS NOT NULL AND s.[SORT] IS "
            "NULL) OR t.[SYSTEM] COLLATE Latin1_General_100_BIN2 <> s.[SYSTEM] COLLATE "
            "Latin1_General_100_BIN2 OR (t.[SYSTEM] IS NULL AND s.[SYSTEM] IS NOT NULL) OR "
            "(t.[SYSTEM] IS NOT NULL AND s.[SYSTEM] IS NULL) OR t.[SEMANTICS] COLLATE "
            "Latin1_General_100_BIN2 <> s.[SEMANTICS] COLLATE Latin1_General_100_BIN2 OR "
            "(t.[SEMANTICS] IS NULL AND s.[SEMANTICS] IS NOT NULL) OR (t.[SEMANTICS] IS NOT NULL "
            "AND "
            "s.[SEMANTICS] IS NULL) OR t.[CATEGORY_ID] <> s.[CATEGORY_ID] OR (t.[CATEGORY_ID] IS "
            "NULL AND s.[CATEGORY_ID] IS NOT NULL) OR (t.[CATEGORY_ID] IS NOT NULL AND "
            "s.[CATEGORY_ID] IS NULL)) THEN UPDATE SET t.[ACTIVE] = s.[ACTIVE], t.[DATE_INSERT] = "
            "s.[DATE_INSERT], t.[DATE_UPDATE] = s.[DATE_UPDATE], t.[ENTITY_ID] = s.[ENTITY_ID], "
            "t.[STATUS_ID] = s.[STATUS_ID], t.[NAME] = s.[NAME], t.[NAME_INIT] = s.[NAME_INIT], "
            "t.[SORT] = s.[SORT], t.[SYSTEM] = s.[SYSTEM], t.[SEMANTICS] = s.[SEMANTICS], "
            "t.[CATEGORY_ID] = s.[CATEGORY_ID] WHEN NOT MATCHED THEN INSERT ([ACTIVE], "
            "[DATE_INSERT], [DATE_UPDATE], [ENTITY_ID], [STATUS_ID], [EXTERNAL_ID], [NAME], "
            "[NAME_INIT], [SORT], [SYSTEM], [SEMANTICS], [CATEGORY_ID]) VALUES (s.[ACTIVE], "
            "s.[DATE_INSERT], s.[DATE_UPDATE], s.[ENTITY_ID], s.[STATUS_ID], s.[EXTERNAL_ID], "
            "s.[NAME], s.[NAME_INIT], s.[SORT], s.[SYSTEM], s.[SEMANTICS], s.[CATEGORY_ID]);");
        CHECK(update_by_key_sql(*dialect, list, stage_update_columns(list)) ==
              "UPDATE [CRM_STAGE_LIST_PROD] SET [ACTIVE] = :p0, [ENTITY_ID] = :p1, [STATUS_ID] = "
              ":p2, "
              "[NAME] = :p3, [NAME_INIT] = :p4, [SORT] = :p5, [SYSTEM] = :p6, [SEMANTICS] = :p7, "
              "[CATEGORY_ID] = :p8, [DATE_UPDATE] = :p9 WHERE [EXTERNAL_ID] = :p10");
        CHECK(update_by_key_sql(*dialect, list, {list.find("ACTIVE"), list.find("DATE_UPDATE")}) ==
              "UPDATE [CRM_STAGE_LIST_PROD] SET [ACTIVE] = :p0, [DATE_UPDATE] = :p1 WHERE "
              "[EXTERNAL_ID] = :p2");
    }

    SECTION("CRM_STAGE_HISTORY_PROD: three indexes, MERGE on EXTERNAL_ID, read-back by key") {
        CHECK(
            dialect->create_table(history) ==
            "IF OBJECT_ID(N'[CRM_STAGE_HISTORY_PROD]', N'U') IS NULL CREATE TABLE "
            "[CRM_STAGE_HISTORY_PROD] ([ID] bigint IDENTITY(1,1) NOT NULL, [EXTERNAL_ID] bigint "
            "NULL, [TYPE_ID] bigint NULL, [OWNER_ID] bigint NULL, [DATE_INSERT] datetime2(3) NULL, "
            "[CREATED_TIME] datetime2(3) NULL, [START_DATE] datetime2(3) NULL, [END_DATE] "
            "datetime2(3) NULL, [NAME] nvarchar(max) NULL, [RESPONSIBLE_ID] bigint NULL, "
            "[CATEGORY_ID] bigint NULL, [STAGE_SEMANTIC_ID] nvarchar(255) COLLATE "
            "Latin1_General_100_BIN2 NULL, [STAGE_ID] nvarchar(255) COLLATE "
            "Latin1_General_100_BIN2 "
            "NULL, [IS_LOST] nvarchar(255) COLLATE Latin1_General_100_BIN2 NULL, PRIMARY KEY "
            "([ID]), "
            "UNIQUE ([EXTERNAL_ID]))");
        CHECK(
            indexes(history) ==
            std::vector<std::string>{
                "CREATE INDEX [ix_CRM_STAGE_HISTORY_PROD_OWNER_ID] ON [CRM_STAGE_HISTORY_PROD] "
                "([OWNER_ID])",
                "CREATE INDEX [ix_CRM_STAGE_HISTORY_PROD_STAGE_ID] ON [CRM_STAGE_HISTORY_PROD] "
                "([STAGE_ID])",
                "CREATE INDEX [ix_CRM_STAGE_HISTORY_PROD_CREATED_TIME] ON [CRM_STAGE_HISTORY_PROD] "
                "([CREATED_TIME])"});
        CHECK(
            dialect->upsert(history, bound(history), 2) ==
            "MERGE INTO [CRM_STAGE_HISTORY_PROD] WITH (HOLDLOCK) AS t USING (VALUES (:p0, :p1, "
            ":p2, "
            ":p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10, :p11, :p12), (:p13, :p14, :p15, :p16, :p17, "
            ":p18, :p19, :p20, :p21, :p22, :p23, :p24, :p25)) AS s ([EXTERNAL_ID], [TYPE_ID], "
            "[OWNER_ID], [DATE_INSERT], [CREATED_TIME], [START_DATE], [END_DATE], [NAME], "
            "[RESPONSIBLE_ID], [CATEGORY_ID], [STAGE_SEMANTIC_ID], [STAGE_ID], [IS_LOST]) ON "
            "t.[EXTERNAL_ID] = s.[EXTERNAL_ID] WHEN MATCHED AND (t.[TYPE_ID] <> s.[TYPE_ID] OR "
            "(t.[TYPE_ID] IS NULL AND s.[TYPE_ID] IS NOT NULL) OR (t.[TYPE_ID] IS NOT NULL AND "
            "s.[TYPE_ID] IS NULL) OR t.[OWNER_ID] <> s.[OWNER_ID] OR (t.[OWNER_ID] IS NULL AND "
            "s.[OWNER_ID] IS NOT NULL) OR (t.[OWNER_ID] IS NOT NULL AND s.[OWNER_ID] IS NULL) OR "
            "t.[CREATED_TIME] <> s.[CREATED_TIME] OR (t.[CREATED_TIME] IS NULL AND "
            "s.[CREATED_TIME] "
            "IS NOT NULL) OR (t.[CREATED_TIME] IS NOT NULL AND s.[CREATED_TIME] IS NULL) OR "
            "t.[START_DATE] <> s.[START_DATE] OR (t.[START_DATE] IS NULL AND s.[START_DATE] IS NOT "
            "NULL) OR (t.[START_DATE] IS NOT NULL AND s.[START_DATE] IS NULL) OR t.[END_DATE] <> "
            "s.[END_DATE] OR (t.[END_DATE] IS NULL AND s.[END_DATE] IS NOT NULL) OR (t.[END_DATE] "
            "IS "
            "NOT NULL AND s.[END_DATE] IS NULL) OR t.[NAME] COLLATE Latin1_General_100_BIN2 <> "
            "s.[NAME] COLLATE Latin1_General_100_BIN2 OR (t.[NAME] IS NULL AND s.[NAME] IS NOT "
            "NULL) "
            "OR (t.[NAME] IS NOT NULL AND s.[NAME] IS NULL) OR t.[RESPONSIBLE_ID] <> "
            "s.[RESPONSIBLE_ID] OR (t.[RESPONSIBLE_ID] IS NULL AND s.[RESPONSIBLE_ID] IS NOT NULL) "
            "OR (t.[RESPONSIBLE_ID] IS NOT NULL AND s.[RESPONSIBLE_ID] IS NULL) OR t.[CATEGORY_ID] "
            "<> s.[CATEGORY_ID] OR (t.[CATEGORY_ID] IS NULL AND s.[CATEGORY_ID] IS NOT NULL) OR "
            "(t.[CATEGORY_ID] IS NOT NULL AND s.[CATEGORY_ID] IS NULL) OR t.[STAGE_SEMANTIC_ID] "
            "COLLATE Latin1_General_100_BIN2 <> s.[STAGE_SEMANTIC_ID] COLLATE "
            "Latin1_General_100_BIN2 OR (t.[STAGE_SEMANTIC_ID] IS NULL AND s.[STAGE_SEMANTIC_ID] "
            "IS "
            "NOT NULL) OR (t.[STAGE_SEMANTIC_ID] IS NOT NULL AND s.[STAGE_SEMANTIC_ID] IS NULL) OR "
            "t.[STAGE_ID] COLLATE Latin1_General_100_BIN2 <> s.[STAGE_ID] COLLATE "
            "Latin1_General_100_BIN2 OR (t.[STAGE_ID] IS NULL AND s.[STAGE_ID] IS NOT NULL) OR "
            "(t.[STAGE_ID] IS NOT NULL AND s.[STAGE_ID] IS NULL) OR t.[IS_LOST] COLLATE "
            "Latin1_General_100_BIN2 <> s.[IS_LOST] COLLATE Latin1_General_100_BIN2 OR "
            "(t.[IS_LOST] "
            "IS NULL AND s.[IS_LOST] IS NOT NULL) OR (t.[IS_LOST] IS NOT NULL AND s.[IS_LOST] IS "
            "NULL)) THEN UPDATE SET t.[TYPE_ID] = s.[TYPE_ID], t.[OWNER_ID] = s.[OWNER_ID], "
            "t.[DATE_INSERT] = s.[DATE_INSERT], t.[CREATED_TIME] = s.[CREATED_TIME], "
            "t.[START_DATE] "
            "= s.[START_DATE], t.[END_DATE] = s.[END_DATE], t.[NAME] = s.[NAME], "
            "t.[RESPONSIBLE_ID] "
            "= s.[RESPONSIBLE_ID], t.[CATEGORY_ID] = s.[CATEGORY_ID], t.[STAGE_SEMANTIC_ID] = "
            "s.[STAGE_SEMANTIC_ID], t.[STAGE_ID] = s.[STAGE_ID], t.[IS_LOST] = s.[IS_LOST] WHEN "
            "NOT "
            "MATCHED THEN INSERT ([EXTERNAL_ID], [TYPE_ID], [OWNER_ID], [DATE_INSERT], "
            "[CREATED_TIME], [START_DATE], [END_DATE], [NAME], [RESPONSIBLE_ID], [CATEGORY_ID], "
            "[STAGE_SEMANTIC_ID], [STAGE_ID], [IS_LOST]) VALUES (s.[EXTERNAL_ID], s.[TYPE_ID], "
            "s.[OWNER_ID], s.[DATE_INSERT], s.[CREATED_TIME], s.[START_DATE], s.[END_DATE], "
            "s.[NAME], s.[RESPONSIBLE_ID], s.[CATEGORY_ID], s.[STAGE_SEMANTIC_ID], s.[STAGE_ID], "
            "s.[IS_LOST]);");
        CHECK(
            dialect->select_by_keys(history, {"EXTERNAL_ID"}, 3) ==
            "SELECT [EXTERNAL_ID] FROM [CRM_STAGE_HISTORY_PROD] WHERE [EXTERNAL_ID] IN (:k0, :k1, "
            ":k2)");
        // A page of 50 rows fits SQL Server's 2100 parameters in one statement.
        CHECK(bound(history).size() * 50 < dialect->max_parameters());
    }
}
