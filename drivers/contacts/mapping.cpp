#include "drivers/contacts/mapping.hpp"

#include "lib/core/error.hpp"
#include "lib/sql/schema_catalog.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/hash.hpp"

#include <algorithm>

namespace crmsync::drivers::contacts {
namespace {

using nlohmann::json;

std::string string_at(const json& object, const std::string& key) {
    if (object.is_object()) {
        const auto it = object.find(key);
        if (it != object.end() && it->is_string()) {
            return it->get<std::string>();
        }
    }
    return {};
}

// The primary entry of a Person list (metadata.primary), else its first; null when empty.
const json* primary_entry(const json& person, const std::string& list) {
    if (!person.is_object() || !person.contains(list) || !person[list].is_array() ||
        person[list].empty()) {
        return nullptr;
    }
    for (const auto& entry : person[list]) {
        if (entry.is_object() && entry.contains("metadata") && entry["metadata"].is_object() &&
            entry["metadata"].value("primary", false)) {
            return &entry;
        }
    }
    return &person[list].front();
}

std::pair<std::string, std::string> split_path(const std::string& path) {
    const auto dot = path.find('.');
    if (dot == std::string::npos) {
        return {path, {}};
    }
    return {path.substr(0, dot), path.substr(dot + 1)};
}

Error mapping_error(const std::string& what) {
    return Error(ErrorKind::config, "contacts mapping: " + what,
                 "see schemas/contacts_mapping.json for the expected shape");
}

} // namespace

Mapping Mapping::parse(const std::string& text) {
    const auto doc = json::parse(text, nullptr, false);
    if (!doc.is_object() || !doc.contains("fields") || !doc["fields"].is_array() ||
        doc["fields"].empty()) {
        throw mapping_error("no \"fields\" list");
    }
    Mapping m;
    for (const auto& f : doc["fields"]) {
        MappedField field;
        field.name = string_at(f, "name");
        const auto google = f.is_object() ? f.value("google", json()) : json();
        field.google_list = string_at(google, "list");
        field.google_field = string_at(google, "field");
        field.zoho_path = string_at(f, "zoho");
        if (field.name.empty() || field.google_list.empty() || field.google_field.empty() ||
            field.zoho_path.empty()) {
            throw mapping_error("a field lacks name, google.list, google.field or zoho");
        }
        m.m_fields.push_back(field);
    }
    const auto relink = string_at(doc, "relink_field");
    const auto it = std::find_if(m.m_fields.begin(), m.m_fields.end(),
                                 [&](const MappedField& f) { return f.name == relink; });
    if (it == m.m_fields.end()) {
        throw mapping_error("relink_field \"" + relink + "\" is not a mapped field");
    }
    m.m_relink = static_cast<std::size_t>(it - m.m_fields.begin());
    return m;
}

const Mapping& Mapping::builtin() {
    static const Mapping mapping = [] {
        const auto text = sql::embedded_schema("contacts_mapping.json");
        if (!text) {
            throw Error(ErrorKind::internal, "the contacts mapping is not compiled in");
        }
        return parse(std::string(*text));
    }();
    return mapping;
}

Contact Mapping::from_google(const json& person) const {
    Contact c;
    for (const auto& f : m_fields) {
        const json* entry = primary_entry(person, f.google_list);
        c.values.push_back(entry != nullptr ? string_at(*entry, f.google_field) : std::string());
    }
    return c;
}

Contact Mapping::from_zoho(const json& record) const {
    Contact c;
    for (const auto& f : m_fields) {
        const auto [field, sub] = split_path(f.zoho_path);
        if (sub.empty()) {
            c.values.push_back(string_at(record, field));
        } else {
            c.values.push_back(record.is_object() && record.contains(field)
                                   ? string_at(record[field], sub)
                                   : std::string());
        }
    }
    return c;
}

json Mapping::to_zoho(const Contact& contact) const {
    json out = json::object();
    for (std::size_t i = 0; i < m_fields.size(); ++i) {
        const auto [field, sub] = split_path(m_fields[i].zoho_path);
        const std::string value = i < contact.values.size() ? contact.values[i] : std::string();
        if (sub.empty()) {
            out[field] = value;
        } else {
            out[field][sub] = value;
        }
    }
    return out;
}

json Mapping::to_google(const Contact& contact, json person) const {
    if (!person.is_object()) {
        person = json::object();
    }
    for (std::size_t i = 0; i < m_fields.size(); ++i) {
        const auto& f = m_fields[i];
        const std::string value = i < contact.values.size() ? contact.values[i] : std::string();
        auto& list = person[f.google_list];
        if (!list.is_array()) {
            list = json::array();
        }
        json* entry = nullptr;
        for (auto& e : list) {
            if (e.is_object() && e.contains("metadata") && e["metadata"].is_object() &&
                e["metadata"].value("primary", false)) {
                entry = &e;
                break;
            }
        }
        if (entry == nullptr && !list.empty() && list.front().is_object()) {
            entry = &list.front();
        }
        if (entry == nullptr) {
            if (value.empty()) {
                continue;
            }
            list.push_back(json::object());
            entry = &list.back();
        }
        if (value.empty()) {
            entry->erase(f.google_field);
        } else {
            (*entry)[f.google_field] = value;
        }
    }
    // A list entry left with nothing but metadata says nothing: drop it (Google refuses an
    // e-mail entry without a value).
    for (const auto& f : m_fields) {
        auto& list = person[f.google_list];
        json kept = json::array();
        for (auto& e : list) {
            bool has_value = false;
            if (e.is_object()) {
                for (const auto& [key, v] : e.items()) {
                    if (key != "metadata" && v.is_string() && !v.get<std::string>().empty()) {
                        has_value = true;
                    }
                }
            }
            if (has_value) {
                kept.push_back(std::move(e));
            }
        }
        list = std::move(kept);
    }
    return person;
}

std::string Mapping::google_fields() const {
    std::string out;
    for (const auto& f : m_fields) {
        if (out.find(f.google_list) == std::string::npos) {
            out += (out.empty() ? "" : ",") + f.google_list;
        }
    }
    return out;
}

std::string Mapping::hash(const Contact& contact) {
    return util::md5_hex(json(contact.values).dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string Mapping::relink_key(const Contact& contact) const {
    return m_relink < contact.values.size() ? util::ascii_lower(contact.values[m_relink])
                                            : std::string();
}

} // namespace crmsync::drivers::contacts
