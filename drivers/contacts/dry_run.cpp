#include "drivers/contacts/dry_run.hpp"

namespace crmsync::drivers::contacts {

PeopleApi::Page DryRunPeople::list_connections(const std::string& sync_token,
                                               const std::string& page_token, int page_size) {
    return m_real.list_connections(sync_token, page_token, page_size);
}

nlohmann::json DryRunPeople::create_contact(const nlohmann::json& person) {
    nlohmann::json created = person;
    created["resourceName"] = "people/dry-run-" + std::to_string(++m_created);
    return created;
}

std::optional<nlohmann::json> DryRunPeople::update_contact(const nlohmann::json& person) {
    return person;
}

std::optional<nlohmann::json> DryRunPeople::get_contact(const std::string& resource_name) {
    return m_real.get_contact(resource_name);
}

std::vector<CreatorApi::Outcome>
DryRunCreator::add_records(const std::vector<nlohmann::json>& records) {
    std::vector<Outcome> out;
    for (std::size_t i = 0; i < records.size(); ++i) {
        Outcome o;
        o.ok = true;
        o.id = "dry-run-" + std::to_string(++m_added);
        out.push_back(o);
    }
    return out;
}

std::vector<nlohmann::json> DryRunCreator::records(const std::string& criteria) {
    return m_real.records(criteria);
}

CreatorApi::Outcome DryRunCreator::update_record(const std::string& id, const nlohmann::json&) {
    Outcome o;
    o.ok = true;
    o.id = id;
    return o;
}

CreatorApi::Outcome DryRunCreator::delete_record(const std::string& id) {
    Outcome o;
    o.ok = true;
    o.id = id;
    return o;
}

} // namespace crmsync::drivers::contacts
