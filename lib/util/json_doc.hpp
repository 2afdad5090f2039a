#pragma once

// One way to read a JSON value whether it lives in nlohmann's document or in simdjson's, so
// that code reading API records (json_values.cpp, a driver's transform) is written once and
// takes either. Reading simdjson's document directly spares building nlohmann's std::map
// objects, walking them and freeing them, which was about a third of a first load's CPU.
//
// Both give the same answers for the same text, as nlohmann's parser would build it:
//   - an object's members come in the order nlohmann's std::map keeps them (by name, bytes
//     compared unsigned), a repeated name once, with its last value;
//   - find() of a repeated name gives its last value;
//   - an integer is int64 when negative, uint64 otherwise, as nlohmann keeps it.
// Include only in .cpp files: it brings simdjson.h.

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmsync::util::json_doc {

enum class Kind { object, array, string, boolean, null, int64, uint64, floating, other };

// nlohmann's document. Values are passed as const references.
struct Nlohmann {
    using Value = nlohmann::json;
    using Arg = const nlohmann::json&;

    static Kind kind(Arg v) {
        using T = nlohmann::json::value_t;
        switch (v.type()) {
        case T::object:
            return Kind::object;
        case T::array:
            return Kind::array;
        case T::string:
            return Kind::string;
        case T::boolean:
            return Kind::boolean;
        case T::null:
            return Kind::null;
        case T::number_integer:
            return Kind::int64;
        case T::number_unsigned:
            return Kind::uint64;
        case T::number_float:
            return Kind::floating;
        default:
            return Kind::other;
        }
    }
    static std::string_view string(Arg v) { return v.get_ref<const std::string&>(); }
    static bool boolean(Arg v) { return v.get<bool>(); }
    static std::int64_t int64(Arg v) { return v.get<std::int64_t>(); }
    static std::uint64_t uint64(Arg v) { return v.get<std::uint64_t>(); }
    static double floating(Arg v) { return v.get<double>(); }

    // The member `name` of an object (null for a non-object or a missing member).
    static const Value* find(Arg object, std::string_view name) {
        if (!object.is_object()) {
            return nullptr;
        }
        const auto it = object.find(name);
        return it == object.end() ? nullptr : &*it;
    }
    // visit(std::string_view name, Arg member) for each member, by name.
    template <typename Visit> static void members(Arg object, Visit&& visit) {
        for (const auto& [name, member] : object.get_ref<const nlohmann::json::object_t&>()) {
            visit(std::string_view(name), member);
        }
    }
    static std::size_t object_size(Arg object) { return object.size(); }
    // visit(Arg item) for each item of an array.
    template <typename Visit> static void items(Arg array, Visit&& visit) {
        for (const auto& item : array.get_ref<const nlohmann::json::array_t&>()) {
            visit(item);
        }
    }
    static nlohmann::json to_nlohmann(Arg v) { return v; }
};

// simdjson's document (dom). Values are small handles into it, passed by value; the document
// must outlive them.
struct Simdjson {
    using Value = simdjson::dom::element;
    using Arg = simdjson::dom::element;

    static Kind kind(Arg v) {
        using T = simdjson::dom::element_type;
        switch (v.type()) {
        case T::OBJECT:
            return Kind::object;
        case T::ARRAY:
            return Kind::array;
        case T::STRING:
            return Kind::string;
        case T::BOOL:
            return Kind::boolean;
        case T::NULL_VALUE:
            return Kind::null;
        case T::INT64:
            // nlohmann keeps an integer without a minus sign as unsigned.
            return int64_t(v) >= 0 ? Kind::uint64 : Kind::int64;
        case T::UINT64:
            return Kind::uint64;
        case T::DOUBLE:
            return Kind::floating;
        }
        return Kind::other;
    }
    static std::string_view string(Arg v) { return std::string_view(v); }
    static bool boolean(Arg v) { return bool(v); }
    static std::int64_t int64(Arg v) { return int64_t(v); }
    static std::uint64_t uint64(Arg v) {
        return v.type() == simdjson::dom::element_type::UINT64
                   ? uint64_t(v)
                   : static_cast<std::uint64_t>(int64_t(v));
    }
    static double floating(Arg v) { return double(v); }

    // The member `name` of an object, its last value if repeated (nullopt for a non-object or
    // a missing member).
    static std::optional<Value> find(Arg object, std::string_view name) {
        if (!object.is_object()) {
            return std::nullopt;
        }
        std::optional<Value> found;
        for (const auto field : simdjson::dom::object(object)) {
            if (field.key == name) {
                found = field.value;
            }
        }
        return found;
    }

    // visit(std::string_view name, Arg member) for each member in nlohmann's order: by name,
    // a repeated name once with its last value.
    template <typename Visit> static void members(Arg object, Visit&& visit) {
        const Members sorted(object);
        for (std::size_t i = 0; i < sorted.size(); ++i) {
            const auto [name, member] = sorted[i];
            visit(name, member);
        }
    }
    static std::size_t object_size(Arg object) { return Members(object).size(); }
    template <typename Visit> static void items(Arg array, Visit&& visit) {
        for (const auto item : simdjson::dom::array(array)) {
            visit(item);
        }
    }
    // nlohmann's document of the same value (for the rare paths that work on a copy).
    static nlohmann::json to_nlohmann(Arg v);

    // How Members orders names: by_name as nlohmann's map (bytes compared unsigned);
    // by_length_then_name as jsonb stores them (shorter names first, by_name within a length).
    enum class Order { by_name, by_length_then_name };

    // An object's members in `order`, repeated names once (their last value). They live in a
    // buffer of the thread's, reused, that objects nested in this one extend while it lives;
    // so a Members lives on the stack, one per object being read, and is neither copied nor
    // moved.
    class Members {
    public:
        using Member = std::pair<std::string_view, simdjson::dom::element>;
        explicit Members(Arg object, Order order = Order::by_name);
        ~Members();
        Members(const Members&) = delete;
        Members& operator=(const Members&) = delete;
        std::size_t size() const { return m_size; }
        // A copy: the buffer may move while a nested object is read.
        Member operator[](std::size_t i) const;

    private:
        std::size_t m_base = 0;
        std::size_t m_size = 0;
    };
};

// Builds in `out` the document nlohmann's parser builds from the same text, but for one case
// simdjson's document cannot tell: -0 is nlohmann's signed integer 0, simdjson's plain 0, so
// `saw_zero` says whether an integer 0 was met. False for a value simdjson cannot hold.
bool to_nlohmann(simdjson::dom::element element, nlohmann::json& out, bool& saw_zero);

} // namespace crmsync::util::json_doc
