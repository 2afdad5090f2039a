#pragma once

#include "drivers/contacts/apis.hpp"

namespace crmsync::drivers::contacts {

// --dry-run: the real APIs for reads; writes are not sent but answered as if they succeeded
// (new contacts and records get made-up names and IDs), so a sync over a copy of the state
// file counts what it would do.
class DryRunPeople final : public PeopleApi {
public:
    explicit DryRunPeople(PeopleApi& real) : m_real(real) {}
    Page list_connections(const std::string& sync_token, const std::string& page_token,
                          int page_size) override;
    nlohmann::json create_contact(const nlohmann::json& person) override;
    std::optional<nlohmann::json> update_contact(const nlohmann::json& person) override;
    std::optional<nlohmann::json> get_contact(const std::string& resource_name) override;
    long calls_left() const override { return m_real.calls_left(); }

private:
    PeopleApi& m_real;
    long m_created = 0;
};

class DryRunCreator final : public CreatorApi {
public:
    explicit DryRunCreator(CreatorApi& real) : m_real(real) {}
    std::vector<Outcome> add_records(const std::vector<nlohmann::json>& records) override;
    std::vector<nlohmann::json> records(const std::string& criteria) override;
    Outcome update_record(const std::string& id, const nlohmann::json& data) override;
    Outcome delete_record(const std::string& id) override;

private:
    CreatorApi& m_real;
    long m_added = 0;
};

} // namespace crmsync::drivers::contacts
