#include "drivers/pipedrive/leads_sink.hpp"

#include "drivers/leads/lead_rows.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <iostream>
#include <thread>

namespace crmsync::drivers::pipedrive {
namespace {

using nlohmann::json;

std::string text_of(const json& lead, const char* field) {
    const auto it = lead.find(field);
    return it != lead.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Pipedrive requires a name: the lead's, else its phone, else its e-mail.
std::string person_name(const json& lead) {
    for (const char* field : {"name", "phone", "email"}) {
        if (auto text = text_of(lead, field); !text.empty()) {
            return text;
        }
    }
    return "Unknown";
}

std::string contact_of(const json& lead) {
    for (const char* field : {"email", "phone", "name"}) {
        if (auto text = text_of(lead, field); !text.empty()) {
            return text;
        }
    }
    return "nobody";
}

} // namespace

LeadsSink::LeadsSink(std::unique_ptr<state::StateStore> store, std::string job,
                     LeadsSinkOptions options, pipeline::RunSummary& summary)
    : m_store(std::move(store)), m_job(std::move(job)), m_options(std::move(options)),
      m_summary(summary) {
    if (!m_store && !m_options.dry_run) {
        throw Error(ErrorKind::internal, "the leads sink needs a state file");
    }
    if (m_store) {
        m_ledger = std::make_unique<state::LeadsLedger>(*m_store);
    }
    if (!m_options.client.budget) {
        m_options.client.budget = std::make_shared<BurstBudget>();
    }
}

LeadsSink::~LeadsSink() = default;

bool LeadsSink::lock() { return m_options.dry_run || m_store->try_lock_job(m_job); }

std::string LeadsSink::description() const {
    return "Pipedrive at " + util::redact_url(m_options.client.base_url);
}

std::optional<std::string> LeadsSink::load_checkpoint() {
    return m_store ? m_store->checkpoint(m_job) : std::nullopt;
}

void LeadsSink::add(const sql::Table& table, sql::Row row) {
    const auto lead = leads::lead_from_row(table, row);
    state::LedgerLead entry;
    entry.job = m_job;
    entry.source = text_of(lead, "source");
    entry.lead_id = text_of(lead, "id");
    entry.payload = lead.dump(-1, ' ', false, json::error_handler_t::replace);
    if (const auto at = table.position("fetch_window"); at < row.size() && row[at]) {
        entry.window = *row[at];
    }
    m_buffer.push_back(std::move(entry));
}

void LeadsSink::reject(const std::string& table, const std::string& key, const std::string& reason,
                       const std::string& raw) {
    ++m_summary.rejected;
    log::warn("rejected {} {}: {} ({})", table, key.empty() ? "(no id)" : key, reason, raw);
    std::cerr << "crmsync: rejected lead " << (key.empty() ? "(no id)" : key) << ": " << reason
              << "\n";
}

void LeadsSink::commit(const std::optional<std::string>& checkpoint,
                       const std::string& /*progress*/) {
    if (m_options.dry_run) {
        auto& out = m_options.out != nullptr ? *m_options.out : std::cout;
        for (const auto& entry : m_buffer) {
            const auto known =
                m_ledger ? m_ledger->find(entry.source, entry.lead_id) : std::nullopt;
            if ((known && known->step == state::LeadStep::done) ||
                !m_dry_run_seen.insert(entry.source + "/" + entry.lead_id).second) {
                continue;
            }
            const auto lead = json::parse(entry.payload);
            out << fmt::format("would create: lead \"{}\" for the person {} (created if none "
                               "matches)\n",
                               leads::lead_title(lead), contact_of(lead));
            ++m_queued;
        }
        out.flush();
        m_buffer.clear();
        if (checkpoint) {
            m_summary.checkpoint = *checkpoint;
        }
        return;
    }
    long added = 0;
    state::Transaction transaction(*m_store);
    for (const auto& entry : m_buffer) {
        added += m_ledger->add(entry) ? 1 : 0;
    }
    if (checkpoint) {
        m_store->set_checkpoint(m_job, *checkpoint);
    }
    transaction.commit();
    m_buffer.clear();
    m_queued += added;
    if (checkpoint) {
        m_summary.checkpoint = *checkpoint;
    }
}

void LeadsSink::advance(Client& client, state::LedgerLead& lead) {
    const auto record = json::parse(lead.payload, nullptr, false);
    const std::string email = text_of(record, "email");
    const std::string phone = text_of(record, "phone");
    bool new_person = false;
    if (lead.step == state::LeadStep::queued || !lead.person_id) {
        // A killed run may have created the person without noting it: look first.
        auto person = client.find_person(email, phone, text_of(record, "name"));
        if (person) {
            with_ledger([&](auto& ledger) {
                ledger.set_person(lead, *person, state::LeadStep::person_found);
            });
            lead.step = state::LeadStep::person_found;
            ++m_persons_found;
        } else {
            person = client.create_person(person_name(record), email, phone);
            with_ledger([&](auto& ledger) {
                ledger.set_person(lead, *person, state::LeadStep::person_created);
            });
            lead.step = state::LeadStep::person_created;
            ++m_persons_created;
            new_person = true;
        }
        lead.person_id = person;
    }
    // A person created a moment ago has no leads; any other may hold one an earlier run
    // created before it could note it.
    if (!new_person) {
        if (auto existing =
                client.find_lead(*lead.person_id, leads::title_marker(lead.source, lead.lead_id))) {
            with_ledger([&](auto& ledger) { ledger.set_done(lead, *existing); });
            lead.step = state::LeadStep::done;
            ++m_leads_found;
            return;
        }
    }
    const auto id = client.create_lead(leads::lead_title(record), *lead.person_id);
    with_ledger([&](auto& ledger) { ledger.set_done(lead, id); });
    lead.step = state::LeadStep::done;
    ++m_leads_created;
}

void LeadsSink::work(Client& client, state::LedgerLead lead) {
    const auto& policy = m_options.client.retry;
    const auto& clock = *m_options.client.clock;
    for (int attempt = 1;; ++attempt) {
        try {
            advance(client, lead);
            return;
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::data) {
                with_ledger([&](auto& ledger) { ledger.park(lead, e.what()); });
                ++m_parked_now;
                log::warn("lead {}/{} parked: {}", lead.source, lead.lead_id, e.what());
                std::lock_guard lock(m_ledger_mutex); // one line at a time on stderr
                std::cerr << "crmsync: lead " << lead.source << "/" << lead.lead_id
                          << " parked: " << e.what() << "\n";
                return;
            }
            if (e.kind() != ErrorKind::connection) {
                throw;
            }
            const auto delay = policy.backoff(attempt);
            const auto& deadline = m_options.client.deadline;
            if (attempt >= policy.max_attempts ||
                (deadline && clock.steady_now() + delay >= *deadline)) {
                with_ledger([&](auto& ledger) { ledger.note_failure(lead, e.what()); });
                throw;
            }
            ++m_retries;
            log::warn("lead {}/{}: {}; looking again in {} ms", lead.source, lead.lead_id, e.what(),
                      delay.count());
            for (auto left = delay; left.count() > 0;) {
                if (stop_requested()) {
                    throw Error(ErrorKind::interrupted, "interrupted while waiting for Pipedrive");
                }
                const auto slice =
                    std::min<std::chrono::milliseconds>(left, std::chrono::milliseconds(100));
                clock.sleep_for(slice);
                left -= slice;
            }
        }
    }
}

pipeline::Sink::Finished LeadsSink::finish(pipeline::RunSummary& summary) {
    Finished finished;
    if (m_options.dry_run) {
        summary.counters.emplace_back("would_create", m_queued);
        return finished;
    }
    // Leads of one contact share a worker (see LeadsSinkOptions::in_flight), in ledger order.
    const std::size_t workers = std::max<std::size_t>(1, m_options.in_flight);
    std::vector<std::vector<state::LedgerLead>> shares(workers);
    for (auto& lead : m_ledger->unfinished(m_job)) {
        const auto record = json::parse(lead.payload, nullptr, false);
        const auto contact = contact_of(record);
        shares[std::hash<std::string>{}(contact) % workers].push_back(std::move(lead));
    }
    std::atomic<bool> give_up{false};
    std::atomic<bool> out_of_time{false};
    std::mutex failure_mutex;
    std::optional<Error> failure;
    std::vector<std::unique_ptr<Client>> clients;
    for (std::size_t i = 0; i < workers; ++i) {
        clients.push_back(std::make_unique<Client>(m_options.client));
    }
    const auto run_share = [&](std::size_t index) {
        const auto& deadline = m_options.client.deadline;
        for (auto& lead : shares[index]) {
            if (give_up || stop_requested()) {
                return;
            }
            if (deadline && m_options.client.clock->steady_now() >= *deadline) {
                out_of_time = true;
                return;
            }
            try {
                work(*clients[index], lead);
            } catch (const Error& e) {
                if (e.kind() != ErrorKind::interrupted && deadline &&
                    m_options.client.clock->steady_now() >= *deadline) {
                    out_of_time = true; // the rest waits for the next run
                } else if (e.kind() != ErrorKind::interrupted) {
                    std::lock_guard lock(failure_mutex);
                    if (!failure) {
                        failure = e;
                    }
                }
                give_up = true;
                return;
            } catch (const std::exception& e) {
                std::lock_guard lock(failure_mutex);
                if (!failure) {
                    failure = Error(ErrorKind::internal, e.what());
                }
                give_up = true;
                return;
            }
        }
    };
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < workers; ++i) {
        threads.emplace_back(run_share, i);
    }
    run_share(0);
    for (auto& thread : threads) {
        thread.join();
    }
    const auto counts = m_ledger->counts(m_job);
    ClientStats stats;
    for (const auto& client : clients) {
        stats.requests += client->stats().requests;
        stats.retries += client->stats().retries;
        stats.throttled += client->stats().throttled;
    }
    const long pending = counts.at(state::LeadStep::queued) +
                         counts.at(state::LeadStep::person_found) +
                         counts.at(state::LeadStep::person_created);
    summary.counters.emplace_back("queued", m_queued);
    summary.counters.emplace_back("persons_found", m_persons_found.load());
    summary.counters.emplace_back("persons_created", m_persons_created.load());
    summary.counters.emplace_back("leads_created", m_leads_created.load());
    summary.counters.emplace_back("leads_found", m_leads_found.load());
    summary.counters.emplace_back("parked", m_parked_now.load());
    summary.counters.emplace_back("pending", pending);
    summary.counters.emplace_back("requests", stats.requests);
    summary.counters.emplace_back("throttled", stats.throttled);
    summary.counters.emplace_back("budget_waits", m_options.client.budget->waits());
    summary.retries += stats.retries + stats.throttled + m_retries.load();
    if (failure) {
        if (failure->kind() == ErrorKind::connection) {
            failure->add_context(fmt::format("{} leads left for the next run", pending));
        }
        throw *failure;
    }
    finished.complete = pending == 0 && m_parked_now == 0 && !out_of_time;
    if (m_parked_now > 0) {
        finished.notice_error = fmt::format(
            "Pipedrive refused {} lead(s); they are parked with its answer (crmsync status "
            "--state shows them)",
            m_parked_now.load());
    }
    return finished;
}

} // namespace crmsync::drivers::pipedrive
