#include "drivers/gmail/mime.hpp"

#include "drivers/gmail/charset.hpp"
#include "drivers/gmail/html_text.hpp"
#include "lib/util/ascii.hpp"

namespace crmsync::drivers::gmail {
namespace {

using nlohmann::json;

// Deeper MIME trees than this are not walked: no mail client writes them, a hostile mail might.
constexpr int k_max_depth = 32;

std::string trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

std::string string_member(const json& object, const char* key) {
    if (!object.is_object()) {
        return {};
    }
    const auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool is_attachment(const json& part) {
    if (!string_member(part, "filename").empty()) {
        return true;
    }
    const auto disposition = header_value(part, "Content-Disposition");
    return disposition && util::ascii_lower(trimmed(*disposition)).starts_with("attachment");
}

// The first non-attachment leaf of `wanted` type, depth first.
const json* find_part(const json& part, const std::string& wanted, int depth) {
    if (!part.is_object() || depth > k_max_depth) {
        return nullptr;
    }
    const std::string type = util::ascii_lower(string_member(part, "mimeType"));
    const auto children = part.find("parts");
    if (children != part.end() && children->is_array() && !children->empty()) {
        for (const auto& child : *children) {
            if (const json* found = find_part(child, wanted, depth + 1)) {
                return found;
            }
        }
        return nullptr;
    }
    return type == wanted && !is_attachment(part) ? &part : nullptr;
}

std::string normalise_line_ends(std::string text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r') {
            out += '\n';
            if (i + 1 < text.size() && text[i + 1] == '\n') {
                ++i;
            }
        } else {
            out += text[i];
        }
    }
    return out;
}

} // namespace

std::optional<std::string> header_value(const json& part, std::string_view name) {
    if (!part.is_object()) {
        return std::nullopt;
    }
    const auto headers = part.find("headers");
    if (headers == part.end() || !headers->is_array()) {
        return std::nullopt;
    }
    const std::string wanted = util::ascii_lower(name);
    for (const auto& header : *headers) {
        if (util::ascii_lower(string_member(header, "name")) == wanted) {
            return decode_header_words(string_member(header, "value"));
        }
    }
    return std::nullopt;
}

std::string header_parameter(std::string_view value, std::string_view name) {
    const std::string wanted = util::ascii_lower(name);
    std::size_t pos = value.find(';');
    while (pos != std::string_view::npos) {
        const auto next = value.find(';', pos + 1);
        const auto item = value.substr(
            pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
        const auto eq = item.find('=');
        if (eq != std::string_view::npos &&
            util::ascii_lower(trimmed(item.substr(0, eq))) == wanted) {
            std::string v = trimmed(item.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
                v = v.substr(1, v.size() - 2);
            }
            return v;
        }
        pos = next;
    }
    return {};
}

MailText message_text(const json& payload) {
    MailText result;
    const json* part = find_part(payload, "text/plain", 0);
    result.mime_type = "text/plain";
    if (part == nullptr) {
        part = find_part(payload, "text/html", 0);
        result.mime_type = "text/html";
    }
    if (part == nullptr) {
        result.mime_type.clear();
        result.problem = "the mail has no text/plain or text/html part";
        return result;
    }
    result.part_id = string_member(*part, "partId");
    if (const auto type = header_value(*part, "Content-Type")) {
        result.charset = header_parameter(*type, "charset");
    }
    const auto body = part->find("body");
    const std::string data = body != part->end() ? string_member(*body, "data") : std::string();
    if (data.empty()) {
        result.problem = body != part->end() && !string_member(*body, "attachmentId").empty()
                             ? "the text part is stored as an attachment"
                             : "the text part is empty";
        return result;
    }
    const auto bytes = decode_base64url(data);
    if (!bytes) {
        result.problem = "the text part's data is not base64url";
        return result;
    }
    bool unknown_charset = false;
    std::string text = to_utf8(*bytes, result.charset, &unknown_charset);
    if (unknown_charset) {
        result.problem = "unknown charset " + result.charset + ", read as UTF-8";
    }
    text = normalise_line_ends(std::move(text));
    if (result.mime_type == "text/html") {
        text = html_to_text(text);
    }
    result.text = std::move(text);
    return result;
}

} // namespace crmsync::drivers::gmail
