#include "drivers/contacts/sync.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/time.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace crmsync::drivers::contacts {

using nlohmann::json;
using state::ContactLink;
using state::LinkState;
using state::QueuedContact;
using state::QueueStep;

namespace {

// A connections listing that answers "expired" this often in one run is refused for good.
constexpr int k_max_restarts = 2;
// Google requests an update may take: the update, a fetch after a stale etag, the retry.
constexpr long k_update_calls = 3;

std::string string_of(const json& object, const std::string& key) {
    if (!object.is_object()) {
        return {};
    }
    const auto it = object.find(key);
    if (it == object.end()) {
        return {};
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (it->is_number_integer()) {
        return std::to_string(it->get<long long>());
    }
    return {};
}

json parse_object(const std::string& text) {
    auto doc = json::parse(text, nullptr, false);
    return doc.is_object() ? doc : json::object();
}

bool is_deleted(const json& person) {
    return person.contains("metadata") && person["metadata"].is_object() &&
           person["metadata"].value("deleted", false);
}

// When the contact was last changed in Google: its CONTACT source's updateTime.
std::optional<SystemTime> google_update_time(const json& person) {
    if (!person.contains("metadata") || !person["metadata"].is_object()) {
        return std::nullopt;
    }
    const auto& sources = person["metadata"].value("sources", json::array());
    std::optional<SystemTime> newest;
    for (const auto& source : sources) {
        const auto t = util::parse_iso8601(string_of(source, "updateTime"));
        if (t && (!newest || *t > *newest)) {
            newest = t;
        }
    }
    return newest;
}

} // namespace

SyncCounts& SyncCounts::operator+=(const SyncCounts& o) {
    google_read += o.google_read;
    zoho_read += o.zoho_read;
    zoho_added += o.zoho_added;
    zoho_updated += o.zoho_updated;
    zoho_deleted += o.zoho_deleted;
    google_created += o.google_created;
    google_updated += o.google_updated;
    unchanged += o.unchanged;
    relinked += o.relinked;
    conflicts += o.conflicts;
    tombstoned += o.tombstoned;
    rejected += o.rejected;
    queue_left += o.queue_left;
    work_left = work_left || o.work_left;
    return *this;
}

std::string criteria_literal(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "\"";
}

struct AccountSync::Impl {
    AccountSync& s;
    state::ContactsStore contacts;
    SyncCounts counts;

    std::vector<ContactLink> links;
    std::map<std::string, std::size_t> by_resource; // resource name -> links index
    std::map<std::string, std::size_t> by_zoho;     // Zoho ID -> links index
    std::map<std::int64_t, std::size_t> by_id;      // link id -> links index

    std::map<std::string, json> zoho_records;          // by ID: the records read this run
    std::map<std::string, std::string> zoho_by_link;   // link field value -> ID
    std::map<std::string, std::string> zoho_by_relink; // relink key -> ID (unlinked records)
    std::set<std::string> zoho_overruled;              // IDs whose change lost a conflict to Google
    std::optional<std::int64_t> newest_zoho_ms;

    explicit Impl(AccountSync& sync) : s(sync), contacts(sync.m_store) {
        links = contacts.links(s.m_job, s.m_account);
        for (std::size_t i = 0; i < links.size(); ++i) {
            index(i);
        }
    }

    void index(std::size_t i) {
        by_id[links[i].id] = i;
        if (!links[i].resource_name.empty()) {
            by_resource[links[i].resource_name] = i;
        }
        if (!links[i].zoho_id.empty()) {
            by_zoho[links[i].zoho_id] = i;
        }
    }

    ContactLink* link_of_resource(const std::string& resource_name) {
        const auto it = by_resource.find(resource_name);
        return it == by_resource.end() ? nullptr : &links[it->second];
    }
    ContactLink* link_of_zoho(const std::string& id) {
        const auto it = by_zoho.find(id);
        return it == by_zoho.end() ? nullptr : &links[it->second];
    }

    // Stores the link (new or changed) and keeps the indexes in step.
    ContactLink& save(ContactLink link) {
        contacts.save_link(s.m_job, s.m_account, link);
        if (const auto it = by_id.find(link.id); it != by_id.end()) {
            const std::size_t i = it->second;
            if (links[i].resource_name != link.resource_name) {
                by_resource.erase(links[i].resource_name);
            }
            if (links[i].zoho_id != link.zoho_id) {
                by_zoho.erase(links[i].zoho_id);
            }
            links[i] = std::move(link);
            index(i);
            return links[i];
        }
        links.push_back(std::move(link));
        index(links.size() - 1);
        return links.back();
    }

