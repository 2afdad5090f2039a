#include "lib/oauth/provider.hpp"

#include "lib/core/error.hpp"
#include "lib/http/form_request.hpp"

namespace crmsync::oauth {

void ProviderTable::add(std::unique_ptr<Provider> provider) {
    if (find(provider->name()) != nullptr) {
        throw Error(ErrorKind::internal,
                    "OAuth provider '" + std::string(provider->name()) + "' registered twice");
    }
    m_providers.push_back(std::move(provider));
}

const Provider* ProviderTable::find(std::string_view name) const {
    for (const auto& provider : m_providers) {
        if (provider->name() == name) {
            return provider.get();
        }
    }
    return nullptr;
}

std::vector<std::string> ProviderTable::names() const {
    std::vector<std::string> out;
    for (const auto& provider : m_providers) {
        out.emplace_back(provider->name());
    }
    return out;
}

http::HttpRequest refresh_grant_request(const std::string& token_url, const state::Account& account,
                                        std::chrono::milliseconds timeout) {
    return http::form_post(token_url,
                           {{"grant_type", "refresh_token"},
                            {"client_id", account.client_id},
                            {"client_secret", account.client_secret},
                            {"refresh_token", account.refresh_token}},
                           timeout);
}

} // namespace crmsync::oauth
