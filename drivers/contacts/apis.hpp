#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::contacts {

// The Google People API as contacts-sync uses it, for one Google account. Implemented over
// HTTP by drivers/google/people_client. Every method sends requests that count against the
// account's per-run call budget; failures throw crmsync::Error (auth, connection, data,
// interrupted). Not thread safe.
class PeopleApi {
public:
    virtual ~PeopleApi() = default;

    struct Page {
        std::vector<nlohmann::json> people; // Persons; deleted ones have metadata.deleted
        std::string next_page_token;        // "" on the last page
        std::string next_sync_token;        // last page only
        bool expired = false;               // the sync token (or page token) is no longer valid
    };
    // One page of people/me/connections: a full listing when `sync_token` is "" (asking for a
    // sync token), else the changes since it; `page_token` continues a listing.
    virtual Page list_connections(const std::string& sync_token, const std::string& page_token,
                                  int page_size) = 0;
    // people:createContact; returns the created Person (resourceName, etag).
    virtual nlohmann::json create_contact(const nlohmann::json& person) = 0;
    // :updateContact of the mapped lists with the person's etag; nullopt when the etag is
    // stale (fetch the person and try again).
    virtual std::optional<nlohmann::json> update_contact(const nlohmann::json& person) = 0;
    // GET {resourceName}; nullopt when the contact no longer exists.
    virtual std::optional<nlohmann::json> get_contact(const std::string& resource_name) = 0;
    // Requests still allowed in this run for the account.
    virtual long calls_left() const = 0;
};

// A Zoho Creator report and its form, as contacts-sync uses them. Implemented over HTTP by
// drivers/zoho/creator_client. Failures throw crmsync::Error; a refusal of one record is a
// returned outcome, not an exception. Not thread safe.
class CreatorApi {
public:
    virtual ~CreatorApi() = default;

    struct Outcome {
        bool ok = false;
        bool not_found = false; // update/delete: no record with that ID
        std::string id;         // add: the new record's ID
        std::string error;      // refusal: Zoho's code and words
    };
    // Adds up to 200 records (one Outcome per record, in order).
    virtual std::vector<Outcome> add_records(const std::vector<nlohmann::json>& records) = 0;
    // Every record of the report matching `criteria` (all pages); empty when none.
    virtual std::vector<nlohmann::json> records(const std::string& criteria) = 0;
    virtual Outcome update_record(const std::string& id, const nlohmann::json& data) = 0;
    virtual Outcome delete_record(const std::string& id) = 0;
};

} // namespace crmsync::drivers::contacts