    const std::string& job() const { return s.m_job; }
    const std::string& account() const { return s.m_account; }
    const SyncOptions& options() const { return s.m_options; }
    const Mapping& mapping() const { return s.m_mapping; }

    // 1. Google changes into the queue.
    bool fill_queue() {
        bool full_listing = false;
        auto cursor = contacts.cursor(job(), account());
        int restarts = 0;
        for (;;) {
            const long room = options().queue_cap - contacts.queue_length(job(), account());
            if (room < options().page_size) {
                counts.work_left = true;
                log::info("{}: the queue is full ({} of {}); reading Google waits", account(),
                          options().queue_cap - room, options().queue_cap);
                break;
            }
            if (s.m_people.calls_left() <= 0) {
                counts.work_left = true;
                break;
            }
            const bool continuing = !cursor.page_token.empty();
            const std::string base = continuing ? cursor.page_base : cursor.sync_token;
            auto page = s.m_people.list_connections(base, cursor.page_token, options().page_size);
            if (page.expired) {
                if ((base.empty() && !continuing) || ++restarts > k_max_restarts) {
                    throw Error(ErrorKind::connection,
                                "Google refuses the connections listing as expired",
                                "the next run starts a full listing again");
                }
                log::warn("{}: the Google sync token expired; reading every contact again "
                          "(linked contacts are not duplicated)",
                          account());
                cursor.sync_token.clear();
                cursor.page_token.clear();
                cursor.page_base.clear();
                contacts.save_cursor(job(), account(), cursor);
                continue;
            }
            full_listing = full_listing || base.empty();
            state::Transaction tx(s.m_store);
            for (auto& person : page.people) {
                QueuedContact queued;
                queued.resource_name = string_of(person, "resourceName");
                if (queued.resource_name.empty()) {
                    log::warn("{}: a Google contact without resourceName was skipped", account());
                    continue;
                }
                queued.deleted = is_deleted(person);
                queued.person = person.dump(-1, ' ', false, json::error_handler_t::replace);
                contacts.enqueue(job(), account(), queued);
                ++counts.google_read;
            }
            if (!page.next_page_token.empty()) {
                cursor.page_token = page.next_page_token;
                cursor.page_base = base;
            } else {
                cursor.page_token.clear();
                cursor.page_base.clear();
                if (!page.next_sync_token.empty()) {
                    cursor.sync_token = page.next_sync_token;
                }
            }
            contacts.save_cursor(job(), account(), cursor);
            tx.commit();
            if (page.next_page_token.empty()) {
                break;
            }
        }
        return full_listing;
    }

    // 2. The owner's Creator records: changed since the checkpoint, or all of them when
    // unlinked Google contacts must be matched against what Zoho already has.
    void read_zoho(bool need_all) {
        if (!need_all && options().direction == Direction::google_to_zoho) {
            return;
        }
        const auto cursor = contacts.cursor(job(), account());
        std::string criteria = options().owner_field + " == " + criteria_literal(s.m_owner);
        if (!need_all && cursor.zoho_checkpoint_ms) {
            const SystemTime since{std::chrono::milliseconds(*cursor.zoho_checkpoint_ms) -
                                   options().lookback};
            criteria +=
                " && Modified_Time >= " + criteria_literal(options().zone.format_time(since));
        }
        for (auto& record : s.m_creator.records(criteria)) {
            const std::string id = string_of(record, "ID");
            if (id.empty()) {
                log::warn("{}: a Creator record without ID was skipped", account());
                continue;
            }
            if (record.contains(options().owner_field) &&
                string_of(record, options().owner_field) != s.m_owner) {
                continue;
            }
            ++counts.zoho_read;
            if (const auto t = options().zone.parse_time(string_of(record, "Modified_Time"))) {
                const auto ms = t->time_since_epoch().count();
                newest_zoho_ms = newest_zoho_ms ? std::max(*newest_zoho_ms, ms) : ms;
            }
            const std::string linked_to = string_of(record, options().link_field);
            if (!linked_to.empty()) {
                zoho_by_link.emplace(linked_to, id);
            } else {
                const auto key = mapping().relink_key(mapping().from_zoho(record));
                if (!key.empty()) {
                    zoho_by_relink.emplace(key, id);
                }
            }
            zoho_records[id] = std::move(record);
        }
    }

