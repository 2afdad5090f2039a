#include "lib/pipeline/target_writer.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/schema_manager.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"

#include <fmt/format.h>

#include <set>

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

TargetWriter::TargetWriter(std::unique_ptr<sql::Database> db, std::string job_key,
                           RunSummary& summary, const Clock& clock)
    : m_owned(std::move(db)), m_db(*m_owned), m_job(std::move(job_key)), m_summary(summary),
      m_clock(clock), m_own_tables(sql::load_schema("crmsync.json", "")) {}

bool TargetWriter::lock() {
    std::lock_guard guard(m_db_mutex);
    return m_db.try_lock(m_job);
}

void TargetWriter::prepare(const std::vector<const sql::Table*>& tables) {
    std::lock_guard guard(m_db_mutex);
    sql::SchemaManager schema(m_db);
    std::vector<const sql::Table*> all;
    for (const auto& spec : m_own_tables) {
        all.push_back(&spec.table);
    }
    all.insert(all.end(), tables.begin(), tables.end());
    const auto changes = schema.ensure_all(all);
    for (const auto& t : changes.created_tables) {
        log::info("created table {}", t);
    }
    for (const auto& c : changes.added_columns) {
        log::info("added column {}", c);
    }
    for (const auto& c : changes.widened_columns) {
        log::info("widened column {}", c);
    }
}

JobState TargetWriter::load_state() {
    const auto& state = own_table(m_own_tables, "crmsync_state");
    std::lock_guard guard(m_db_mutex);
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
    write(checkpoint, progress, sql::CommitWait::durable);
}

void TargetWriter::commit_deferred(const std::optional<std::string>& checkpoint,
                                   const std::string& progress) {
    write(checkpoint, progress, sql::CommitWait::deferred);
}

void TargetWriter::write(const std::optional<std::string>& checkpoint, const std::string& progress,
                         sql::CommitWait wait) {
    const std::string now = util::format_sql_timestamp(m_clock.wall_now());
    std::vector<sql::RejectedRow> refused;
    sql::BatchWriter writer(m_db);
    std::map<std::string, sql::WriteCounts> counts;
    {
        std::lock_guard guard(m_db_mutex);
        sql::Transaction transaction(m_db);
        std::vector<std::string> writing;
        for (const auto& [name, buffer] : m_buffers) {
            if (!buffer.rows.empty()) {
                writing.push_back(name);
            }
        }
        m_db.expect_writes(writing);
        for (auto& [name, buffer] : m_buffers) {
            if (!buffer.rows.empty()) {
                const std::size_t before = refused.size();
                counts[name] += writer.upsert(buffer, now, refused);
                if (buffer.table == m_verified) {
                    check_read_back(buffer,
                                    {refused.begin() + static_cast<long>(before), refused.end()});
                }
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
            writer.upsert_uncounted(rejects, now, ignored);
        }
        const std::optional<std::string> stored = checkpoint ? checkpoint : m_checkpoint;
        sql::TableRows state{&own_table(m_own_tables, "crmsync_state"),
                             {{m_job, stored, progress, now}}};
        std::vector<sql::RejectedRow> ignored;
        writer.upsert_uncounted(state, now, ignored);
        m_db.confirm_lock();
        transaction.commit(wait);
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

std::map<std::string, std::vector<std::optional<std::string>>>
TargetWriter::lookup(const sql::Table& table, const std::vector<std::string>& columns,
                     const std::vector<std::string>& keys) {
    std::map<std::string, std::vector<std::optional<std::string>>> found;
    if (keys.empty()) {
        return found;
    }
    std::vector<std::string> wanted{table.key()};
    wanted.insert(wanted.end(), columns.begin(), columns.end());
    std::vector<sql::Value> params(keys.begin(), keys.end());
    std::lock_guard guard(m_db_mutex);
    for (auto& row :
         m_db.query(m_db.dialect().select_by_keys(table, wanted, keys.size()), params)) {
        if (!row.empty() && row[0]) {
            std::string key = *row[0];
            row.erase(row.begin());
            found.emplace(std::move(key), std::move(row));
        }
    }
    return found;
}

std::optional<bool> TargetWriter::holds_rows(const sql::Table& table) {
    std::lock_guard guard(m_db_mutex);
    return m_db.holds_rows(table);
}

void TargetWriter::verify_read_back(const sql::Table& table, std::function<std::string()> what) {
    m_verified = &table;
    m_verified_what = std::move(what);
}

// The seed's step-by-step verification (bulk-history): every key written must read back in
// the same transaction before it commits with the checkpoint.
void TargetWriter::check_read_back(const sql::TableRows& written,
                                   const std::vector<sql::RejectedRow>& refused) {
    constexpr std::size_t k_keys_in_error = 5;
    const auto& table = *written.table;
    const std::size_t key = table.position(table.key());
    std::set<std::string> expected;
    for (const auto& row : written.rows) {
        if (row[key]) {
            expected.insert(*row[key]);
        }
    }
    for (const auto& r : refused) {
        expected.erase(r.key);
    }
    if (expected.empty()) {
        return;
    }
    const std::size_t asked = expected.size();
    std::vector<sql::Value> keys(expected.begin(), expected.end());
    for (const auto& row :
         m_db.query(m_db.dialect().select_by_keys(table, {table.key()}, keys.size()), keys)) {
        if (!row.empty() && row[0]) {
            expected.erase(*row[0]);
        }
    }
    if (expected.empty()) {
        return;
    }
    std::string named;
    std::size_t i = 0;
    for (const auto& k : expected) {
        if (i == k_keys_in_error) {
            named += ", ...";
            break;
        }
        named += (i++ ? ", " : "") + k;
    }
    throw Error(ErrorKind::data,
                fmt::format("verification failed: {} of {} {} did not read back from {} ({} {})",
                            expected.size(), asked, m_verified_what ? m_verified_what() : "rows",
                            table.name, table.key(), named),
                "the batch was rolled back and the checkpoint kept; look for triggers or jobs "
                "that delete rows from the table");
}

} // namespace crmsync::pipeline
