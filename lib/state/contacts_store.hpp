#pragma once

#include "lib/state/state_store.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::state {

// Where the Google listing of one account stands. A listing runs over several runs when the
// queue fills: `page_token` is the next page of the listing that started from `page_base`
// (a sync token, "" for a full sync); `sync_token` moves only once a listing has been read to
// its last page, so it never covers contacts that were not queued.
struct ContactsCursor {
    std::string sync_token;
    std::string page_token;
    std::string page_base;
    std::optional<std::int64_t> zoho_checkpoint_ms; // newest Zoho Modified_Time handled (UTC)
};

// Why a contact waits in the queue.
enum class QueueStep {
    queued,  // read from Google, not yet sent to Zoho
    sending, // an add request for it went out and its answer was not stored: in doubt
    parked,  // Zoho refused it (reason kept); tried again only when the contact changes
};
std::string_view to_string(QueueStep step) noexcept;

// A Google contact waiting to go to Zoho (the seed's pending connections).
struct QueuedContact {
    std::string resource_name;
    std::string person; // the People API Person as read (JSON text)
    bool deleted = false;
    QueueStep step = QueueStep::queued;
    std::string reason; // parked: Zoho's answer
};

enum class LinkState {
    linked,          // resource_name <-> zoho_id
    tombstone,       // the Google contact was deleted: never created or linked again
    creating_google, // a Google contact is being created for zoho_id: in doubt after a kill
};
std::string_view to_string(LinkState state) noexcept;

// One contact known on both sides.
struct ContactLink {
    std::int64_t id = 0; // 0 until saved
    std::string resource_name;
    std::string zoho_id;
    std::string synced_hash;   // hash of the mapped content both sides had after the last sync
    std::string google_person; // the Google Person last seen or written (JSON text)
    LinkState state = LinkState::linked;
    bool link_written = true; // the Zoho record's link field names resource_name
};

// The state of `contacts-sync` in the state file, per job (the Zoho report) and Google
// account: the listing cursor, the durable queue, the links. Writes join the caller's
// transaction if one is open, else each is its own IMMEDIATE transaction. Throws Error(io).
class ContactsStore {
public:
    // Adds the tables to a state file that lacks them.
    explicit ContactsStore(StateStore& store);

    ContactsCursor cursor(const std::string& job, const std::string& account);
    void save_cursor(const std::string& job, const std::string& account,
                     const ContactsCursor& cursor);

    // Queues the contact, or replaces the queued copy (a newer read); a parked contact is
    // queued again, one in doubt stays in doubt.
    void enqueue(const std::string& job, const std::string& account, const QueuedContact& contact);
    // Queued and in-doubt contacts, oldest first; at most `limit` (< 0: all).
    std::vector<QueuedContact> queued(const std::string& job, const std::string& account,
                                      long limit = -1);
    void set_step(const std::string& job, const std::string& account,
                  const std::string& resource_name, QueueStep step, const std::string& reason = {});
    void dequeue(const std::string& job, const std::string& account,
                 const std::string& resource_name);
    // Queued and in-doubt contacts (parked ones do not count).
    long queue_length(const std::string& job, const std::string& account);
    long parked_count(const std::string& job, const std::string& account);
    // Queue length per Google account over every job, for `accounts list` and `status`.
    std::map<std::string, long> queue_lengths();

    std::vector<ContactLink> links(const std::string& job, const std::string& account);
    // Inserts (id 0; sets link.id) or updates the link.
    void save_link(const std::string& job, const std::string& account, ContactLink& link);

private:
    StateStore& m_store;
};

// Writes a consistent copy of the whole state file to `path` (which must not exist): what a dry
// run works on, so that the real file is left as it was. Throws Error(io).
void copy_state_file(StateStore& store, const std::string& path);

} // namespace crmsync::state
