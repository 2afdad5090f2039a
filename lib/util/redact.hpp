#pragma once

#include <string>
#include <string_view>

namespace crmsync::util {

// Process-wide list of secrets (tokens, passwords). Everything that leaves the process as text
// (log lines, error lines, summaries) passes through redact(), which replaces each secret and
// its percent-encoded form with "***". Thread safe.
void register_secret(std::string_view secret);
std::string redact(std::string_view text);
void clear_secrets_for_tests();

} // namespace crmsync::util
