#include "tests/fakes/oauth/google_token_fake.hpp"

#include <nlohmann/json.hpp>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_token_random_chars = 40;

std::string param_or_empty(const std::map<std::string, std::string>& params, const char* name) {
    const auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
}

TokenAnswer google_error(int status, std::string_view error, std::string_view description) {
    return {status, nlohmann::json{{"error", error}, {"error_description", description}}.dump()};
}

} // namespace

GoogleTokenFake::GoogleTokenFake(GoogleTokenFakeOptions options)
    : OAuthTokenFake(Setup{
          "/token",
          {"/o/oauth2/token", "/oauth2/v4/token"},
          "application/json; charset=utf-8",
          {{"Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"},
           {"Pragma", "no-cache"}},
          options.control_endpoints,
          options.worker_threads,
      }),
      m_options(options) {}

GoogleTokenFake::~GoogleTokenFake() { stop(); }

TokenAnswer GoogleTokenFake::answer(const TokenParams& params, Ledger& ledger) {
    const auto& form = params.form;
    const auto grant_type = param_or_empty(form, "grant_type");
    if (grant_type != "refresh_token") {
        return google_error(400, "unsupported_grant_type", "Invalid grant_type: " + grant_type);
    }
    const auto client_id = param_or_empty(form, "client_id");
    const auto* secret = ledger.client_secret(client_id);
    if (secret == nullptr) {
        return google_error(401, "invalid_client", "The OAuth client was not found.");
    }
    if (param_or_empty(form, "client_secret") != *secret) {
        return google_error(401, "invalid_client", "Unauthorized");
    }
    const auto refresh_token = param_or_empty(form, "refresh_token");
    if (refresh_token.empty()) {
        return google_error(400, "invalid_request", "Missing required parameter: refresh_token");
    }
    const auto* account = ledger.account(refresh_token);
    if (account == nullptr || account->revoked) {
        return google_error(400, "invalid_grant", "Token has been expired or revoked.");
    }
    if (account->client_id != client_id) {
        return google_error(400, "invalid_grant", "Bad Request");
    }
    const auto& token = ledger.issue(*account, "ya29.a0" + ledger.random_hex(k_token_random_chars),
                                     m_options.expires_in);
    nlohmann::ordered_json body{{"access_token", token.access_token},
                                {"expires_in", m_options.expires_in.count()}};
    if (!token.scope.empty()) {
        body["scope"] = token.scope;
    }
    body["token_type"] = "Bearer";
    return {200, body.dump()};
}

} // namespace crmsync::fakes
