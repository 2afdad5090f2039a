#include "lib/oauth/account_text.hpp"

#include "lib/util/redact.hpp"

#include <fmt/format.h>

namespace crmsync::oauth {

void register_account_secrets(const state::Account& a) {
    util::register_secret(a.client_secret);
    util::register_secret(a.refresh_token);
    util::register_secret(a.access_token);
}

std::string describe_account(const state::Account& a) {
    return fmt::format("account {} {} ({})", a.id, a.email, a.provider);
}

} // namespace crmsync::oauth
