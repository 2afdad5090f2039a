#include "lib/rest/paging.hpp"

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

namespace crmsync::rest {
namespace {

Error paging_error(const std::string& detail) {
    return Error(ErrorKind::data, detail,
                 "the API's paging is not what this source expects; run with --l 5 and report "
                 "the log");
}

// The value at `pointer`, or nullptr when it is absent (or the pointer is malformed).
const nlohmann::json* find(const nlohmann::json& doc, const std::string& pointer) {
    try {
        const nlohmann::json::json_pointer p(pointer);
        return doc.contains(p) ? &doc.at(p) : nullptr;
    } catch (const nlohmann::json::exception&) {
        return nullptr;
    }
}

// false when `pointer` names a false value (or "false"); nullopt when absent or unset.
std::optional<bool> has_more(const PageReply& reply, const std::string& pointer) {
    if (pointer.empty()) {
        return std::nullopt;
    }
    const nlohmann::json* value = find(reply.body, pointer);
    if (value == nullptr || value->is_null()) {
        return std::nullopt;
    }
    if (value->is_boolean()) {
        return value->get<bool>();
    }
    if (value->is_string()) {
        return value->get<std::string>() != "false";
    }
    if (value->is_number()) {
        return value->get<double>() != 0;
    }
    return std::nullopt;
}

// The answer's own end-of-data flag, else the short-page rule.
bool more_after(const PageReply& reply, const std::string& has_more_pointer,
                const PageSize& limit) {
    if (const auto flag = has_more(reply, has_more_pointer)) {
        return *flag && !reply.records.empty();
    }
    if (limit.size > 0) {
        return reply.records.size() >= static_cast<std::size_t>(limit.size);
    }
    return !reply.records.empty();
}

void add_limit(PageRequest& request, const PageSize& limit) {
    if (!limit.param.empty() && limit.size > 0) {
        request.set_param(limit.param, std::to_string(limit.size));
    }
}

// A fingerprint of a page's records, to notice an API that ignores the page parameter.
std::string fingerprint(const std::vector<nlohmann::json>& records) {
    if (records.empty()) {
        return {};
    }
    return util::md5_hex(records.front().dump() + "\n" + records.back().dump() + "\n" +
                         std::to_string(records.size()));
}

class SinglePage final : public Paging {
public:
    void start() override {}
    void prepare(PageRequest& /*request*/) override {}
    bool advance(const PageReply& /*reply*/) override { return false; }
};

class PageNumberPaging final : public Paging {
public:
    explicit PageNumberPaging(PageNumberOptions options) : m_options(std::move(options)) {}
    void start() override {
        m_page = m_options.first_page;
        m_previous.clear();
    }
    void prepare(PageRequest& request) override {
        request.set_param(m_options.page_param, std::to_string(m_page));
        add_limit(request, m_options.limit);
    }
    bool advance(const PageReply& reply) override {
        const std::string print = fingerprint(reply.records);
        if (!print.empty() && print == m_previous) {
            throw paging_error(fmt::format("page {} repeats page {}: the API ignores `{}`", m_page,
                                           m_page - 1, m_options.page_param));
        }
        m_previous = print;
        ++m_page;
        return more_after(reply, m_options.has_more_pointer, m_options.limit);
    }

private:
    PageNumberOptions m_options;
    long m_page = 1;
    std::string m_previous;
};

class OffsetPaging final : public Paging {
public:
    explicit OffsetPaging(OffsetOptions options) : m_options(std::move(options)) {}
    void start() override {
        m_offset = 0;
        m_previous.clear();
    }
    void prepare(PageRequest& request) override {
        request.set_param(m_options.offset_param, std::to_string(m_offset));
        add_limit(request, m_options.limit);
    }
    bool advance(const PageReply& reply) override {
        const std::string print = fingerprint(reply.records);
        if (!print.empty() && print == m_previous) {
            throw paging_error(fmt::format("the page at offset {} repeats the one before: the "
                                           "API ignores `{}`",
                                           m_offset, m_options.offset_param));
        }
        m_previous = print;
        m_offset += static_cast<long>(reply.records.size());
        return more_after(reply, m_options.has_more_pointer, m_options.limit);
    }

private:
    OffsetOptions m_options;
    long m_offset = 0;
    std::string m_previous;
};

class CursorPaging final : public Paging {
public:
    explicit CursorPaging(CursorOptions options) : m_options(std::move(options)) {}
    void start() override {
        m_token.reset();
        m_seen.clear();
    }
    void prepare(PageRequest& request) override {
        add_limit(request, m_options.limit);
        if (!m_token) {
            return;
        }
        if (!m_options.send_header.empty()) {
            request.set_header(m_options.send_header, *m_token);
        } else {
            request.set_param(m_options.send_param, *m_token);
        }
    }
    bool advance(const PageReply& reply) override {
        std::optional<std::string> token;
        if (!m_options.token_header.empty()) {
            if (const std::string* value = reply.response.header(m_options.token_header)) {
                token = *value;
            }
        } else if (!m_options.token_pointer.empty()) {
            const nlohmann::json* value = find(reply.body, m_options.token_pointer);
            if (value != nullptr && !value->is_null()) {
                token = param_text(*value);
            }
        }
        if (!token || token->empty()) {
            return false;
        }
        if (!m_seen.insert(*token).second) {
            log::warn("the API answered a page token it gave before; ending the stream there");
            return false;
        }
        m_token = std::move(token);
        return true;
    }

private:
    CursorOptions m_options;
    std::optional<std::string> m_token;
    std::unordered_set<std::string> m_seen;
};

// "https://Host:8080" of an absolute URL, lower-cased; empty when it is not one.
std::string origin_of(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        return {};
    }
    const auto path = url.find_first_of("/?#", scheme_end + 3);
    return util::ascii_lower(url.substr(0, path));
}

class NextUrlPaging final : public Paging {
public:
    explicit NextUrlPaging(NextUrlOptions options) : m_options(std::move(options)) {}
    void start() override {
        m_next.reset();
        m_origin.clear();
        m_seen.clear();
    }
    void prepare(PageRequest& request) override {
        if (m_next) {
            request.full_url = *m_next;
            return;
        }
        add_limit(request, m_options.limit);
        m_origin = origin_of(request.url);
    }
    bool advance(const PageReply& reply) override {
        std::optional<std::string> next;
        if (!m_options.url_pointer.empty()) {
            const nlohmann::json* value = find(reply.body, m_options.url_pointer);
            if (value != nullptr && value->is_string()) {
                next = value->get<std::string>();
            }
        } else if (const std::string* link = reply.response.header("link")) {
            next = link_next(*link);
        }
        if (!next || next->empty()) {
            return false;
        }
        if (next->front() == '/') {
            *next = m_origin + *next;
        }
        if (origin_of(*next) != m_origin) {
            // Never the URL itself in the message: next URLs often carry the access token.
            throw paging_error("the API's next-page link leads to another server than " + m_origin +
                               "; not following it with the credentials");
        }
        if (!m_seen.insert(*next).second) {
            log::warn("the API answered a next-page link it gave before; ending the stream");
            return false;
        }
        m_next = std::move(next);
        return true;
    }

private:
    NextUrlOptions m_options;
    std::optional<std::string> m_next;
    std::string m_origin;
    std::unordered_set<std::string> m_seen;
};

class KeysetPaging final : public Paging {
public:
    explicit KeysetPaging(KeysetOptions options) : m_options(std::move(options)) {}
    void start() override { m_after.reset(); }
    void prepare(PageRequest& request) override {
        add_limit(request, m_options.limit);
        if (!m_after) {
            return;
        }
        for (std::size_t i = 0; i < m_options.keys.size(); ++i) {
            request.set_param(m_options.keys[i].param, (*m_after)[i]);
        }
    }
    bool advance(const PageReply& reply) override {
        if (reply.records.empty()) {
            return false;
        }
        const auto flag = has_more(reply, m_options.has_more_pointer);
        const nlohmann::json& last = reply.records.back();
        std::vector<std::string> after;
        for (const auto& key : m_options.keys) {
            const nlohmann::json* value = last.is_object() ? find(last, key.pointer) : nullptr;
            if (value == nullptr || value->is_null() || value->is_structured()) {
                throw paging_error(fmt::format(
                    "the last record of a page has no usable {} to ask for the next page with",
                    key.pointer));
            }
            after.push_back(param_text(*value));
        }
        if (m_after && after == *m_after) {
            throw paging_error("a page ended on the record the one before ended on: the API "
                               "ignores the keyset parameters, paging would never end");
        }
        m_after = std::move(after);
        return flag.value_or(true);
    }

private:
    KeysetOptions m_options;
    std::optional<std::vector<std::string>> m_after;
};

} // namespace

