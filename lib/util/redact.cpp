#include "lib/util/redact.hpp"

#include "lib/util/url.hpp"

#include <cctype>
#include <mutex>
#include <vector>

namespace crmsync::util {
namespace {

// Secrets this short are masked only where they stand alone (see register_secret).
constexpr std::size_t k_short_secret = 4;

std::mutex g_mutex;
std::vector<std::string> g_secrets;

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

void replace_all(std::string& text, const std::string& needle) {
    if (needle.empty()) {
        return;
    }
    const bool whole_word_only = needle.size() < k_short_secret;
    for (auto pos = text.find(needle); pos != std::string::npos;) {
        const auto end = pos + needle.size();
        const bool alone = (pos == 0 || !is_word_char(text[pos - 1])) &&
                           (end >= text.size() || !is_word_char(text[end]));
        if (whole_word_only && !alone) {
            pos = text.find(needle, pos + 1);
            continue;
        }
        text.replace(pos, needle.size(), "***");
        pos = text.find(needle, pos + 3);
    }
}

} // namespace

void register_secret(std::string_view secret) {
    if (secret.empty()) {
        return;
    }
    std::lock_guard lock(g_mutex);
    g_secrets.emplace_back(secret);
    const std::string encoded = percent_encode(secret);
    if (encoded != secret) {
        g_secrets.push_back(encoded);
    }
}

std::string redact(std::string_view text) {
    std::string out(text);
    std::lock_guard lock(g_mutex);
    for (const auto& secret : g_secrets) {
        replace_all(out, secret);
    }
    return out;
}

void clear_secrets_for_tests() {
    std::lock_guard lock(g_mutex);
    g_secrets.clear();
}

} // namespace crmsync::util
