#pragma once

// Contacts kept in simdjson's document as E3 answered them: db_sync's transform reads them
// there (transform_contact's simdjson overload), which spares building nlohmann's document of
// every contact, walking it and freeing it. Brings simdjson.h: include only in .cpp files.

#include "lib/pipeline/source.hpp"

#include <simdjson.h>

#include <memory>
#include <vector>

namespace crmsync::drivers::dialfire {

struct SimdjsonContacts final : pipeline::NativeRecords {
    std::shared_ptr<const simdjson::dom::document> document; // the elements point into it
    std::vector<simdjson::dom::element> contacts;
    std::size_t size() const override { return contacts.size(); }
};

} // namespace crmsync::drivers::dialfire
