// zoho_creator_fake: the Zoho Creator v2.1 data API fake as a process, for benchmarks and manual
// runs. Access tokens come from --token (repeatable), POST /_fake/tokens, or, with
// --zoho-accounts-fake URL, any token that oauth_fake (--provider zoho) issued (asked through
// its GET /_fake/token). --records N seeds N contacts. Control routes: see creator_fake.hpp.
// Exits 0 on SIGTERM, SIGINT or POST /_fake/shutdown.

#include "tests/fakes/common/fake_main.hpp"
#include "tests/fakes/zoho_creator/creator_criteria.hpp"
#include "tests/fakes/zoho_creator/creator_fake.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <iostream>

namespace {

bool issued_by(const std::string& url, const std::string& access_token) {
    httplib::Client client(url);
    client.set_connection_timeout(std::chrono::seconds(2));
    client.set_read_timeout(std::chrono::seconds(5));
    const httplib::Params params{{"access_token", access_token}};
    const auto res = client.Get("/_fake/token", params, httplib::Headers{});
    if (!res || res->status != 200) {
        return false;
    }
    const auto body = nlohmann::json::parse(res->body, nullptr, false);
    return body.is_object() && body.value("valid", false);
}

int run(int argc, char** argv) {
    using namespace crmsync::fakes;
    CreatorFakeOptions options;
    int port = 0;
    std::string port_file;
    std::vector<std::string> tokens;
    int records = 0;
    std::string accounts_url;
    std::string time_zone = "UTC";
    CLI::App app{"Fake Zoho Creator v2.1 data API for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--owner", options.owner, "Account owner name")->capture_default_str();
    app.add_option("--app", options.app, "Application link name")->capture_default_str();
    app.add_option("--form", options.form, "Form link name")->capture_default_str();
    app.add_option("--report", options.report, "Report link name")->capture_default_str();
    app.add_option("--token", tokens, "A valid access token, repeatable");
    app.add_option("--zoho-accounts-fake", accounts_url,
                   "Base URL of an oauth_fake --provider zoho whose tokens are accepted");
    app.add_option("--per-minute-limit", options.per_minute_limit,
                   "Requests per token per minute before 429 code 2955 (0 = off)")
        ->capture_default_str();
    app.add_option("--time-zone", time_zone, "The app's time zone: UTC or +HH:MM / -HH:MM")
        ->capture_default_str();
    app.add_option("--records", records, "Contacts to seed")->capture_default_str();
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const auto offset = parse_utc_offset(time_zone);
    if (!offset) {
        throw std::invalid_argument("--time-zone wants UTC or +HH:MM / -HH:MM");
    }
    options.utc_offset_minutes = *offset;
    const StopSignals stop_signals;
    CreatorFake fake(options);
    for (const auto& token : tokens) {
        fake.add_token(token);
    }
    if (!accounts_url.empty()) {
        fake.set_token_validator(
            [accounts_url](const std::string& token) { return issued_by(accounts_url, token); });
    }
    for (int i = 0; i < records; ++i) {
        const auto n = std::to_string(i);
        fake.add_record({{"Name", {{"first_name", "Record"}, {"last_name", n}}},
                         {"Email", "record" + n + "@example.com"},
                         {"Phone_Number", "+1610394" + n},
                         {"Owner_Login", "owner"}});
    }
    std::atomic<bool> shutdown_requested{false};
    fake.set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        write_port_file(port_file, bound);
    }
    std::cout << "zoho_creator_fake: listening on " << fake.base_url() << fake.report_path()
              << std::endl;
    stop_signals.wait(shutdown_requested);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("zoho_creator_fake", [&] { return run(argc, argv); });
}
