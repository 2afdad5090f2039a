#pragma once

#include "lib/state/accounts.hpp"

#include <string>

namespace crmsync::oauth {

// Registers the account's client secret, refresh token and access token for redaction. Call
// as soon as an account is read, before anything about it can reach a log or an error.
void register_account_secrets(const state::Account& account);

// "account 3 alice@example.com (google)", for messages; carries no secret.
std::string describe_account(const state::Account& account);

} // namespace crmsync::oauth
