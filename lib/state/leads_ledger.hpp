#pragma once

#include "lib/state/state_store.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::state {

// How far a source lead got on its way into the CRM. Each step is written right after the
// CRM write it stands for, so a rerun knows what may already exist there.
enum class LeadStep {
    queued,         // stored from the source; nothing written to the CRM yet
    person_found,   // an existing person matched (person_id set)
    person_created, // this crmsync created the person (person_id set)
    done,           // the CRM lead exists (crm_lead_id set)
    parked,         // the CRM refused it (last_error holds its answer); not tried again
};
std::string_view to_string(LeadStep step) noexcept;
std::optional<LeadStep> lead_step_from_string(std::string_view text) noexcept;

// One source lead as the ledger keeps it.
struct LedgerLead {
    std::string job;     // the job that fetched it first
    std::string source;  // "callback24" | "facebook" | "gmail"
    std::string lead_id; // the lead's id at the source (unique per source)
    std::string payload; // the lead record (JSON text), enough to create it later
    std::string window;  // the fetch window it came from (informational)
    LeadStep step = LeadStep::queued;
    std::optional<std::int64_t> person_id;
    std::string crm_lead_id;
    std::string last_error;
    int attempts = 0; // runs that tried and hit a transient failure
    std::string updated_at;
};

// The exactly-once ledger of `crmsync leads` in the state file: one row per (source, lead id),
// whatever job fetched it, so overlapping windows and reruns never queue a lead twice. Writes
// join the caller's transaction if one is open (commit() stores leads with the checkpoint),
// else each is its own IMMEDIATE transaction. Throws Error(io) like StateStore.
class LeadsLedger {
public:
    // Adds the ledger's table to a state file that lacks it (older files included).
    explicit LeadsLedger(StateStore& store);

    // Queues `lead` unless (source, lead_id) is known; returns whether it was added.
    bool add(const LedgerLead& lead);
    std::optional<LedgerLead> find(const std::string& source, const std::string& lead_id);
    // Leads of `job` that are neither done nor parked, oldest first.
    std::vector<LedgerLead> unfinished(const std::string& job);
    std::vector<LedgerLead> parked(const std::string& job);

    void set_person(const LedgerLead& lead, std::int64_t person_id, LeadStep step);
    void set_done(const LedgerLead& lead, const std::string& crm_lead_id);
    void park(const LedgerLead& lead, const std::string& answer);
    // A transient failure: the lead stays where it is for the next try.
    void note_failure(const LedgerLead& lead, const std::string& error);

    // Leads per step of `job` (every step present, 0 when none).
    std::map<LeadStep, long> counts(const std::string& job);
    // Jobs with leads in the ledger, sorted.
    std::vector<std::string> jobs();

private:
    StateStore& m_store;
};

} // namespace crmsync::state
