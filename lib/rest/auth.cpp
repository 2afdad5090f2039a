#include "lib/rest/auth.hpp"

#include "lib/core/error.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/redact.hpp"

namespace crmsync::rest {
namespace {

class BasicAuth final : public Auth {
public:
    BasicAuth(const std::string& user, const std::string& password)
        : m_header("Basic " + util::base64_encode(user + ":" + password)) {
        util::register_secret(password);
        // The encoded form hides the password from redact(), so it is a secret of its own.
        util::register_secret(m_header.substr(6));
    }
    void apply(http::HttpRequest& request) override {
        request.headers.emplace_back("Authorization", m_header);
    }
    std::string hint() const override {
        return "check the user name and password: the service refused them or their rights";
    }

private:
    std::string m_header;
};

class HeaderKeyAuth final : public Auth {
public:
    HeaderKeyAuth(std::string header, std::string key)
        : m_header(std::move(header)), m_key(std::move(key)) {
        util::register_secret(m_key);
    }
    void apply(http::HttpRequest& request) override {
        request.headers.emplace_back(m_header, m_key);
    }
    std::string hint() const override {
        return "check the API key sent in " + m_header + ": it must be current and allowed here";
    }

private:
    std::string m_header;
    std::string m_key;
};

class BearerAuth final : public Auth {
public:
    explicit BearerAuth(std::string token) : m_token(std::move(token)) {
        util::register_secret(m_token);
    }
    void apply(http::HttpRequest& request) override {
        request.headers.emplace_back("Authorization", "Bearer " + m_token);
    }
    std::string hint() const override {
        return "check the token: it must be current and allowed to read this";
    }

private:
    std::string m_token;
};

class CallbackAuth final : public Auth {
public:
    CallbackAuth(std::function<std::string()> access_token, std::function<void()> forget,
                 std::string scheme)
        : m_access_token(std::move(access_token)), m_forget(std::move(forget)),
          m_scheme(std::move(scheme)) {}

    void apply(http::HttpRequest& request) override {
        m_last = ask();
        request.headers.emplace_back("Authorization", m_scheme + " " + m_last);
    }

    bool renew() override {
        if (m_forget) {
            m_forget();
        }
        return ask() != m_last;
    }

    std::string hint() const override {
        return "the access token was refused even after asking for a fresh one; the account "
               "may need to be authorised again, or lacks the scope to read this";
    }

private:
    std::string ask() {
        std::string token = m_access_token();
        if (token.empty()) {
            throw Error(ErrorKind::auth, "no access token was available for the request",
                        "authorise the account again");
        }
        // Asked before every request: register each token once, not once per request.
        if (token != m_registered) {
            util::register_secret(token);
            m_registered = token;
        }
        return token;
    }

    std::function<std::string()> m_access_token;
    std::function<void()> m_forget;
    std::string m_scheme;
    std::string m_last;
    std::string m_registered;
};

} // namespace

std::unique_ptr<Auth> basic_auth(std::string user, std::string password) {
    return std::make_unique<BasicAuth>(user, password);
}

std::unique_ptr<Auth> api_key_header(std::string header, std::string key) {
    return std::make_unique<HeaderKeyAuth>(std::move(header), std::move(key));
}

std::unique_ptr<Auth> bearer_token(std::string token) {
    return std::make_unique<BearerAuth>(std::move(token));
}

std::unique_ptr<Auth> token_callback(std::function<std::string()> access_token,
                                     std::function<void()> forget, std::string scheme) {
    return std::make_unique<CallbackAuth>(std::move(access_token), std::move(forget),
                                          std::move(scheme));
}

} // namespace crmsync::rest
