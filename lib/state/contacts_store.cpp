#include "lib/state/contacts_store.hpp"

#include "lib/core/clock.hpp"
#include "lib/state/open_file.hpp"
#include "lib/util/time.hpp"

#include <SQLiteCpp/Statement.h>

namespace crmsync::state {
namespace {

// Added on first use, so state files written before contacts-sync get it too.
constexpr const char* k_schema = R"sql(
CREATE TABLE IF NOT EXISTS contacts_cursor (
    job TEXT NOT NULL,
    account TEXT NOT NULL,
    sync_token TEXT NOT NULL DEFAULT '',
    page_token TEXT NOT NULL DEFAULT '',
    page_base TEXT NOT NULL DEFAULT '',
    zoho_checkpoint_ms INTEGER,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (job, account)
);
CREATE TABLE IF NOT EXISTS contacts_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    account TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    person TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    step TEXT NOT NULL DEFAULT 'queued',
    reason TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    UNIQUE (job, account, resource_name)
);
CREATE TABLE IF NOT EXISTS contacts_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    account TEXT NOT NULL,
    resource_name TEXT NOT NULL DEFAULT '',
    zoho_id TEXT NOT NULL DEFAULT '',
    synced_hash TEXT NOT NULL DEFAULT '',
    google_person TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'linked',
    link_written INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_links_resource
    ON contacts_links (job, account, resource_name) WHERE resource_name <> '';
CREATE INDEX IF NOT EXISTS contacts_links_zoho ON contacts_links (job, account, zoho_id);
)sql";

constexpr std::size_t k_reason_text = 2000;

std::string now_text() { return util::format_iso8601(Clock::real().wall_now()); }

QueueStep step_from(const std::string& text) {
    if (text == "sending") {
        return QueueStep::sending;
    }
    if (text == "parked") {
        return QueueStep::parked;
    }
    return QueueStep::queued;
}

LinkState link_state_from(const std::string& text) {
    if (text == "tombstone") {
        return LinkState::tombstone;
    }
    if (text == "creating_google") {
        return LinkState::creating_google;
    }
    return LinkState::linked;
}

} // namespace

std::string_view to_string(QueueStep step) noexcept {
    switch (step) {
    case QueueStep::sending:
        return "sending";
    case QueueStep::parked:
        return "parked";
    case QueueStep::queued:
        break;
    }
    return "queued";
}

std::string_view to_string(LinkState state) noexcept {
    switch (state) {
    case LinkState::tombstone:
        return "tombstone";
    case LinkState::creating_google:
        return "creating_google";
    case LinkState::linked:
        break;
    }
    return "linked";
}

ContactsStore::ContactsStore(StateStore& store) : m_store(store) {
    detail::guarded(m_store, "cannot add the contacts tables",
                    [&] { detail::connection(m_store).exec(k_schema); });
}

ContactsCursor ContactsStore::cursor(const std::string& job, const std::string& account) {
    return detail::guarded(m_store, "cannot read the contacts cursor", [&] {
        detail::CachedStatement st(
            m_store, "SELECT sync_token, page_token, page_base, zoho_checkpoint_ms FROM "
                     "contacts_cursor WHERE job = ? AND account = ?");
        st->bind(1, job);
        st->bind(2, account);
        ContactsCursor c;
        if (st->executeStep()) {
            c.sync_token = st->getColumn(0).getString();
            c.page_token = st->getColumn(1).getString();
            c.page_base = st->getColumn(2).getString();
            if (!st->getColumn(3).isNull()) {
                c.zoho_checkpoint_ms = st->getColumn(3).getInt64();
            }
        }
        return c;
    });
}

