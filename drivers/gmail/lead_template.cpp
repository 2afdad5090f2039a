#include "drivers/gmail/lead_template.hpp"

#include "lib/core/error.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace crmsync::drivers::gmail {
namespace {

using nlohmann::json;

// Backtracking budget of one regex over one mail: plenty for a template's simple patterns,
// small enough that a pathological pattern meets a hostile mail in milliseconds.
constexpr std::uint32_t k_match_limit = 1'000'000;
constexpr std::uint32_t k_depth_limit = 10'000;
constexpr std::size_t k_max_mail_bytes = 1'000'000; // text beyond this is not searched

struct CodeDeleter {
    void operator()(pcre2_code* code) const noexcept { pcre2_code_free(code); }
};
struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const noexcept { pcre2_match_data_free(data); }
};
struct MatchContextDeleter {
    void operator()(pcre2_match_context* context) const noexcept {
        pcre2_match_context_free(context);
    }
};

std::string pcre2_message(int code) {
    PCRE2_UCHAR buffer[256];
    const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
    return n < 0 ? fmt::format("PCRE2 error {}", code)
                 : std::string(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

std::string trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

const char* k_template_hint =
    "the template is JSON: {\"name\": ..., \"query\": ..., \"fields\": {\"email\": \"^E-?mail:"
    "\\\\s*(\\\\S+)$\", ...}} with Perl-compatible regexes (backslashes doubled in JSON)";

} // namespace

struct LeadTemplate::Field {
    std::string name;
    std::string pattern;
    std::unique_ptr<pcre2_code, CodeDeleter> code;
};

LeadTemplate::LeadTemplate() = default;
LeadTemplate::~LeadTemplate() = default;
LeadTemplate::LeadTemplate(LeadTemplate&&) noexcept = default;
LeadTemplate& LeadTemplate::operator=(LeadTemplate&&) noexcept = default;

std::vector<std::string> LeadTemplate::field_names() const {
    std::vector<std::string> names;
    for (const auto& f : m_fields) {
        names.push_back(f->name);
    }
    return names;
}

std::map<std::string, std::string> LeadTemplate::read(std::string_view text,
                                                      std::vector<std::string>* problems) const {
    std::map<std::string, std::string> values;
    if (text.size() > k_max_mail_bytes) {
        text = text.substr(0, k_max_mail_bytes);
        if (problems != nullptr) {
            problems->push_back(fmt::format("only the first {} bytes were read", k_max_mail_bytes));
        }
    }
    std::unique_ptr<pcre2_match_context, MatchContextDeleter> context(
        pcre2_match_context_create(nullptr));
    if (context) {
        pcre2_set_match_limit(context.get(), k_match_limit);
        pcre2_set_depth_limit(context.get(), k_depth_limit);
    }
    for (const auto& field : m_fields) {
        std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
            pcre2_match_data_create_from_pattern(field->code.get(), nullptr));
        if (!data) {
            continue;
        }
        const int rc = pcre2_match(field->code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()),
                                   text.size(), 0, 0, data.get(), context.get());
        if (rc < 0) {
            if (rc != PCRE2_ERROR_NOMATCH && problems != nullptr) {
                problems->push_back(fmt::format("the regex of field '{}' gave up: {}", field->name,
                                                pcre2_message(rc)));
            }
            continue;
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
        // The first group that took part in the match; the whole match when there is none.
        int chosen = 0;
        for (int group = 1; group < rc; ++group) {
            if (ovector[2 * group] != PCRE2_UNSET) {
                chosen = group;
                break;
            }
        }
        const auto start = ovector[2 * chosen];
        const auto end = ovector[2 * chosen + 1];
        if (start == PCRE2_UNSET || end < start) {
            continue;
        }
        std::string value = trimmed(text.substr(start, end - start));
        if (!value.empty()) {
            values.emplace(field->name, std::move(value));
        }
    }
    return values;
}

LeadTemplate LeadTemplate::parse(std::string_view json_text, const std::string& origin) {
    const auto doc = json::parse(json_text.begin(), json_text.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        throw Error(ErrorKind::config, "the lead template " + origin + " is not a JSON object",
                    k_template_hint);
    }
    LeadTemplate t;
    const auto text_member = [&](const char* key) {
        const auto it = doc.find(key);
        if (it == doc.end() || !it->is_string() || trimmed(it->get<std::string>()).empty()) {
            throw Error(
                ErrorKind::config,
                fmt::format("the lead template {} needs \"{}\" as a non-empty string", origin, key),
                k_template_hint);
        }
        return it->get<std::string>();
    };
    t.m_name = text_member("name");
    t.m_query = text_member("query");
    const auto fields = doc.find("fields");
    if (fields == doc.end() || !fields->is_object() || fields->empty()) {
        throw Error(ErrorKind::config,
                    "the lead template " + origin + " needs \"fields\": an object of regexes",
                    k_template_hint);
    }
    // nlohmann's object keeps keys sorted; the order only matters for field_names().
    for (const auto& [name, pattern] : fields->items()) {
        if (!pattern.is_string() || pattern.get<std::string>().empty()) {
            throw Error(ErrorKind::config,
                        fmt::format("field '{}' of the lead template {} must be a regex string",
                                    name, origin),
                        k_template_hint);
        }
        auto field = std::make_unique<Field>();
        field->name = name;
        field->pattern = pattern.get<std::string>();
        int error = 0;
        PCRE2_SIZE offset = 0;
        field->code.reset(pcre2_compile(
            reinterpret_cast<PCRE2_SPTR>(field->pattern.data()), field->pattern.size(),
            PCRE2_MULTILINE | PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr));
        if (!field->code) {
            throw Error(ErrorKind::config,
                        fmt::format("the regex of field '{}' in the lead template {} does not "
                                    "compile at offset {}: {} (regex: {})",
                                    name, origin, offset, pcre2_message(error), field->pattern),
                        k_template_hint);
        }
        t.m_fields.push_back(std::move(field));
    }
    if (std::none_of(t.m_fields.begin(), t.m_fields.end(),
                     [](const auto& f) { return f->name == "email" || f->name == "phone"; })) {
        throw Error(ErrorKind::config,
                    "the lead template " + origin +
                        " reads neither \"email\" nor \"phone\": no lead could be matched",
                    k_template_hint);
    }
    return t;
}

LeadTemplate load_lead_template(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw Error(ErrorKind::config, "cannot read the lead template " + path,
                    "check the path given to --template");
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        throw Error(ErrorKind::config, "cannot read the lead template " + path,
                    "check the path given to --template");
    }
    return LeadTemplate::parse(text.str(), path);
}

} // namespace crmsync::drivers::gmail
