#include "cmd/status.hpp"

#include "cmd/targets.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/sql/schema_catalog.hpp"
#include "lib/sql/schema_manager.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>

namespace crmsync::cli {

void add_status(CLI::App& app, StatusOptions& o) {
    app.add_option("--url", o.url, "Target database holding crmsync_state")
        ->envname("DBSYNC_URL")
        ->capture_default_str();
    app.add_flag("--json", o.json, "Print JSON instead of text");
}

int run_status(const StatusOptions& o) {
    auto db = open_target(parse_target(o.url));
    sql::SchemaManager schema(*db);
    nlohmann::json jobs = nlohmann::json::array();
    if (!schema.existing_columns("crmsync_state").empty()) {
        const auto& d = db->dialect();
        std::map<std::string, long> rejects;
        if (!schema.existing_columns("crmsync_rejects").empty()) {
            for (const auto& row : db->query("SELECT " + d.quote("job") + ", COUNT(*) FROM " +
                                             d.quote("crmsync_rejects") + " GROUP BY " +
                                             d.quote("job"))) {
                rejects[row[0].value_or("")] = std::stol(row[1].value_or("0"));
            }
        }
        for (const auto& row :
             db->query("SELECT " + d.quote("job") + ", " + d.quote("checkpoint") + ", " +
                       d.quote("progress") + ", " + d.quote("updated_at") + " FROM " +
                       d.quote("crmsync_state") + " ORDER BY " + d.quote("job"))) {
            const std::string job = row[0].value_or("");
            jobs.push_back({{"job", job},
                            {"checkpoint", row[1].value_or("")},
                            {"progress", row[2].value_or("")},
                            {"updated_at", row[3].value_or("")},
                            {"rejects", rejects[job]}});
        }
    }
    if (o.json) {
        std::cout << jobs.dump(2) << "\n";
    } else if (jobs.empty()) {
        std::cout << "no crmsync jobs in " << db->description() << "\n";
    } else {
        for (const auto& j : jobs) {
            std::cout << fmt::format("{}  checkpoint {}  updated {}  rejects {}  {}\n",
                                     j["job"].get<std::string>(),
                                     j["checkpoint"].get<std::string>().empty()
                                         ? "none"
                                         : j["checkpoint"].get<std::string>(),
                                     j["updated_at"].get<std::string>(),
                                     j["rejects"].get<long>(), j["progress"].get<std::string>());
        }
    }
    return k_exit_ok;
}

} // namespace crmsync::cli