void ContactsStore::save_cursor(const std::string& job, const std::string& account,
                                const ContactsCursor& c) {
    detail::guarded(m_store, "cannot write the contacts cursor", [&] {
        detail::CachedStatement st(
            m_store,
            "INSERT INTO contacts_cursor (job, account, sync_token, page_token, page_base, "
            "zoho_checkpoint_ms, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job, "
            "account) DO UPDATE SET sync_token = excluded.sync_token, page_token = "
            "excluded.page_token, page_base = excluded.page_base, zoho_checkpoint_ms = "
            "excluded.zoho_checkpoint_ms, updated_at = excluded.updated_at");
        st->bind(1, job);
        st->bind(2, account);
        st->bind(3, c.sync_token);
        st->bind(4, c.page_token);
        st->bind(5, c.page_base);
        if (c.zoho_checkpoint_ms) {
            st->bind(6, static_cast<std::int64_t>(*c.zoho_checkpoint_ms));
        } else {
            st->bind(6);
        }
        st->bind(7, now_text());
        st->exec();
    });
}

void ContactsStore::enqueue(const std::string& job, const std::string& account,
                            const QueuedContact& contact) {
    detail::guarded(m_store, "cannot write the contacts queue", [&] {
        // A re-read contact goes to the back of the queue with its newest content; an add in
        // doubt stays in doubt, so the next run looks for the record first.
        detail::CachedStatement st(
            m_store,
            "INSERT INTO contacts_queue (job, account, resource_name, person, deleted, step, "
            "updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT (job, account, "
            "resource_name) DO UPDATE SET person = excluded.person, deleted = excluded.deleted, "
            "step = CASE WHEN contacts_queue.step = 'sending' THEN 'sending' ELSE 'queued' END, "
            "reason = '', updated_at = excluded.updated_at");
        st->bind(1, job);
        st->bind(2, account);
        st->bind(3, contact.resource_name);
        st->bind(4, contact.person);
        st->bind(5, contact.deleted ? 1 : 0);
        st->bind(6, now_text());
        st->exec();
    });
}

std::vector<QueuedContact> ContactsStore::queued(const std::string& job, const std::string& account,
                                                 long limit) {
    return detail::guarded(m_store, "cannot read the contacts queue", [&] {
        detail::CachedStatement st(
            m_store, "SELECT resource_name, person, deleted, step, reason FROM "
                     "contacts_queue WHERE job = ? AND account = ? AND step <> 'parked' "
                     "ORDER BY seq LIMIT ?");
        st->bind(1, job);
        st->bind(2, account);
        st->bind(3, static_cast<std::int64_t>(limit));
        std::vector<QueuedContact> out;
        while (st->executeStep()) {
            QueuedContact c;
            c.resource_name = st->getColumn(0).getString();
            c.person = st->getColumn(1).getString();
            c.deleted = st->getColumn(2).getInt() != 0;
            c.step = step_from(st->getColumn(3).getString());
            c.reason = st->getColumn(4).getString();
            out.push_back(std::move(c));
        }
        return out;
    });
}

void ContactsStore::set_step(const std::string& job, const std::string& account,
                             const std::string& resource_name, QueueStep step,
                             const std::string& reason) {
    detail::guarded(m_store, "cannot write the contacts queue", [&] {
        detail::CachedStatement st(m_store,
                                   "UPDATE contacts_queue SET step = ?, reason = ?, updated_at = ? "
                                   "WHERE job = ? AND account = ? AND resource_name = ?");
        st->bind(1, std::string(to_string(step)));
        st->bind(2, reason.substr(0, k_reason_text));
        st->bind(3, now_text());
        st->bind(4, job);
        st->bind(5, account);
        st->bind(6, resource_name);
        st->exec();
    });
}

void ContactsStore::dequeue(const std::string& job, const std::string& account,
                            const std::string& resource_name) {
    detail::guarded(m_store, "cannot write the contacts queue", [&] {
        detail::CachedStatement st(m_store,
                                   "DELETE FROM contacts_queue WHERE job = ? AND account = ? AND "
                                   "resource_name = ?");
        st->bind(1, job);
        st->bind(2, account);
        st->bind(3, resource_name);
        st->exec();
    });
}

long ContactsStore::queue_length(const std::string& job, const std::string& account) {
    return detail::guarded(m_store, "cannot read the contacts queue", [&] {
        detail::CachedStatement st(
            m_store, "SELECT COUNT(*) FROM contacts_queue WHERE job = ? AND account = ? "
                     "AND step <> 'parked'");
        st->bind(1, job);
        st->bind(2, account);
        st->executeStep();
        return static_cast<long>(st->getColumn(0).getInt64());
    });
}

