#include "lib/state/leads_ledger.hpp"

#include "lib/core/clock.hpp"
#include "lib/state/open_file.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>

#include <array>

namespace crmsync::state {
namespace {

// Added on first use, so state files written before the leads command get it too.
constexpr const char* k_schema = R"sql(
CREATE TABLE IF NOT EXISTS lead_ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    lead_id TEXT NOT NULL,
    job TEXT NOT NULL,
    payload TEXT NOT NULL,
    fetch_window TEXT NOT NULL DEFAULT '',
    step TEXT NOT NULL DEFAULT 'queued',
    person_id INTEGER,
    crm_lead_id TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source, lead_id)
);
CREATE INDEX IF NOT EXISTS lead_ledger_job_step ON lead_ledger (job, step, seq);
)sql";

constexpr std::size_t k_error_text = 2000;

constexpr std::array<std::pair<LeadStep, std::string_view>, 5> k_steps{{
    {LeadStep::queued, "queued"},
    {LeadStep::person_found, "person_found"},
    {LeadStep::person_created, "person_created"},
    {LeadStep::done, "done"},
    {LeadStep::parked, "parked"},
}};

std::string now_text() { return util::format_iso8601(Clock::real().wall_now()); }

constexpr const char* k_columns = "source, lead_id, job, payload, fetch_window, step, person_id, "
                                  "crm_lead_id, last_error, attempts, updated_at";

LedgerLead read_row(SQLite::Statement& st) {
    LedgerLead lead;
    lead.source = st.getColumn(0).getString();
    lead.lead_id = st.getColumn(1).getString();
    lead.job = st.getColumn(2).getString();
    lead.payload = st.getColumn(3).getString();
    lead.window = st.getColumn(4).getString();
    lead.step = lead_step_from_string(st.getColumn(5).getString()).value_or(LeadStep::queued);
    if (!st.getColumn(6).isNull()) {
        lead.person_id = st.getColumn(6).getInt64();
    }
    lead.crm_lead_id = st.getColumn(7).getString();
    lead.last_error = st.getColumn(8).getString();
    lead.attempts = st.getColumn(9).getInt();
    lead.updated_at = st.getColumn(10).getString();
    return lead;
}

std::string clipped(const std::string& text) {
    return text.size() > k_error_text ? text.substr(0, k_error_text) : text;
}

} // namespace

std::string_view to_string(LeadStep step) noexcept {
    for (const auto& [value, name] : k_steps) {
        if (value == step) {
            return name;
        }
    }
    return "queued";
}

std::optional<LeadStep> lead_step_from_string(std::string_view text) noexcept {
    for (const auto& [value, name] : k_steps) {
        if (name == text) {
            return value;
        }
    }
    return std::nullopt;
}

LeadsLedger::LeadsLedger(StateStore& store) : m_store(store) {
    detail::guarded(m_store, "cannot add the lead ledger",
                    [&] { detail::connection(m_store).exec(k_schema); });
}

bool LeadsLedger::add(const LedgerLead& lead) {
    return detail::guarded(m_store, "cannot add to the lead ledger", [&]() -> bool {
        SQLite::Statement st(detail::connection(m_store),
                             "INSERT OR IGNORE INTO lead_ledger (source, lead_id, job, payload, "
                             "fetch_window, step, created_at, updated_at) VALUES (?, ?, ?, ?, ?, "
                             "'queued', ?, ?)");
        const auto now = now_text();
        st.bind(1, lead.source);
        st.bind(2, lead.lead_id);
        st.bind(3, lead.job);
        st.bind(4, lead.payload);
        st.bind(5, lead.window);
        st.bind(6, now);
        st.bind(7, now);
        return st.exec() == 1;
    });
}

std::optional<LedgerLead> LeadsLedger::find(const std::string& source, const std::string& lead_id) {
    return detail::guarded(
        m_store, "cannot read the lead ledger", [&]() -> std::optional<LedgerLead> {
            SQLite::Statement st(detail::connection(m_store),
                                 std::string("SELECT ") + k_columns +
                                     " FROM lead_ledger WHERE source = ? AND lead_id = ?");
            st.bind(1, source);
            st.bind(2, lead_id);
            if (st.executeStep()) {
                return read_row(st);
            }
            return std::nullopt;
        });
}

