#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/oauth/provider.hpp"
#include "lib/state/accounts.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace crmsync::drivers::google {

// Google's OAuth 2.0 token endpoint (reference apis.md §2.1); --google-token-url replaces it.
inline constexpr const char* k_token_url = "https://oauth2.googleapis.com/token";

// The refresh grant for `account`: POST token_url, form body grant_type=refresh_token,
// client_id, client_secret, refresh_token (secrets in the body, never in the URL).
http::HttpRequest refresh_request(const std::string& token_url, const state::Account& account,
                                  std::chrono::milliseconds timeout);

// What one answer means. 200 with access_token -> granted (expiry counted from `sent_at`, when
// the request left, so it errs early); 400/401 {"error":"invalid_grant"} -> invalid_grant;
// invalid_client and unauthorized_client -> invalid_client; 408/425/429/5xx and a damaged 2xx
// body -> transient (Retry-After of 429/503 in retry_after); anything else -> refused.
state::TokenAnswer read_refresh_answer(const http::HttpResponse& response, SystemTime sent_at);

// Google as an oauth::Provider ("google", "Google", Bearer tokens, no request budget):
// the two functions above, asking `token_url_override` (--google-token-url) or k_token_url.
std::unique_ptr<oauth::Provider> make_oauth_provider(std::string token_url_override);

} // namespace crmsync::drivers::google