long ContactsStore::parked_count(const std::string& job, const std::string& account) {
    return detail::guarded(m_store, "cannot read the contacts queue", [&] {
        detail::CachedStatement st(
            m_store, "SELECT COUNT(*) FROM contacts_queue WHERE job = ? AND account = ? "
                     "AND step = 'parked'");
        st->bind(1, job);
        st->bind(2, account);
        st->executeStep();
        return static_cast<long>(st->getColumn(0).getInt64());
    });
}

std::map<std::string, long> ContactsStore::queue_lengths() {
    return detail::guarded(m_store, "cannot read the contacts queue", [&] {
        detail::CachedStatement st(m_store,
                                   "SELECT account, COUNT(*) FROM contacts_queue WHERE step <> "
                                   "'parked' GROUP BY account");
        std::map<std::string, long> out;
        while (st->executeStep()) {
            out[st->getColumn(0).getString()] = static_cast<long>(st->getColumn(1).getInt64());
        }
        return out;
    });
}

std::vector<ContactLink> ContactsStore::links(const std::string& job, const std::string& account) {
    return detail::guarded(m_store, "cannot read the contact links", [&] {
        detail::CachedStatement st(m_store,
                                   "SELECT id, resource_name, zoho_id, synced_hash, google_person, "
                                   "state, link_written FROM contacts_links WHERE job = ? AND "
                                   "account = ? ORDER BY id");
        st->bind(1, job);
        st->bind(2, account);
        std::vector<ContactLink> out;
        while (st->executeStep()) {
            ContactLink l;
            l.id = st->getColumn(0).getInt64();
            l.resource_name = st->getColumn(1).getString();
            l.zoho_id = st->getColumn(2).getString();
            l.synced_hash = st->getColumn(3).getString();
            l.google_person = st->getColumn(4).getString();
            l.state = link_state_from(st->getColumn(5).getString());
            l.link_written = st->getColumn(6).getInt() != 0;
            out.push_back(std::move(l));
        }
        return out;
    });
}

void ContactsStore::save_link(const std::string& job, const std::string& account,
                              ContactLink& link) {
    detail::guarded(m_store, "cannot write the contact links", [&] {
        auto& db = detail::connection(m_store);
        if (link.id == 0) {
            detail::CachedStatement st(m_store,
                                       "INSERT INTO contacts_links (job, account, resource_name, "
                                       "zoho_id, synced_hash, google_person, state, link_written, "
                                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
            st->bind(1, job);
            st->bind(2, account);
            st->bind(3, link.resource_name);
            st->bind(4, link.zoho_id);
            st->bind(5, link.synced_hash);
            st->bind(6, link.google_person);
            st->bind(7, std::string(to_string(link.state)));
            st->bind(8, link.link_written ? 1 : 0);
            st->bind(9, now_text());
            st->exec();
            link.id = db.getLastInsertRowid();
            return;
        }
        detail::CachedStatement st(m_store,
                                   "UPDATE contacts_links SET resource_name = ?, zoho_id = ?, "
                                   "synced_hash = ?, google_person = ?, state = ?, link_written = "
                                   "?, updated_at = ? WHERE id = ?");
        st->bind(1, link.resource_name);
        st->bind(2, link.zoho_id);
        st->bind(3, link.synced_hash);
        st->bind(4, link.google_person);
        st->bind(5, std::string(to_string(link.state)));
        st->bind(6, link.link_written ? 1 : 0);
        st->bind(7, now_text());
        st->bind(8, static_cast<std::int64_t>(link.id));
        st->exec();
    });
}

void copy_state_file(StateStore& store, const std::string& path) {
    detail::guarded(store, "cannot copy the state file", [&] {
        SQLite::Statement st(detail::connection(store), "VACUUM INTO ?");
        st.bind(1, path);
        st.exec();
    });
}

} // namespace crmsync::state
