// oauth_fake: the Google or Zoho OAuth token endpoint fake as a process, for out-of-process
// tests and benchmarks. Control endpoints (no auth, same port): POST /_fake/accounts,
// POST /_fake/revoke?refresh_token=T[&revoked=false], POST /_fake/faults, DELETE /_fake/faults,
// POST /_fake/clock?offset_ms=N, GET /_fake/stats, GET /_fake/token?access_token=T,
// POST /_fake/shutdown. Exits 0 on SIGTERM, SIGINT or /_fake/shutdown.

#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/oauth/zoho_accounts_fake.hpp"

#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <fstream>
#include <iostream>

namespace {

// "CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN[:SCOPE]"
crmsync::fakes::OAuthAccount parse_account(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || (text[i] == ':' && parts.size() < 3)) {
            parts.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    }
    if (parts.size() < 3) {
        throw std::invalid_argument("--account wants CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN");
    }
    return {parts[0], parts[1], parts[2], parts.size() > 3 ? parts[3] : "", false};
}

std::vector<crmsync::fakes::OAuthAccount> read_accounts_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    auto json = nlohmann::json::parse(in);
    if (!json.is_array()) {
        json = nlohmann::json::array({json});
    }
    std::vector<crmsync::fakes::OAuthAccount> accounts;
    for (const auto& item : json) {
        accounts.push_back(crmsync::fakes::oauth_account_from_json(item));
    }
    return accounts;
}

} // namespace

int main(int argc, char** argv) {
    using namespace crmsync::fakes;
    std::string provider;
    int port = 0;
    std::string port_file;
    std::vector<std::string> account_texts;
    std::string accounts_file;
    int expires_in = 0;
    std::size_t threads = 4;
    ZohoAccountsFakeOptions zoho;
    int token_window_s = static_cast<int>(zoho.token_window.count());

    CLI::App app{"Fake OAuth token endpoint (Google or Zoho refresh grant) for crmsync tests"};
    app.add_option("--provider", provider, "google (POST /token) or zoho (POST /oauth/v2/token)")
        ->required()
        ->check(CLI::IsMember({"google", "zoho"}));
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--account", account_texts,
                   "CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN[:SCOPE], repeatable");
    app.add_option("--accounts-file", accounts_file,
                   "JSON array of {client_id, client_secret, refresh_token, scope, revoked}");
    app.add_option("--expires-in", expires_in, "expires_in of issued tokens in s (0 = default)");
    app.add_option("--threads", threads, "Worker threads")->capture_default_str();
    app.add_option("--data-centre", zoho.data_centre, "zoho: us, eu, in, au, jp, cn, ca, sa, uk")
        ->capture_default_str();
    app.add_option("--api-domain", zoho.api_domain, "zoho: api_domain to answer (default: DC's)");
    app.add_option("--token-limit", zoho.token_limit, "zoho: tokens per refresh token per window")
        ->capture_default_str();
    app.add_option("--token-window", token_window_s, "zoho: rate-limit window in s")
        ->capture_default_str();
    app.add_option("--throttle-status", zoho.throttle_status, "zoho: HTTP status when throttled")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;

    return crmsync::fakes::run_fake_main("oauth_fake", [&] {
        std::unique_ptr<OAuthTokenFake> fake;
        if (provider == "google") {
            GoogleTokenFakeOptions google;
            google.control_endpoints = true;
            google.worker_threads = threads;
            if (expires_in > 0) {
                google.expires_in = std::chrono::seconds(expires_in);
            }
            fake = std::make_unique<GoogleTokenFake>(google);
        } else {
            zoho.control_endpoints = true;
            zoho.worker_threads = threads;
            zoho.token_window = std::chrono::seconds(token_window_s);
            if (expires_in > 0) {
                zoho.expires_in = std::chrono::seconds(expires_in);
            }
            fake = std::make_unique<ZohoAccountsFake>(zoho);
        }
        for (const auto& text : account_texts) {
            fake->add_account(parse_account(text));
        }
        if (!accounts_file.empty()) {
            for (auto& account : read_accounts_file(accounts_file)) {
                fake->add_account(std::move(account));
            }
        }
        std::atomic<bool> shutdown_requested{false};
        fake->set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
        const int bound = fake->start(port);
        if (!port_file.empty()) {
            crmsync::fakes::write_port_file(port_file, bound);
        }
        std::cout << "oauth_fake: " << provider << " token endpoint at " << fake->token_url()
                  << std::endl;
        stop_signals.wait(shutdown_requested);
        fake->stop();
        std::cout << "oauth_fake: stopped" << std::endl;
        return 0;
    });
}
