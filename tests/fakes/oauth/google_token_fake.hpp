#pragma once

// Google's OAuth 2.0 token endpoint for the refresh grant (reference apis.md §2.1):
//   POST /token   Content-Type: application/x-www-form-urlencoded
//   grant_type=refresh_token&client_id=&client_secret=&refresh_token=
// Also served at the legacy paths /o/oauth2/token and /oauth2/v4/token. Parameters are read
// from the form body only. Answers (Content-Type application/json; charset=utf-8,
// Cache-Control no-store), first match wins:
//   grant_type not refresh_token       400 {"error":"unsupported_grant_type", ...}    [U]
//   client_id unknown or missing       401 {"error":"invalid_client",
//                                           "error_description":"The OAuth client was not found."}
//   client_secret wrong or missing     401 {"error":"invalid_client",
//                                           "error_description":"Unauthorized"}           [U]
//   refresh_token missing              400 {"error":"invalid_request", ...}             [U]
//   refresh_token unknown or revoked   400 {"error":"invalid_grant",
//                                           "error_description":"Token has been expired or
//                                           revoked."}
//   refresh_token of another client    400 {"error":"invalid_grant",
//                                           "error_description":"Bad Request"}
//   otherwise 200 {"access_token":"ya29.…","expires_in":3599,"scope":…,"token_type":"Bearer"}
// No refresh_token in the answer: the client keeps its old one. "scope" is left out for an
// account without one. [U] = not verified against Google, see apis.md legend.

#include "tests/fakes/oauth/oauth_token_fake.hpp"

namespace crmsync::fakes {

struct GoogleTokenFakeOptions {
    std::chrono::seconds expires_in{3599};
    /// Registers the unauthenticated /_fake/... control endpoints (the executable turns them
    /// on; see oauth_token_fake.hpp).
    bool control_endpoints = false;
    std::size_t worker_threads = 4;
};

class GoogleTokenFake final : public OAuthTokenFake {
public:
    explicit GoogleTokenFake(GoogleTokenFakeOptions options = {});
    ~GoogleTokenFake() override;
    GoogleTokenFake(const GoogleTokenFake&) = delete;
    GoogleTokenFake& operator=(const GoogleTokenFake&) = delete;

protected:
    TokenAnswer answer(const TokenParams& params, Ledger& ledger) override;

private:
    GoogleTokenFakeOptions m_options;
};

} // namespace crmsync::fakes