std::vector<LedgerLead> LeadsLedger::unfinished(const std::string& job) {
    return detail::guarded(m_store, "cannot read the lead ledger", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             std::string("SELECT ") + k_columns +
                                 " FROM lead_ledger WHERE job = ? AND step NOT IN ('done', "
                                 "'parked') ORDER BY seq");
        st.bind(1, job);
        std::vector<LedgerLead> out;
        while (st.executeStep()) {
            out.push_back(read_row(st));
        }
        return out;
    });
}

std::vector<LedgerLead> LeadsLedger::parked(const std::string& job) {
    return detail::guarded(m_store, "cannot read the lead ledger", [&] {
        SQLite::Statement st(
            detail::connection(m_store),
            std::string("SELECT ") + k_columns +
                " FROM lead_ledger WHERE job = ? AND step = 'parked' ORDER BY seq");
        st.bind(1, job);
        std::vector<LedgerLead> out;
        while (st.executeStep()) {
            out.push_back(read_row(st));
        }
        return out;
    });
}

void LeadsLedger::set_person(const LedgerLead& lead, std::int64_t person_id, LeadStep step) {
    detail::guarded(m_store, "cannot write the lead ledger", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE lead_ledger SET person_id = ?, step = ?, updated_at = ? "
                             "WHERE source = ? AND lead_id = ?");
        st.bind(1, static_cast<std::int64_t>(person_id));
        st.bind(2, std::string(to_string(step)));
        st.bind(3, now_text());
        st.bind(4, lead.source);
        st.bind(5, lead.lead_id);
        st.exec();
    });
}

void LeadsLedger::set_done(const LedgerLead& lead, const std::string& crm_lead_id) {
    detail::guarded(m_store, "cannot write the lead ledger", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE lead_ledger SET crm_lead_id = ?, step = 'done', "
                             "last_error = '', updated_at = ? WHERE source = ? AND lead_id = ?");
        st.bind(1, crm_lead_id);
        st.bind(2, now_text());
        st.bind(3, lead.source);
        st.bind(4, lead.lead_id);
        st.exec();
    });
}

void LeadsLedger::park(const LedgerLead& lead, const std::string& answer) {
    detail::guarded(m_store, "cannot write the lead ledger", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE lead_ledger SET step = 'parked', last_error = ?, "
                             "updated_at = ? WHERE source = ? AND lead_id = ?");
        st.bind(1, clipped(answer));
        st.bind(2, now_text());
        st.bind(3, lead.source);
        st.bind(4, lead.lead_id);
        st.exec();
    });
}

void LeadsLedger::note_failure(const LedgerLead& lead, const std::string& error) {
    detail::guarded(m_store, "cannot write the lead ledger", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             "UPDATE lead_ledger SET last_error = ?, attempts = attempts + 1, "
                             "updated_at = ? WHERE source = ? AND lead_id = ?");
        st.bind(1, clipped(error));
        st.bind(2, now_text());
        st.bind(3, lead.source);
        st.bind(4, lead.lead_id);
        st.exec();
    });
}

std::map<LeadStep, long> LeadsLedger::counts(const std::string& job) {
    return detail::guarded(m_store, "cannot read the lead ledger", [&] {
        std::map<LeadStep, long> out;
        for (const auto& [step, name] : k_steps) {
            out[step] = 0;
        }
        SQLite::Statement st(detail::connection(m_store),
                             "SELECT step, COUNT(*) FROM lead_ledger WHERE job = ? GROUP BY step");
        st.bind(1, job);
        while (st.executeStep()) {
            if (const auto step = lead_step_from_string(st.getColumn(0).getString())) {
                out[*step] = st.getColumn(1).getInt64();
            }
        }
        return out;
    });
}

std::vector<std::string> LeadsLedger::jobs() {
    return detail::guarded(m_store, "cannot read the lead ledger", [&] {
        SQLite::Statement st(detail::connection(m_store),
                             "SELECT DISTINCT job FROM lead_ledger ORDER BY 1");
        std::vector<std::string> out;
        while (st.executeStep()) {
            out.push_back(st.getColumn(0).getString());
        }
        return out;
    });
}

} // namespace crmsync::state