    // 3. Both sides changed since the last sync: the newer modification wins.
    void settle_conflicts() {
        for (const auto& queued : contacts.queued(job(), account())) {
            ContactLink* link = link_of_resource(queued.resource_name);
            if (queued.deleted || link == nullptr || link->state != LinkState::linked) {
                continue;
            }
            const auto record = zoho_records.find(link->zoho_id);
            if (record == zoho_records.end()) {
                continue;
            }
            const json person = parse_object(queued.person);
            const auto google_hash = Mapping::hash(mapping().from_google(person));
            const auto zoho_hash = Mapping::hash(mapping().from_zoho(record->second));
            if (google_hash == link->synced_hash || zoho_hash == link->synced_hash) {
                continue; // one side only changed
            }
            if (google_hash == zoho_hash) {
                continue; // both made the same change: the update finds nothing to do
            }
            ++counts.conflicts;
            const auto google_time = google_update_time(person);
            const auto zoho_time =
                options().zone.parse_time(string_of(record->second, "Modified_Time"));
            const bool zoho_newer = zoho_time && (!google_time || *zoho_time > *google_time);
            if (zoho_newer) {
                log::warn("{}: conflict on {} (Zoho record {}): both sides changed; Zoho's "
                          "change is newer and wins, Google's change is dropped",
                          account(), queued.resource_name, link->zoho_id);
                contacts.dequeue(job(), account(), queued.resource_name);
            } else {
                log::warn("{}: conflict on {} (Zoho record {}): both sides changed; Google's "
                          "change is newer and wins, Zoho's change is dropped",
                          account(), queued.resource_name, link->zoho_id);
                zoho_overruled.insert(link->zoho_id);
            }
        }
    }

    struct PendingAdd {
        QueuedContact queued;
        Contact contact;
        std::string hash;
    };

    // A link found again for an unlinked Google contact: the record naming it in the link
    // field, else an unlinked record with the same e-mail.
    ContactLink* relink(const QueuedContact& queued, const Contact& contact) {
        std::string id;
        bool written = false;
        if (const auto it = zoho_by_link.find(queued.resource_name); it != zoho_by_link.end()) {
            id = it->second;
            written = true;
        } else if (const auto key = mapping().relink_key(contact); !key.empty()) {
            if (const auto by_key = zoho_by_relink.find(key); by_key != zoho_by_relink.end()) {
                id = by_key->second;
            }
        }
        const std::string hash = Mapping::hash(contact);
        if (id.empty()) {
            // A contact an earlier, stopped run created in Google for a record: its intent
            // holds the record's content.
            for (const auto& candidate : links) {
                if (candidate.state == LinkState::creating_google &&
                    candidate.synced_hash == hash) {
                    id = candidate.zoho_id;
                    break;
                }
            }
        }
        if (id.empty()) {
            return nullptr;
        }
        ContactLink link;
        if (const ContactLink* existing = link_of_zoho(id)) {
            if (existing->state != LinkState::creating_google) {
                return nullptr;
            }
            link = *existing; // the create went through: finish its link
            link.state = LinkState::linked;
            written = false;
            if (zoho_records.count(id) == 0) {
                link.resource_name = queued.resource_name;
                link.google_person = queued.person;
                ++counts.relinked;
                return &save(std::move(link));
            }
        }
        link.resource_name = queued.resource_name;
        link.zoho_id = id;
        link.synced_hash = Mapping::hash(mapping().from_zoho(zoho_records[id]));
        link.google_person = queued.person;
        link.link_written = written;
        ++counts.relinked;
        log::info("{}: {} linked again to Zoho record {} (by {})", account(), queued.resource_name,
                  id, written ? "its link field" : "e-mail");
        return &save(std::move(link));
    }

    void google_deletion(const QueuedContact& queued) {
        ContactLink* link = link_of_resource(queued.resource_name);
        if (link == nullptr || link->state != LinkState::linked) {
            contacts.dequeue(job(), account(), queued.resource_name);
            return;
        }
        ContactLink changed = *link;
        if (options().propagate_deletes) {
            const auto outcome = s.m_creator.delete_record(link->zoho_id);
            if (!outcome.ok && !outcome.not_found) {
                ++counts.rejected;
                contacts.set_step(job(), account(), queued.resource_name, QueueStep::parked,
                                  "Zoho refused the delete: " + outcome.error);
                return;
            }
            ++counts.zoho_deleted;
            zoho_records.erase(link->zoho_id);
        } else {
            ++counts.tombstoned;
        }
        changed.state = LinkState::tombstone;
        state::Transaction tx(s.m_store);
        save(std::move(changed));
        contacts.dequeue(job(), account(), queued.resource_name);
        tx.commit();
    }

