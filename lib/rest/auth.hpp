#pragma once

#include "lib/http/http_client.hpp"

#include <functional>
#include <memory>
#include <string>

namespace crmsync::rest {

// How a request proves who sends it. Protocol: apply() on every request before it is sent (its
// retries resend the same credentials). After the server refused them (401/403) the caller may
// call renew() once: true means apply() now adds different credentials worth one more try,
// false means the refusal stands. Every secret is given to util::register_secret as soon as it
// is known, so it never reaches a log, an error or a summary.
class Auth {
public:
    virtual ~Auth() = default;
    virtual void apply(http::HttpRequest& request) = 0;
    // Safe default: fixed credentials do not get better by asking again.
    virtual bool renew() { return false; }
    // What to check when the server refuses the credentials (the Error's hint).
    virtual std::string hint() const = 0;
};

// "Authorization: Basic base64(user:password)".
std::unique_ptr<Auth> basic_auth(std::string user, std::string password);

// "<header>: <key>", e.g. "x-apikey", "X-API-TOKEN", "x-api-token".
std::unique_ptr<Auth> api_key_header(std::string header, std::string key);

// "Authorization: Bearer <token>" with a fixed token.
std::unique_ptr<Auth> bearer_token(std::string token);

// "Authorization: <scheme> <token>" with the token asked from `access_token` before every
// request, so a provider that caches can refresh it near expiry during a long run. After a
// refusal renew() calls `forget` (when given: the provider drops the refused token), asks
// once more, and is true only if a different token came back. Zoho wants the scheme
// "Zoho-oauthtoken". `access_token` may throw crmsync::Error; an empty token is Error(auth).
std::unique_ptr<Auth> token_callback(std::function<std::string()> access_token,
                                     std::function<void()> forget = {},
                                     std::string scheme = "Bearer");

} // namespace crmsync::rest
