#include "lib/pipeline/target_writer.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/schema_manager.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

namespace crmsync::pipeline {
namespace {

const sql::Table& own_table(const std::vector<sql::TableSpec>& specs, std::string_view name) {
    return sql::find_spec(specs, name, "").table;
}

} // namespace

TargetWriter::TargetWriter(sql::Database& db, std::string job_key, RunSummary& summary,
                           const Clock& clock)
    : m_db(db), m_job(std::move(job_key)), m_summary(summary), m_clock(clock),
      m_own_tables(sql::load_schema("crmsync.json", "")) {}

void TargetWriter::prepare(const std::vector<const sql::Table*>& tables) {
    sql::SchemaManager schema(m_db);
    std::vector<const sql::Table*> all;
    for (const auto& spec : m_own_tables) {
        all.push_back(&spec.table);
    }
    all.insert(all.end(), tables.begin(), tables.end());
    for (const auto* table : all) {
        const auto changes = schema.ensure(*table);
        for (const auto& t : changes.created_tables) {
            log::info("created table {}", t);
        }
        for (const auto& c : changes.added_columns) {
            log::info("added column {}", c);
        }
    }
}

JobState TargetWriter::load_state() {
    const auto& state = own_table(m_own_tables, "crmsync_state");
    const auto rows =
        m_db.query(m_db.dialect().select_by_keys(state, {"checkpoint", "progress"}, 1), {m_job});
    JobState result;
    if (!rows.empty()) {
        result.checkpoint = rows[0][0];
        result.progress = rows[0][1].value_or("");
    }
    m_checkpoint = result.checkpoint;
    return result;
}

void TargetWriter::add(const sql::Table& table, sql::Row row) {
    auto& buffer = m_buffers[table.name];
    buffer.table = &table;
    buffer.rows.push_back(std::move(row));
    ++m_buffered;
}

void TargetWriter::reject(const std::string& table, const std::string& key,
                          const std::string& reason, const std::string& raw) {
    // Records without a key are told apart by their content.
    const std::string id = util::md5_hex(m_job + "\x1f" + table + "\x1f" + key + "\x1f" + reason +
                                         (key.empty() ? "\x1f" + util::md5_hex(raw) : ""));
    m_rejects.push_back({id, m_job, table, key, reason, raw, std::nullopt});
    ++m_summary.rejected;
    log::warn("rejected {} {}: {}", table, key.empty() ? "(no key)" : key, reason);
}

void TargetWriter::commit(const std::optional<std::string>& checkpoint,
                          const std::string& progress) {
    const std::string now = util::format_sql_timestamp(m_clock.wall_now());
    std::vector<sql::RejectedRow> refused;
    sql::BatchWriter writer(m_db);
    std::map<std::string, sql::WriteCounts> counts;
    {
        sql::Transaction transaction(m_db);
        for (auto& [name, buffer] : m_buffers) {
            if (!buffer.rows.empty()) {
                counts[name] += writer.upsert(buffer, now, refused);
            }
        }
        // Rows the database cannot hold exactly become rejects in the same transaction.
        for (const auto& r : refused) {
            const std::string id =
                util::md5_hex(m_job + "\x1f" + r.table + "\x1f" + r.key + "\x1f" + r.reason);
            m_rejects.push_back({id, m_job, r.table, r.key, r.reason, std::nullopt, std::nullopt});
            log::warn("rejected {} {}: {}", r.table, r.key, r.reason);
        }
        if (!m_rejects.empty()) {
            sql::TableRows rejects{&own_table(m_own_tables, "crmsync_rejects"), m_rejects};
            std::vector<sql::RejectedRow> ignored;
            writer.upsert(rejects, now, ignored);
        }
        const std::optional<std::string> stored = checkpoint ? checkpoint : m_checkpoint;
        sql::TableRows state{&own_table(m_own_tables, "crmsync_state"),
                             {{m_job, stored, progress, now}}};
        std::vector<sql::RejectedRow> ignored;
        writer.upsert(state, now, ignored);
        transaction.commit();
        m_checkpoint = stored;
    }
    m_summary.rejected += static_cast<long>(refused.size());
    for (const auto& [name, c] : counts) {
        m_summary.tables[name] += c;
    }
    for (auto& [name, buffer] : m_buffers) {
        buffer.rows.clear();
    }
    m_rejects.clear();
    m_buffered = 0;
    if (m_checkpoint) {
        m_summary.checkpoint = *m_checkpoint;
    }
}

} // namespace crmsync::pipeline
