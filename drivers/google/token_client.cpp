#include "drivers/google/token_client.hpp"

#include "lib/http/retry_policy.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace crmsync::drivers::google {
namespace {

using Kind = state::TokenAnswer::Kind;

// A lifetime Google leaves out is taken to be the documented hour.
constexpr long long k_default_lifetime_s = 3600;

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
    answer.error = description.empty() ? error : error + ": " + description;
    answer.error = fmt::format("HTTP {} {}", status, answer.error);
    if (error == "invalid_grant") {
        answer.kind = Kind::invalid_grant;
    } else if (error == "invalid_client" || error == "unauthorized_client") {
        answer.kind = Kind::invalid_client;
    } else {
        answer.kind = Kind::refused;
    }
    return answer;
}

class GoogleProvider final : public oauth::Provider {
public:
    explicit GoogleProvider(std::string token_url)
        : m_token_url(token_url.empty() ? std::string(k_token_url) : std::move(token_url)) {}

    std::string_view name() const override { return "google"; }
    std::string_view title() const override { return "Google"; }
    std::string token_url(const state::Account& /*account*/) const override { return m_token_url; }
    http::HttpRequest refresh_request(const std::string& url, const state::Account& account,
                                      std::chrono::milliseconds timeout) const override {
        return google::refresh_request(url, account, timeout);
    }
    state::TokenAnswer read_refresh_answer(const http::HttpResponse& response,
                                           SystemTime sent_at) const override {
        return google::read_refresh_answer(response, sent_at);
    }

private:
    std::string m_token_url;
};

} // namespace

std::unique_ptr<oauth::Provider> make_oauth_provider(std::string token_url_override) {
    return std::make_unique<GoogleProvider>(std::move(token_url_override));
}

http::HttpRequest refresh_request(const std::string& token_url, const state::Account& account,
                                  std::chrono::milliseconds timeout) {
    return oauth::refresh_grant_request(token_url, account, timeout);
}

state::TokenAnswer read_refresh_answer(const http::HttpResponse& response, SystemTime sent_at) {
    state::TokenAnswer answer;
    const auto body = nlohmann::json::parse(response.body, nullptr, false);
    const bool object = body.is_object();
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
            return answer;
        }
        if (object && body.contains("error")) {
            return error_answer(response.status, body);
        }
        answer.kind = Kind::transient;
        answer.error = fmt::format("HTTP {} without an access token ({} bytes)", response.status,
                                   response.body.size());
        return answer;
    }
    if (http::RetryPolicy::is_retryable_status(response.status)) {
        answer.kind = Kind::transient;
        answer.error = fmt::format("HTTP {}", response.status);
        if (response.status == 429 || response.status == 503) {
            answer.retry_after = http::RetryPolicy::retry_after(response, Clock::real().wall_now());
        }
        return answer;
    }
    if (object && body.contains("error")) {
        return error_answer(response.status, body);
    }
    answer.kind = Kind::refused;
    answer.error = fmt::format("HTTP {}: {}", response.status, snippet(response.body));
    return answer;
}

} // namespace crmsync::drivers::google
