#include "lib/util/redact.hpp"

#include "lib/util/url.hpp"

#include <mutex>
#include <vector>

namespace crmsync::util {
namespace {

std::mutex g_mutex;
std::vector<std::string> g_secrets;

void replace_all(std::string& text, const std::string& needle) {
    if (needle.empty()) {
        return;
    }
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 3)) {
        text.replace(pos, needle.size(), "***");
    }
}

} // namespace

void register_secret(std::string_view secret) {
    // Very short secrets would blank out ordinary words; they are weak anyway.
    if (secret.size() < 4) {
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
