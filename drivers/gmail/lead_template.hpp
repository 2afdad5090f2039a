#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::drivers::gmail {

// How to recognise and read lead mails, as data (the --template file):
//   {"name": "contact-form", "query": "from:forms@example.com subject:\"New lead\"",
//    "fields": {"name": "^Name:\\s*(.+)$", "email": "^E-?mail:\\s*(\\S+)$", ...}}
// `query` is Gmail search syntax (the source adds "after:<epoch>"). Each field is a
// Perl-compatible regex over the mail's text, multiline (^ and $ match at line ends), Unicode
// aware (\s matches a non-breaking space); the first capturing group that matched is the value
// (the whole match when the regex has no group), trimmed. The fields "name", "email", "phone"
// and "message" fill the lead; any other field goes to the lead's details.
class LeadTemplate {
public:
    struct Field; // a compiled regex; defined in the .cpp

    LeadTemplate();
    ~LeadTemplate();
    LeadTemplate(LeadTemplate&&) noexcept;
    LeadTemplate& operator=(LeadTemplate&&) noexcept;

    const std::string& name() const { return m_name; }
    const std::string& query() const { return m_query; }
    std::vector<std::string> field_names() const; // in the file's order

    // Each field's value in `text` (UTF-8); a field that does not match is left out. A regex
    // that exceeds its match budget (catastrophic backtracking on a hostile mail) counts as not
    // matching and is named in `problems` when given. Never throws.
    std::map<std::string, std::string> read(std::string_view text,
                                            std::vector<std::string>* problems = nullptr) const;

    // Throws crmsync::Error(config) naming the field, the regex and why it is wrong, or the
    // missing or ill-typed key. `origin` names the file in messages.
    static LeadTemplate parse(std::string_view json_text, const std::string& origin);

private:
    std::string m_name;
    std::string m_query;
    std::vector<std::unique_ptr<Field>> m_fields;
};

// Reads and checks the template file. Throws crmsync::Error(config) for an unreadable file,
// invalid JSON, a missing name/query/fields, a field that is not a string, or a regex that does
// not compile (with the field, the offset and PCRE2's reason).
LeadTemplate load_lead_template(const std::string& path);

} // namespace crmsync::drivers::gmail
