#include "tests/fakes/oauth/zoho_accounts_fake.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <stdexcept>
#include <utility>

namespace crmsync::fakes {
namespace {

constexpr std::size_t k_token_part_chars = 32;

// Data centre -> API domain (apis.md §3.1). The accounts hosts do not matter to a fake.
constexpr std::array<std::pair<std::string_view, std::string_view>, 9> k_api_domains{{
    {"us", "https://www.zohoapis.com"},
    {"eu", "https://www.zohoapis.eu"},
    {"in", "https://www.zohoapis.in"},
    {"au", "https://www.zohoapis.com.au"},
    {"jp", "https://www.zohoapis.jp"},
    {"cn", "https://www.zohoapis.com.cn"},
    {"ca", "https://www.zohoapis.ca"},
    {"sa", "https://www.zohoapis.sa"},
    {"uk", "https://www.zohoapis.uk"},
}};

// Query first: Zoho documents the query form; a form body is what many clients send.
std::string param(const TokenParams& params, const char* name) {
    if (const auto it = params.query.find(name); it != params.query.end()) {
        return it->second;
    }
    if (const auto it = params.form.find(name); it != params.form.end()) {
        return it->second;
    }
    return {};
}

TokenAnswer zoho_error(std::string_view error) {
    return {200, nlohmann::json{{"error", error}}.dump()};
}

std::string resolve_api_domain(const ZohoAccountsFakeOptions& options) {
    if (!options.api_domain.empty()) {
        return options.api_domain;
    }
    auto domain = zoho_api_domain(options.data_centre);
    if (!domain) {
        throw std::invalid_argument("unknown Zoho data centre '" + options.data_centre + "'");
    }
    return std::move(*domain);
}

} // namespace

std::optional<std::string> zoho_api_domain(std::string_view data_centre) {
    for (const auto& [dc, domain] : k_api_domains) {
        if (dc == data_centre) {
            return std::string(domain);
        }
    }
    return std::nullopt;
}

ZohoAccountsFake::ZohoAccountsFake(ZohoAccountsFakeOptions options)
    : OAuthTokenFake(Setup{
          "/oauth/v2/token",
          {},
          "application/json;charset=UTF-8",
          {},
          options.control_endpoints,
          options.worker_threads,
      }),
      m_options(std::move(options)), m_api_domain(resolve_api_domain(m_options)) {}

ZohoAccountsFake::~ZohoAccountsFake() { stop(); }

TokenAnswer ZohoAccountsFake::answer(const TokenParams& params, Ledger& ledger) {
    if (param(params, "grant_type") != "refresh_token") {
        return zoho_error("unsupported_grant_type");
    }
    const auto client_id = param(params, "client_id");
    const auto* secret = ledger.client_secret(client_id);
    if (secret == nullptr) {
        return zoho_error("invalid_client");
    }
    if (param(params, "client_secret") != *secret) {
        return zoho_error("invalid_client_secret");
    }
    const auto* account = ledger.account(param(params, "refresh_token"));
    if (account == nullptr || account->revoked || account->client_id != client_id) {
        return zoho_error("invalid_code");
    }
    const auto now = ledger.now();
    if (ledger.issued_after(account->refresh_token, now - m_options.token_window) >=
        m_options.token_limit) {
        const nlohmann::ordered_json body{
            {"error_description",
             "You have made too many requests continuously. Please try again after some time."},
            {"error", "Access Denied"},
            {"status", "failure"}};
        return {m_options.throttle_status, body.dump()};
    }
    const auto& token = ledger.issue(*account,
                                     "1000." + ledger.random_hex(k_token_part_chars) + "." +
                                         ledger.random_hex(k_token_part_chars),
                                     m_options.expires_in);
    nlohmann::ordered_json body{{"access_token", token.access_token}};
    if (!token.scope.empty()) {
        body["scope"] = token.scope;
    }
    body["api_domain"] = m_api_domain;
    body["token_type"] = "Bearer";
    body["expires_in"] = m_options.expires_in.count();
    return {200, body.dump()};
}

} // namespace crmsync::fakes
