#pragma once

#include "lib/core/clock.hpp"
#include "lib/http/http_client.hpp"
#include "lib/oauth/provider.hpp"
#include "lib/state/accounts.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace crmsync::drivers::zoho {

// Zoho grants at most this many access tokens per refresh token per window (apis.md §3.1).
inline constexpr int k_tokens_per_window = 10;
inline constexpr std::chrono::minutes k_token_window{10};

// The data centre as stored: com, eu, in, com.au, jp, com.cn, ca, sa, uk. Also accepts the
// short names us, au and cn. nullopt for anything else.
std::optional<std::string> canonical_dc(std::string_view dc);

// The data centre's accounts server: https://accounts.zoho.<dc>, except Canada's
// https://accounts.zohocloud.ca (not zoho.ca). `dc` must be canonical.
std::string accounts_url(const std::string& dc);

// The token endpoint: `override_url` (--zoho-accounts-url, for proxies and tests) if given,
// else the data centre's accounts server, plus /oauth/v2/token unless it already ends so.
std::string token_url(const std::string& dc, const std::string& override_url);

// The refresh grant for `account`: POST token_url with a form body (grant_type=refresh_token,
// client_id, client_secret, refresh_token); Zoho's examples put them in the query string,
// where proxies and server logs would keep the secrets.
http::HttpRequest refresh_request(const std::string& token_url, const state::Account& account,
                                  std::chrono::milliseconds timeout);

// What one answer means. Zoho refuses with HTTP 200 and an "error" member: invalid_code (and
// invalid_grant) -> invalid_grant; invalid_client, invalid_client_secret -> invalid_client;
// "Access Denied" / "too many requests" and HTTP 429 -> throttled; other errors -> refused.
// 200 with access_token -> granted, with its api_domain; 408/5xx and a damaged body ->
// transient.
state::TokenAnswer read_refresh_answer(const http::HttpResponse& response, SystemTime sent_at);

// Zoho as an oauth::Provider ("zoho", "Zoho", "Zoho-oauthtoken" tokens): the functions above,
// asking token_url(account's data centre, `accounts_url_override`), with the budget of
// k_tokens_per_window requests per k_token_window per refresh token.
std::unique_ptr<oauth::Provider> make_oauth_provider(std::string accounts_url_override);

} // namespace crmsync::drivers::zoho
