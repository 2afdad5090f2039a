#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace crmsync::drivers::contacts {

// One mapped field: the primary entry's `google_field` in the Person's `google_list`, and the
// Zoho Creator field `zoho_path` ("Email", or "Name.first_name" for a subfield).
struct MappedField {
    std::string name;
    std::string google_list;
    std::string google_field;
    std::string zoho_path;
};

// A contact as both sides see it: one value per mapped field, in mapping order ("" when
// absent). Two sides are in step when their contacts are equal.
struct Contact {
    std::vector<std::string> values;
    bool operator==(const Contact&) const = default;
};

// How Google contacts and Zoho records map onto each other (schemas/contacts_mapping.json:
// data, not code). No I/O after construction; never throws on odd API data (a value that is
// not a string reads as "").
class Mapping {
public:
    // Parses a mapping document; throws Error(config) naming what is wrong.
    static Mapping parse(const std::string& text);
    // The mapping compiled into the binary.
    static const Mapping& builtin();

    Contact from_google(const nlohmann::json& person) const;
    Contact from_zoho(const nlohmann::json& record) const;
    // The record's mapped fields as Creator's add/update body wants them (composite fields as
    // objects).
    nlohmann::json to_zoho(const Contact& contact) const;
    // `person` with the primary entry of each mapped list set to the contact's values (an
    // entry is added when missing; an empty value removes it), other entries kept.
    nlohmann::json to_google(const Contact& contact,
                             nlohmann::json person = nlohmann::json()) const;
    // "names,emailAddresses,phoneNumbers": the lists to read and to replace on update.
    std::string google_fields() const;

    // Stable hash of the contact's values (echo suppression, conflicts).
    static std::string hash(const Contact& contact);
    // The value of the relink field, lower-cased ("" when none).
    std::string relink_key(const Contact& contact) const;
    const std::vector<MappedField>& fields() const { return m_fields; }

private:
    std::vector<MappedField> m_fields;
    std::size_t m_relink = 0;
};

} // namespace crmsync::drivers::contacts
