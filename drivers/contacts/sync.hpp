#pragma once

#include "drivers/contacts/apis.hpp"
#include "drivers/contacts/mapping.hpp"
#include "drivers/contacts/zoho_time.hpp"
#include "lib/state/contacts_store.hpp"

#include <chrono>
#include <string>

namespace crmsync::drivers::contacts {

enum class Direction { both, google_to_zoho, zoho_to_google };

struct SyncOptions {
    Direction direction = Direction::both;
    std::string owner_field = "Owner_Login";
    std::string link_field = "Google_Resource_Name";
    int batch = 30;         // records per Creator add request (at most 200)
    long queue_cap = 400;   // contacts queued per account at most
    long max_per_run = 100; // queued contacts worked (sent to Zoho) per account and run
    int page_size = 100;    // people per connections page (a page is read only when it fits)
    bool propagate_deletes = false;
    ZohoZone zone = ZohoZone::parse("UTC");
    std::chrono::milliseconds lookback{std::chrono::minutes(10)};
};

// What one account's sync did; added up over the accounts for the summary.
struct SyncCounts {
    long google_read = 0;    // people read from the connections list
    long zoho_read = 0;      // Creator records read
    long zoho_added = 0;     // records added to Zoho
    long zoho_updated = 0;   // records updated in Zoho
    long zoho_deleted = 0;   // records deleted in Zoho (--propagate-deletes)
    long google_created = 0; // contacts created in Google
    long google_updated = 0; // contacts updated in Google
    long unchanged = 0;      // changes that were an echo of crmsync's own write, or no change
    long relinked = 0;       // links found again by the link field or the e-mail
    long conflicts = 0;      // both sides changed: the newer won, the other was dropped
    long tombstoned = 0;     // Google deletions that unlinked a record for good
    long rejected = 0;       // records Zoho or Google refused (parked with the answer)
    long queue_left = 0;     // contacts still queued after the run
    bool work_left = false;  // the queue, a listing or Zoho changes wait for the next run

    SyncCounts& operator+=(const SyncCounts& other);
};

// Keeps one Google account's contacts and its owner's Creator records in step, in one run:
//   1. reads Google changes (sync token, else a full listing) into the durable queue while it
//      has room for a whole page, committing each page with the listing's cursor;
//   2. reads the owner's Creator records changed since the checkpoint (minus the lookback), or
//      all of them when links must be found (first sync, full listing, a lost state, an add
//      in doubt);
//   3. settles conflicts (both sides changed: the newer modification time wins);
//   4. Google -> Zoho: up to max_per_run queued contacts; adds in batches (each batch is
//      marked in doubt before its request, and relinked by the link field after a kill),
//      updates by ID, deletions (--propagate-deletes) or tombstones;
//   5. Zoho -> Google: creates (the intent is stored first, the link written back at once)
//      and updates with the etag (a stale etag is fetched and tried again), then moves the
//      checkpoint when every change was handled.
// Every state change is committed right after the write it stands for, so a kill at any point
// leaves no duplicate on either side. Stops early, leaving work for the next run, when the
// account's Google call budget runs out. Throws crmsync::Error from the APIs or the store.
class AccountSync {
public:
    AccountSync(state::StateStore& store, std::string job, std::string account, std::string owner,
                PeopleApi& people, CreatorApi& creator, const Mapping& mapping,
                const SyncOptions& options);

    SyncCounts run();

private:
    struct Impl;
    state::StateStore& m_store;
    std::string m_job;
    std::string m_account;
    std::string m_owner;
    PeopleApi& m_people;
    CreatorApi& m_creator;
    const Mapping& m_mapping;
    const SyncOptions& m_options;
};

// `text` quoted for a Creator criteria string literal.
std::string criteria_literal(const std::string& text);

} // namespace crmsync::drivers::contacts
