#pragma once

#include "lib/sql/database.hpp"
#include "lib/sql/dialect.hpp"
#include "lib/sql/schema_catalog.hpp"

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::drivers::bitrix24 {

// The stamp of the first write of a stage row (history rows use it as their change stamp).
inline constexpr const char* k_inserted_at = "DATE_INSERT";

// The two tables of schemas/bitrix24.json as one environment has them:
// <prefix>CRM_STAGE_LIST_<env> and <prefix>CRM_STAGE_HISTORY_<env>.
struct Bitrix24Schema {
    std::vector<sql::TableSpec> specs;

    static Bitrix24Schema load(std::string_view prefix, std::string_view env);
    const sql::TableSpec& list() const { return specs.at(0); }
    const sql::TableSpec& history() const { return specs.at(1); }
};

// crm.status.list ENTITY_ID of a deal pipeline's stages: "DEAL_STAGE" (0) or "DEAL_STAGE_<n>".
std::string stage_entity_id(int category);
// The pipeline an ENTITY_ID belongs to; nullopt when it is not a deal stage entity (leads'
// "STATUS", "SOURCE", smart processes ...).
std::optional<int> category_of_entity(std::string_view entity_id);

// A CRM_STAGE_LIST row (values aligned with list.table.columns) from a crm.status.list row:
// ACTIVE 'Y', CATEGORY_ID from the row or, when null (the default pipeline, §1.5), from
// ENTITY_ID; the identity and stamp columns stay NULL. False with `problem` when a value does
// not fit its column or the row has no ID.
bool stage_row(const sql::TableSpec& list, const nlohmann::json& stage, sql::Row& out,
               std::string& problem);

// A CRM_STAGE_HISTORY row from a crm.stagehistory.list item: NAME is the deal title (NULL when
// unknown), IS_LOST 'Y' for a failure stage (STAGE_SEMANTIC_ID 'F') else 'N'; START_DATE,
// END_DATE and RESPONSIBLE_ID stay NULL (the REST API does not expose them).
bool history_row(const sql::TableSpec& history, const nlohmann::json& item,
                 const std::optional<std::string>& title, sql::Row& out, std::string& problem);

// What a run must do to CRM_STAGE_LIST to match the portal.
struct StageChanges {
    std::vector<sql::Row> inserts;       // stages new to the table (complete rows)
    std::vector<sql::Row> updates;       // stored stages whose content changed
    std::vector<std::string> deactivate; // EXTERNAL_IDs of stages deleted on the portal
    long unchanged = 0;
};

// Compares the portal's stages with the stored rows (both aligned with list.columns). A
// stored row is compared on every column but the identity, the stamps and the key; a stored
// active stage of a pipeline in scope (one category, or every deal pipeline when nullopt) that
// the portal no longer lists is deactivated. A deleted stage that comes back is updated to
// ACTIVE 'Y'.
StageChanges diff_stages(const sql::Table& list, const std::vector<sql::Row>& portal,
                         const std::vector<sql::Row>& stored, std::optional<int> category);

// Columns a stage update writes: every column but the identity, DATE_INSERT and the key,
// the change stamp last.
std::vector<const sql::Column*> stage_update_columns(const sql::Table& list);

// "UPDATE t SET c1 = ?, ... WHERE key = ?": placeholders in order, the key's last.
std::string update_by_key_sql(const sql::Dialect& dialect, const sql::Table& table,
                              const std::vector<const sql::Column*>& columns);

} // namespace crmsync::drivers::bitrix24
