#pragma once

#include "drivers/pipedrive/client.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/state/leads_ledger.hpp"
#include "lib/state/state_store.hpp"

#include <atomic>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace crmsync::drivers::pipedrive {

struct LeadsSinkOptions {
    ClientOptions client;
    // Leads worked at the same time. Leads of one contact (e-mail, else phone, else name)
    // always go through the same worker, one after the other, so no two requests can create
    // the same person.
    std::size_t in_flight = 4;
    // Print one line per lead that would be created, write nothing (no ledger, no
    // checkpoint, no Pipedrive write).
    bool dry_run = false;
    std::ostream* out = nullptr; // where --dry-run prints; nullptr = stdout
};

// The Sink of `crmsync leads`: rows of the `leads` table (drivers/leads) become a person and
// a lead in Pipedrive, each source lead once, through the ledger in the state file.
//
// commit() stores the page's leads in the ledger (leads already there are left as they are,
// so a --lookback overlap is harmless) and the source's checkpoint, in one IMMEDIATE
// transaction: the checkpoint never passes a lead the ledger does not hold.
// finish() works the job's unfinished leads in ledger order. Before each write it looks in
// Pipedrive for what an earlier, killed run may have written: the person by e-mail, else
// phone (exact match), and the lead by the person's leads whose title starts with
// "<Source> <lead id>:". After each write the step is stored at once (person_found /
// person_created with the person id, then done with the lead id). So whatever moment a run is
// killed at, the rerun creates neither the person nor the lead a second time.
// Pipedrive refusing a lead (400...) parks it with the answer (not tried again; the run is
// partial, exit 3, and is an error episode); a transient failure is retried within the run
// per the retry policy, each time looking again first, then left for the next run: finish()
// throws Error(connection) after saving the counters. 401/403 throw Error(auth).
class LeadsSink final : public pipeline::Sink {
public:
    // `store` may be null only with dry_run (no state file yet: nothing is known).
    LeadsSink(std::unique_ptr<state::StateStore> store, std::string job, LeadsSinkOptions options,
              pipeline::RunSummary& summary);
    ~LeadsSink() override;

    bool lock() override;
    std::string description() const override;
    void prepare(const std::vector<const sql::Table*>& /*tables*/) override {}
    std::optional<std::string> load_checkpoint() override;

    void add(const sql::Table& table, sql::Row row) override;
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override;
    std::size_t buffered() const override { return m_buffer.size(); }
    void commit(const std::optional<std::string>& checkpoint, const std::string& progress) override;
    Finished finish(pipeline::RunSummary& summary) override;

private:
    // Takes `lead` as far as it goes (see the class comment); throws as the Client does.
    void advance(Client& client, state::LedgerLead& lead);
    // advance() with the retries of a transient failure; parks a refused lead.
    void work(Client& client, state::LedgerLead lead);
    // Runs `body` on the ledger under the lock the workers share.
    template <typename Body> auto with_ledger(Body&& body) {
        std::lock_guard lock(m_ledger_mutex);
        return body(*m_ledger);
    }

    std::unique_ptr<state::StateStore> m_store;
    std::unique_ptr<state::LeadsLedger> m_ledger;
    std::string m_job;
    LeadsSinkOptions m_options;
    pipeline::RunSummary& m_summary;
    std::mutex m_ledger_mutex;
    std::vector<state::LedgerLead> m_buffer;
    std::set<std::string> m_dry_run_seen;
    long m_queued = 0;
    std::atomic<long> m_persons_found{0};
    std::atomic<long> m_persons_created{0};
    std::atomic<long> m_leads_created{0};
    std::atomic<long> m_leads_found{0};
    std::atomic<long> m_parked_now{0};
    std::atomic<long> m_retries{0};
};

} // namespace crmsync::drivers::pipedrive
