#include "lib/util/json_doc.hpp"

namespace crmsync::util::json_doc {
namespace {

using Member = Simdjson::Members::Member;

// The members of every object being read on this thread, innermost last.
thread_local std::vector<Member> t_members;

// Insertion sort below this many members (no allocation, few moves), std::stable_sort above.
constexpr std::size_t k_insertion_sort_limit = 32;

template <typename Less> void stable_sort_range(std::size_t base, std::size_t size, Less less) {
    const auto first = t_members.begin() + static_cast<std::ptrdiff_t>(base);
    const auto last = first + static_cast<std::ptrdiff_t>(size);
    if (size > k_insertion_sort_limit) {
        std::stable_sort(first, last, less);
        return;
    }
    for (auto i = first + 1; i < last; ++i) {
        Member moving = *i;
        auto j = i;
        for (; j != first && less(moving, *(j - 1)); --j) {
            *j = *(j - 1);
        }
        *j = moving;
    }
}

} // namespace

Simdjson::Members::Members(Arg object, Order order) : m_base(t_members.size()) {
    for (const auto field : simdjson::dom::object(object)) {
        t_members.emplace_back(field.key, field.value);
    }
    const std::size_t count = t_members.size() - m_base;
    // Stable, so a repeated name keeps its document order and its last value comes last. One
    // sort for either order: most neighbours differ in length, which spares comparing bytes.
    if (order == Order::by_name) {
        stable_sort_range(m_base, count,
                          [](const Member& a, const Member& b) { return a.first < b.first; });
    } else {
        stable_sort_range(m_base, count, [](const Member& a, const Member& b) {
            return a.first.size() != b.first.size() ? a.first.size() < b.first.size()
                                                    : a.first < b.first;
        });
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const bool repeated_later =
            i + 1 < count && t_members[m_base + i + 1].first == t_members[m_base + i].first;
        if (!repeated_later) {
            t_members[m_base + kept++] = t_members[m_base + i];
        }
    }
    t_members.resize(m_base + kept);
    m_size = kept;
}

Simdjson::Members::~Members() { t_members.resize(m_base); }

Simdjson::Members::Member Simdjson::Members::operator[](std::size_t i) const {
    return t_members[m_base + i];
}

nlohmann::json Simdjson::to_nlohmann(Arg v) {
    nlohmann::json out;
    bool saw_zero = false;
    json_doc::to_nlohmann(v, out, saw_zero);
    return out;
}

bool to_nlohmann(simdjson::dom::element element, nlohmann::json& out, bool& saw_zero) {
    using simdjson::dom::element_type;
    switch (element.type()) {
    case element_type::OBJECT: {
        out = nlohmann::json::object();
        auto& object = out.get_ref<nlohmann::json::object_t&>();
        for (const auto field : simdjson::dom::object(element)) {
            // operator[]: a repeated key keeps its last value, as nlohmann's parser does.
            if (!to_nlohmann(field.value, object[std::string(field.key)], saw_zero)) {
                return false;
            }
        }
        return true;
    }
    case element_type::ARRAY: {
        out = nlohmann::json::array();
        auto& array = out.get_ref<nlohmann::json::array_t&>();
        const simdjson::dom::array items(element);
        array.reserve(items.size());
        for (const auto item : items) {
            array.emplace_back();
            if (!to_nlohmann(item, array.back(), saw_zero)) {
                return false;
            }
        }
        return true;
    }
    case element_type::STRING:
        out = std::string(std::string_view(element));
        return true;
    case element_type::INT64: {
        const auto number = int64_t(element);
        saw_zero = saw_zero || number == 0;
        // nlohmann keeps an integer without a minus sign as unsigned.
        out = number >= 0 ? nlohmann::json(static_cast<std::uint64_t>(number))
                          : nlohmann::json(number);
        return true;
    }
    case element_type::UINT64:
        out = uint64_t(element);
        return true;
    case element_type::DOUBLE:
        out = double(element);
        return true;
    case element_type::BOOL:
        out = bool(element);
        return true;
    case element_type::NULL_VALUE:
        out = nullptr;
        return true;
    }
    return false;
}

} // namespace crmsync::util::json_doc
