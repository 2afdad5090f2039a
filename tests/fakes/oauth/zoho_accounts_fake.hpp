#pragma once

// Zoho Accounts' OAuth token endpoint for the refresh grant (reference apis.md §3.1):
//   POST /oauth/v2/token?refresh_token=&client_id=&client_secret=&grant_type=refresh_token
// The parameters may be in the query string (Zoho's own examples) or in a form body; the query
// wins when both carry a name. One fake is one data centre's accounts server. Zoho reports
// refusals with HTTP 200 and an "error" member. Answers (Content-Type
// application/json;charset=UTF-8), first match wins:
//   grant_type not refresh_token       200 {"error":"unsupported_grant_type"}           [U]
//   client_id unknown or missing       200 {"error":"invalid_client"}   (also what a client
//                                           registered in another data centre gets)
//   client_secret wrong or missing     200 {"error":"invalid_client_secret"}            [S]
//   refresh_token unknown, revoked, missing or of another client
//                                      200 {"error":"invalid_code"}
//   token_limit tokens already issued for this refresh token in the last token_window
//                                      400 {"error_description":"You have made too many requests
//                                           continuously. Please try again after some time.",
//                                           "error":"Access Denied","status":"failure"}  [S]
//   otherwise 200 {"access_token":"1000.<hex>.<hex>","scope":…,"api_domain":…,
//                  "token_type":"Bearer","expires_in":3600}
// The window slides: a refused request issues nothing and does not extend it, so the refresh
// token works again once its oldest counted token is token_window old (by the fake's clock).
// [S]/[U] = secondary or unverified sources, see the apis.md legend.

#include "tests/fakes/oauth/oauth_token_fake.hpp"

namespace crmsync::fakes {

/// "https://www.zohoapis.eu" for "eu" etc. (apis.md §3.1 table; "uk" is unverified); nullopt
/// for an unknown data centre.
std::optional<std::string> zoho_api_domain(std::string_view data_centre);

struct ZohoAccountsFakeOptions {
    /// us, eu, in, au, jp, cn, ca, sa or uk; decides the default api_domain.
    std::string data_centre = "us";
    /// The "api_domain" answered; "" = the data centre's. Tests point it at a local API fake.
    std::string api_domain;
    std::size_t token_limit = 10;
    std::chrono::seconds token_window{600};
    int throttle_status = 400;
    std::chrono::seconds expires_in{3600};
    /// Registers the unauthenticated /_fake/... control endpoints (the executable turns them
    /// on; see oauth_token_fake.hpp).
    bool control_endpoints = false;
    std::size_t worker_threads = 4;
};

class ZohoAccountsFake final : public OAuthTokenFake {
public:
    /// Throws std::invalid_argument for an unknown data centre without an api_domain.
    explicit ZohoAccountsFake(ZohoAccountsFakeOptions options = {});
    ~ZohoAccountsFake() override;
    ZohoAccountsFake(const ZohoAccountsFake&) = delete;
    ZohoAccountsFake& operator=(const ZohoAccountsFake&) = delete;

    /// The "api_domain" this fake answers.
    [[nodiscard]] const std::string& api_domain() const { return m_api_domain; }

protected:
    TokenAnswer answer(const TokenParams& params, Ledger& ledger) override;

private:
    ZohoAccountsFakeOptions m_options;
    std::string m_api_domain;
};

} // namespace crmsync::fakes