void PageRequest::set_param(const std::string& name, std::string value) {
    query.erase(std::remove_if(query.begin(), query.end(),
                               [&](const auto& entry) { return entry.first == name; }),
                query.end());
    query.emplace_back(name, std::move(value));
}

void PageRequest::set_header(const std::string& name, std::string value) {
    const auto same = [&](const auto& entry) { return util::ascii_iequals(entry.first, name); };
    headers.erase(std::remove_if(headers.begin(), headers.end(), same), headers.end());
    headers.emplace_back(name, std::move(value));
}

std::string PageRequest::final_url() const {
    if (full_url) {
        return *full_url;
    }
    std::string out = url;
    char separator = out.find('?') == std::string::npos ? '?' : '&';
    for (const auto& [name, value] : query) {
        out += separator;
        out += util::percent_encode(name);
        out += '=';
        out += util::percent_encode(value);
        separator = '&';
    }
    return out;
}

std::string param_text(const nlohmann::json& value) {
    if (value.is_string()) {
        return value.get<std::string>();
    }
    return value.dump();
}

std::optional<std::string> link_next(const std::string& link_header) {
    // Entries are "<url>; rel=\"next\"; ...", separated by commas (which URLs carry encoded).
    std::size_t pos = 0;
    while (pos < link_header.size()) {
        const auto open = link_header.find('<', pos);
        if (open == std::string::npos) {
            break;
        }
        const auto close = link_header.find('>', open);
        if (close == std::string::npos) {
            break;
        }
        const auto end = std::min(link_header.find('<', close), link_header.size());
        const std::string params =
            util::ascii_lower(std::string_view(link_header).substr(close + 1, end - close - 1));
        const auto rel = params.find("rel=");
        if (rel != std::string::npos) {
            std::string value = params.substr(rel + 4, params.find_first_of(";,", rel) - rel - 4);
            value.erase(std::remove(value.begin(), value.end(), '"'), value.end());
            // rel may list several relation types: rel="next last".
            std::size_t start = 0;
            while (start <= value.size()) {
                const auto space = std::min(value.find(' ', start), value.size());
                if (value.compare(start, space - start, "next") == 0) {
                    return link_header.substr(open + 1, close - open - 1);
                }
                start = space + 1;
            }
        }
        pos = end;
    }
    return std::nullopt;
}

std::unique_ptr<Paging> single_page() { return std::make_unique<SinglePage>(); }

std::unique_ptr<Paging> page_number(PageNumberOptions options) {
    return std::make_unique<PageNumberPaging>(std::move(options));
}

std::unique_ptr<Paging> offset_limit(OffsetOptions options) {
    return std::make_unique<OffsetPaging>(std::move(options));
}

std::unique_ptr<Paging> cursor_token(CursorOptions options) {
    if ((options.token_pointer.empty() == options.token_header.empty()) ||
        (options.send_param.empty() == options.send_header.empty())) {
        throw Error(ErrorKind::internal,
                    "cursor paging needs one place to read the token and one to send it");
    }
    return std::make_unique<CursorPaging>(std::move(options));
}

std::unique_ptr<Paging> next_url(NextUrlOptions options) {
    return std::make_unique<NextUrlPaging>(std::move(options));
}

std::unique_ptr<Paging> keyset(KeysetOptions options) {
    if (options.keys.empty()) {
        throw Error(ErrorKind::internal, "keyset paging needs at least one key");
    }
    return std::make_unique<KeysetPaging>(std::move(options));
}

} // namespace crmsync::rest
