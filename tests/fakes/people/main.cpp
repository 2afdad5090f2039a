// people_fake: the Google People API contacts fake as a process, for benchmarks and manual runs.
// Users come from --user NAME:ACCESS_TOKEN[:REFRESH_TOKEN] (repeatable) or POST /_fake/users;
// each gets --contacts generated contacts ("Contact N" <userN.cN@example.com>). With
// --google-token-fake URL, access tokens that oauth_fake (--provider google) issued are
// accepted too: the fake asks that fake's GET /_fake/token and maps the refresh token to a user.
// Control routes: see people_fake.hpp. Exits 0 on SIGTERM, SIGINT or POST /_fake/shutdown.

#include "tests/fakes/common/fake_main.hpp"
#include "tests/fakes/people/people_fake.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <iostream>

namespace {

// Asks the token fake at `url` whether it issued `access_token`; its refresh token if so.
std::optional<std::string> refresh_token_of(const std::string& url,
                                            const std::string& access_token) {
    httplib::Client client(url);
    client.set_connection_timeout(std::chrono::seconds(2));
    client.set_read_timeout(std::chrono::seconds(5));
    const httplib::Params params{{"access_token", access_token}};
    const auto res = client.Get("/_fake/token", params, httplib::Headers{});
    if (!res || res->status != 200) {
        return std::nullopt;
    }
    const auto body = nlohmann::json::parse(res->body, nullptr, false);
    if (!body.is_object() || !body.value("valid", false)) {
        return std::nullopt;
    }
    return body.value("refresh_token", std::string());
}

int run(int argc, char** argv) {
    using namespace crmsync::fakes;
    PeopleFakeOptions options;
    int port = 0;
    std::string port_file;
    std::vector<std::string> users;
    int contacts = 0;
    std::string token_fake_url;
    CLI::App app{"Fake Google People API (contacts) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--user", users,
                   "NAME:ACCESS_TOKEN[:REFRESH_TOKEN], repeatable (the access token may be empty)");
    app.add_option("--contacts", contacts, "Contacts to generate per user")->capture_default_str();
    app.add_option("--per-minute-limit", options.per_minute_limit,
                   "Requests per user per minute before 429 (0 = off)")
        ->capture_default_str();
    app.add_option("--expired-sync-token-status", options.expired_sync_token_status,
                   "HTTP status of an expired sync token")
        ->check(CLI::IsMember({400, 410}))
        ->capture_default_str();
    app.add_option("--google-token-fake", token_fake_url,
                   "Base URL of an oauth_fake --provider google whose tokens are accepted");
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const StopSignals stop_signals;
    PeopleFake fake(options);
    for (const auto& text : users) {
        const auto first = text.find(':');
        if (first == std::string::npos || first == 0) {
            throw std::invalid_argument("--user wants NAME:ACCESS_TOKEN[:REFRESH_TOKEN]");
        }
        const auto second = text.find(':', first + 1);
        const auto name = text.substr(0, first);
        const auto token = text.substr(first + 1, second == std::string::npos ? std::string::npos
                                                                              : second - first - 1);
        fake.add_user(name, token, second == std::string::npos ? "" : text.substr(second + 1));
        for (int i = 0; i < contacts; ++i) {
            const auto n = std::to_string(i);
            fake.add_contact(
                name, {{"names", {{{"givenName", "Contact"}, {"familyName", n}}}},
                       {"emailAddresses", {{{"value", name + ".c" + n + "@example.com"}}}},
                       {"phoneNumbers", {{{"value", "+48 600 000 " + n}, {"type", "mobile"}}}}});
        }
    }
    if (!token_fake_url.empty()) {
        fake.set_token_resolver([token_fake_url](const std::string& access_token) {
            return refresh_token_of(token_fake_url, access_token);
        });
    }
    std::atomic<bool> shutdown_requested{false};
    fake.set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        write_port_file(port_file, bound);
    }
    std::cout << "people_fake: listening on " << fake.base_url() << ", " << users.size() << " users"
              << std::endl;
    stop_signals.wait(shutdown_requested);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("people_fake", [&] { return run(argc, argv); });
}
