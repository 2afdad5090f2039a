#include "drivers/zoho/token_client.hpp"

#include "lib/http/retry_policy.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <utility>

namespace crmsync::drivers::zoho {
namespace {

using Kind = state::TokenAnswer::Kind;

constexpr long long k_default_lifetime_s = 3600;
constexpr std::string_view k_token_path = "/oauth/v2/token";

// What users write -> the accounts server's top-level domain (apis.md §3.1 table).
constexpr std::array<std::pair<std::string_view, std::string_view>, 12> k_data_centres{{
    {"com", "com"},
    {"us", "com"},
    {"eu", "eu"},
    {"in", "in"},
    {"com.au", "com.au"},
    {"au", "com.au"},
    {"jp", "jp"},
    {"com.cn", "com.cn"},
    {"cn", "com.cn"},
    {"ca", "ca"},
    {"sa", "sa"},
    {"uk", "uk"},
}};

std::string snippet(const std::string& body) {
    std::string s = body.substr(0, 200);
    std::replace_if(
        s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return s;
}

std::string string_member(const nlohmann::json& j, const char* name) {
    const auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

state::TokenAnswer error_answer(long status, const nlohmann::json& body) {
    const std::string error = string_member(body, "error");
    const std::string description = string_member(body, "error_description");
    state::TokenAnswer answer;
    answer.error =
        fmt::format("HTTP {} {}", status, description.empty() ? error : error + ": " + description);
    const std::string e = util::ascii_lower(error);
    if (e == "invalid_code" || e == "invalid_grant") {
        answer.kind = Kind::invalid_grant;
    } else if (e == "invalid_client" || e == "invalid_client_secret" ||
               e == "unauthorized_client") {
        answer.kind = Kind::invalid_client;
    } else if (e == "access denied" ||
               util::ascii_lower(description).find("too many requests") != std::string::npos) {
        answer.kind = Kind::throttled;
    } else {
        answer.kind = Kind::refused;
    }
    return answer;
}

class ZohoProvider final : public oauth::Provider {
public:
    explicit ZohoProvider(std::string accounts_url) : m_accounts_url(std::move(accounts_url)) {}

    std::string_view name() const override { return "zoho"; }
    std::string_view title() const override { return "Zoho"; }
    std::string token_url(const state::Account& account) const override {
        return zoho::token_url(account.zoho_dc, m_accounts_url);
    }
    http::HttpRequest refresh_request(const std::string& url, const state::Account& account,
                                      std::chrono::milliseconds timeout) const override {
        return zoho::refresh_request(url, account, timeout);
    }
    state::TokenAnswer read_refresh_answer(const http::HttpResponse& response,
                                           SystemTime sent_at) const override {
        return zoho::read_refresh_answer(response, sent_at);
    }
    // A client is registered in one data centre: another one refuses it as invalid_client.
    std::string client_hint(const state::Account& account) const override {
        return " and the data centre (this account uses '" + account.zoho_dc + "')";
    }
    std::optional<oauth::RequestBudget> request_budget() const override {
        return oauth::RequestBudget{k_tokens_per_window, k_token_window};
    }
    std::string_view authorization_scheme() const override { return "Zoho-oauthtoken"; }

private:
    std::string m_accounts_url;
};

} // namespace

std::unique_ptr<oauth::Provider> make_oauth_provider(std::string accounts_url_override) {
    return std::make_unique<ZohoProvider>(std::move(accounts_url_override));
}

std::optional<std::string> canonical_dc(std::string_view dc) {
    const std::string wanted = util::ascii_lower(std::string(dc));
    for (const auto& [name, canonical] : k_data_centres) {
        if (name == wanted) {
            return std::string(canonical);
        }
    }
    return std::nullopt;
}

std::string accounts_url(const std::string& dc) {
    if (dc == "ca") {
        return "https://accounts.zohocloud.ca";
    }
    return "https://accounts.zoho." + dc;
}

std::string token_url(const std::string& dc, const std::string& override_url) {
    std::string base = override_url.empty() ? accounts_url(dc) : override_url;
    while (!base.empty() && base.back() == '/') {
        base.pop_back();
    }
    if (base.size() >= k_token_path.size() &&
        base.compare(base.size() - k_token_path.size(), k_token_path.size(), k_token_path) == 0) {
        return base;
    }
    return base + std::string(k_token_path);
}

http::HttpRequest refresh_request(const std::string& url, const state::Account& account,
                                  std::chrono::milliseconds timeout) {
    return oauth::refresh_grant_request(url, account, timeout);
}

state::TokenAnswer read_refresh_answer(const http::HttpResponse& response, SystemTime sent_at) {
    state::TokenAnswer answer;
    const auto body = nlohmann::json::parse(response.body, nullptr, false);
    const bool object = body.is_object();
    if (response.status == 429) {
        answer.kind = Kind::throttled;
        answer.error = "HTTP 429: " + snippet(response.body);
        return answer;
    }
    if (http::RetryPolicy::is_retryable_status(response.status)) {
        answer.kind = Kind::transient;
        answer.error = fmt::format("HTTP {}", response.status);
        if (response.status == 503) {
            answer.retry_after = http::RetryPolicy::retry_after(response, Clock::real().wall_now());
        }
        return answer;
    }
    // Zoho refuses with HTTP 200 (and its throttle with 400): the body decides.
    if (object && body.contains("error")) {
        return error_answer(response.status, body);
    }
    if (response.status >= 200 && response.status < 300) {
        const std::string token = object ? string_member(body, "access_token") : std::string();
        if (!token.empty()) {
            long long lifetime = k_default_lifetime_s;
            if (const auto it = body.find("expires_in"); it != body.end() && it->is_number()) {
                lifetime = std::max(0LL, it->get<long long>());
            }
            answer.kind = Kind::granted;
            answer.grant.access_token = token;
            answer.grant.expires_at = sent_at + std::chrono::seconds(lifetime);
            answer.grant.api_domain = string_member(body, "api_domain");
            return answer;
        }
        answer.kind = Kind::transient;
        answer.error = fmt::format("HTTP {} without an access token ({} bytes)", response.status,
                                   response.body.size());
        return answer;
    }
    answer.kind = Kind::refused;
    answer.error = fmt::format("HTTP {}: {}", response.status, snippet(response.body));
    return answer;
}

} // namespace crmsync::drivers::zoho
