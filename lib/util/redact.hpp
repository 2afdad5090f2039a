#pragma once

#include <string>
#include <string_view>

namespace crmsync::util {

// Process-wide list of secrets (tokens, passwords). Everything that leaves the process as text
// (log lines, error lines, summaries) passes through redact(), which replaces each secret and
// its percent-encoded form with "***". Any secret of 1+ characters counts; one shorter than 4
// characters is masked only where it stands alone (not inside a longer word of letters, digits
// or '_'), so a password "ab" does not blank out every "about" while "user ab" still hides it.
// Thread safe.
void register_secret(std::string_view secret);
std::string redact(std::string_view text);
void clear_secrets_for_tests();

} // namespace crmsync::util