    json zoho_body(const Contact& contact, const std::string& resource_name, bool with_owner) {
        json data = mapping().to_zoho(contact);
        data[options().link_field] = resource_name;
        if (with_owner) {
            data[options().owner_field] = s.m_owner;
        }
        return data;
    }

    // 4. Queued Google changes into Zoho.
    void google_to_zoho(const std::vector<QueuedContact>& work) {
        std::vector<PendingAdd> adds;
        for (const auto& queued : work) {
            if (queued.deleted) {
                google_deletion(queued);
                continue;
            }
            const json person = parse_object(queued.person);
            const Contact contact = mapping().from_google(person);
            const std::string hash = Mapping::hash(contact);
            ContactLink* link = link_of_resource(queued.resource_name);
            if (link != nullptr && link->state == LinkState::tombstone) {
                contacts.dequeue(job(), account(), queued.resource_name);
                continue;
            }
            if (link == nullptr) {
                link = relink(queued, contact);
            }
            if (link == nullptr || link->zoho_id.empty()) {
                adds.push_back({queued, contact, hash});
                continue;
            }
            ContactLink changed = *link;
            changed.google_person = queued.person;
            if (hash == link->synced_hash && link->link_written) {
                ++counts.unchanged;
                state::Transaction tx(s.m_store);
                save(std::move(changed));
                contacts.dequeue(job(), account(), queued.resource_name);
                tx.commit();
                continue;
            }
            const auto outcome = s.m_creator.update_record(
                link->zoho_id, zoho_body(contact, queued.resource_name, false));
            if (outcome.not_found) {
                // Deleted in Zoho meanwhile: the contact is added again as a new record.
                changed.zoho_id.clear();
                save(std::move(changed));
                adds.push_back({queued, contact, hash});
                continue;
            }
            if (!outcome.ok) {
                ++counts.rejected;
                log::warn("{}: Zoho refused the update of {} (record {}): {}", account(),
                          queued.resource_name, link->zoho_id, outcome.error);
                contacts.set_step(job(), account(), queued.resource_name, QueueStep::parked,
                                  outcome.error);
                continue;
            }
            ++counts.zoho_updated;
            // What was read of the record before this update is stale now.
            zoho_records.erase(link->zoho_id);
            changed.synced_hash = hash;
            changed.link_written = true;
            state::Transaction tx(s.m_store);
            save(std::move(changed));
            contacts.dequeue(job(), account(), queued.resource_name);
            tx.commit();
        }
        const auto batch = static_cast<std::size_t>(std::clamp(options().batch, 1, 200));
        for (std::size_t from = 0; from < adds.size(); from += batch) {
            const auto to = std::min(adds.size(), from + batch);
            {
                // In doubt from here until the answer is stored: a rerun relinks by the link
                // field instead of adding again.
                state::Transaction tx(s.m_store);
                for (std::size_t i = from; i < to; ++i) {
                    contacts.set_step(job(), account(), adds[i].queued.resource_name,
                                      QueueStep::sending);
                }
                tx.commit();
            }
            std::vector<json> records;
            for (std::size_t i = from; i < to; ++i) {
                records.push_back(zoho_body(adds[i].contact, adds[i].queued.resource_name, true));
            }
            const auto outcomes = s.m_creator.add_records(records);
            state::Transaction tx(s.m_store);
            for (std::size_t i = from; i < to; ++i) {
                const auto& add = adds[i];
                const auto& outcome =
                    i - from < outcomes.size() ? outcomes[i - from] : CreatorApi::Outcome{};
                if (!outcome.ok || outcome.id.empty()) {
                    ++counts.rejected;
                    const std::string why =
                        outcome.error.empty() ? "no answer for this record" : outcome.error;
                    log::warn("{}: Zoho refused {}: {}", account(), add.queued.resource_name, why);
                    contacts.set_step(job(), account(), add.queued.resource_name, QueueStep::parked,
                                      why);
                    continue;
                }
                ContactLink link;
                if (const ContactLink* old = link_of_resource(add.queued.resource_name)) {
                    link = *old;
                }
                link.resource_name = add.queued.resource_name;
                link.zoho_id = outcome.id;
                link.synced_hash = add.hash;
                link.google_person = add.queued.person;
                link.state = LinkState::linked;
                link.link_written = true;
                save(std::move(link));
                contacts.dequeue(job(), account(), add.queued.resource_name);
                ++counts.zoho_added;
            }
            tx.commit();
        }
    }

    void write_link_back(ContactLink& link) {
        const auto outcome = s.m_creator.update_record(
            link.zoho_id, json{{options().link_field, link.resource_name}});
        if (!outcome.ok && !outcome.not_found) {
            log::warn("{}: Zoho refused the link of record {}: {}", account(), link.zoho_id,
                      outcome.error);
            ++counts.rejected;
            return;
        }
        ContactLink changed = link;
        changed.link_written = true;
        save(std::move(changed));
    }

    // A queued, unlinked Google contact with this content or relink key: the contact an
    // earlier, killed run created for a record.
    std::optional<QueuedContact> unlinked_in_queue(const Contact& contact, bool by_key_only) {
        const auto hash = Mapping::hash(contact);
        const auto key = mapping().relink_key(contact);
        for (auto& queued : contacts.queued(job(), account())) {
            if (queued.deleted || link_of_resource(queued.resource_name) != nullptr) {
                continue;
            }
            const auto other = mapping().from_google(parse_object(queued.person));
            if ((!by_key_only && Mapping::hash(other) == hash) ||
                (!key.empty() && mapping().relink_key(other) == key)) {
                return queued;
            }
        }
        return std::nullopt;
    }

    // 5. Zoho changes into Google. Returns whether every change read was handled.
    bool zoho_to_google() {
        std::vector<const json*> ordered;
        for (const auto& [id, record] : zoho_records) {
            ordered.push_back(&record);
        }
        const auto time_of = [&](const json* r) {
            return options().zone.parse_time(string_of(*r, "Modified_Time")).value_or(SystemTime{});
        };
        std::stable_sort(ordered.begin(), ordered.end(),
                         [&](const json* a, const json* b) { return time_of(a) < time_of(b); });
        for (const json* record : ordered) {
            const std::string id = string_of(*record, "ID");
            const Contact contact = mapping().from_zoho(*record);
            const std::string hash = Mapping::hash(contact);
            ContactLink* link = link_of_zoho(id);
            if (link != nullptr && link->state == LinkState::tombstone) {
                continue;
            }
            if (link != nullptr && link->state == LinkState::creating_google) {
                // A create of an earlier run may have gone through: its contact comes back
                // from Google as a new, unlinked change.
                if (auto created = unlinked_in_queue(contact, false)) {
                    ContactLink changed = *link;
                    changed.resource_name = created->resource_name;
                    changed.google_person = created->person;
                    changed.state = LinkState::linked;
                    changed.synced_hash =
                        Mapping::hash(mapping().from_google(parse_object(created->person)));
                    state::Transaction tx(s.m_store);
                    link = &save(std::move(changed));
                    contacts.dequeue(job(), account(), created->resource_name);
                    tx.commit();
                    ++counts.relinked;
                } else {
                    log::warn("{}: the Google contact for Zoho record {} may have been created "
                              "by a run that was stopped; it was not found, so it is created",
                              account(), id);
                }
            }
            if (link == nullptr) {
                const std::string named = string_of(*record, options().link_field);
                if (!named.empty()) {
                    if (link_of_resource(named) != nullptr) {
                        log::warn("{}: Zoho record {} names {}, which is linked to another "
                                  "record; left alone",
                                  account(), id, named);
                        continue;
                    }
                    ContactLink adopted;
                    adopted.resource_name = named;
                    adopted.zoho_id = id;
                    adopted.synced_hash = hash;
                    save(std::move(adopted));
                    ++counts.relinked;
                    continue;
                }
                if (unlinked_in_queue(contact, true)) {
                    counts.work_left = true; // the Google side links it by e-mail first
                    continue;
                }
            }
            if (link != nullptr && link->state == LinkState::linked) {
                if (!link->link_written) {
                    write_link_back(*link);
                    link = link_of_zoho(id);
                }
                if (hash == link->synced_hash || zoho_overruled.count(id) != 0) {
                    ++counts.unchanged;
                    continue;
                }
                if (s.m_people.calls_left() < k_update_calls) {
                    counts.work_left = true;
                    return false;
                }
                update_google(*link, contact, hash);
                continue;
            }
            if (s.m_people.calls_left() < 1) {
                counts.work_left = true;
                return false;
            }
            create_google(link, id, contact, hash);
        }
        return true;
    }

    void create_google(ContactLink* pending, const std::string& id, const Contact& contact,
                       const std::string& hash) {
        ContactLink intent = pending != nullptr ? *pending : ContactLink{};
        intent.zoho_id = id;
        intent.state = LinkState::creating_google;
        intent.synced_hash = hash;
        intent.link_written = false;
        ContactLink& stored = save(std::move(intent));
        const json created = s.m_people.create_contact(mapping().to_google(contact));
        const std::string resource_name = string_of(created, "resourceName");
        if (resource_name.empty()) {
            throw Error(ErrorKind::data, "Google created a contact but named no resourceName",
                        "the next run looks for the contact before creating it again");
        }
        ContactLink changed = stored;
        changed.resource_name = resource_name;
        changed.google_person = created.dump(-1, ' ', false, json::error_handler_t::replace);
        changed.state = LinkState::linked;
        ContactLink& linked = save(std::move(changed));
        contacts.dequeue(job(), account(), resource_name);
        ++counts.google_created;
        write_link_back(linked);
    }

    void update_google(const ContactLink& link, const Contact& contact, const std::string& hash) {
        json person = parse_object(link.google_person);
        person["resourceName"] = link.resource_name;
        auto updated = s.m_people.update_contact(mapping().to_google(contact, person));
        if (!updated) {
            const auto fresh = s.m_people.get_contact(link.resource_name);
            if (!fresh) {
                log::info("{}: {} is gone from Google; its deletion is handled when Google "
                          "lists it",
                          account(), link.resource_name);
                return;
            }
            updated = s.m_people.update_contact(mapping().to_google(contact, *fresh));
            if (!updated) {
                throw Error(ErrorKind::connection,
                            "Google refused the update of " + link.resource_name +
                                " twice as changed meanwhile",
                            "the next run tries again");
            }
        }
        ContactLink changed = link;
        changed.synced_hash = hash;
        changed.google_person = updated->dump(-1, ' ', false, json::error_handler_t::replace);
        save(std::move(changed));
        // A queued copy of the contact is older than what was just written (conflicts were
        // settled before): sending it to Zoho would undo this change.
        contacts.dequeue(job(), account(), link.resource_name);
        ++counts.google_updated;
    }

    SyncCounts run() {
        const auto direction = options().direction;
        if (direction != Direction::zoho_to_google) {
            fill_queue();
        }
        // Unlinked contacts about to go to Zoho (new ones, adds in doubt, contacts of a lost
        // state) are first looked for among the owner's records.
        const auto work = direction != Direction::zoho_to_google
                              ? contacts.queued(job(), account(), options().max_per_run)
                              : std::vector<QueuedContact>{};
        bool need_all = !contacts.cursor(job(), account()).zoho_checkpoint_ms.has_value() &&
                        direction != Direction::google_to_zoho;
        for (const auto& queued : work) {
            if (!queued.deleted && link_of_resource(queued.resource_name) == nullptr) {
                need_all = true;
                break;
            }
        }
        read_zoho(need_all);
        if (direction == Direction::both) {
            settle_conflicts();
        }
        if (direction != Direction::zoho_to_google) {
            // The conflicts may have dropped some of the work.
            google_to_zoho(contacts.queued(job(), account(), options().max_per_run));
        }
        if (direction != Direction::google_to_zoho && zoho_to_google() && newest_zoho_ms) {
            auto cursor = contacts.cursor(job(), account());
            if (!cursor.zoho_checkpoint_ms || *newest_zoho_ms > *cursor.zoho_checkpoint_ms) {
                cursor.zoho_checkpoint_ms = newest_zoho_ms;
                contacts.save_cursor(job(), account(), cursor);
            }
        }
        counts.queue_left = contacts.queue_length(job(), account());
        if (counts.queue_left > 0) {
            counts.work_left = true;
        }
        return counts;
    }
};

AccountSync::AccountSync(state::StateStore& store, std::string job, std::string account,
                         std::string owner, PeopleApi& people, CreatorApi& creator,
                         const Mapping& mapping, const SyncOptions& options)
    : m_store(store), m_job(std::move(job)), m_account(std::move(account)),
      m_owner(std::move(owner)), m_people(people), m_creator(creator), m_mapping(mapping),
      m_options(options) {}

SyncCounts AccountSync::run() {
    Impl impl(*this);
    return impl.run();
}

} // namespace crmsync::drivers::contacts
