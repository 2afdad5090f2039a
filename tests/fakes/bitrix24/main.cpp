// bitrix24_fake: the Bitrix24 REST fake as a process, for out-of-process tests and benchmarks.
// Control endpoints (no auth): POST /_fake/faults, DELETE /_fake/faults,
// POST /_fake/add_history?n=N, POST /_fake/move_deal {"deal_id","status_id"},
// POST /_fake/stages/add {"category_id","code","name","sort","semantics","color"},
// POST /_fake/stages/rename {"status_id","name"}, POST /_fake/stages/resort {"status_id","sort"},
// POST /_fake/stages/delete {"status_id"}, POST /_fake/rate_limit?on=true|false,
// POST /_fake/clock?offset_ms=N, GET /_fake/stats, POST /_fake/shutdown.
// Exits 0 on SIGTERM, SIGINT or /_fake/shutdown.

#include "tests/fakes/bitrix24/bitrix24_fake.hpp"
#include "tests/fakes/bitrix24/rest_time.hpp"

#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <iostream>

int main(int argc, char** argv) {
    using crmsync::fakes::Bitrix24Fake;
    crmsync::fakes::Bitrix24Options options;
    options.control_endpoints = true;
    int port = 0;
    std::string port_file;
    std::string rate_limit = "off";
    std::string history_end;

    CLI::App app{"Fake Bitrix24 REST API (reference apis.md §1) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--deals", options.deals, "Number of deals")->capture_default_str();
    app.add_option("--history-per-deal", options.history_per_deal,
                   "Stage-history rows per deal (>= 1)")
        ->capture_default_str();
    app.add_option("--seed", options.seed, "Generator seed")->capture_default_str();
    app.add_option("--user-id", options.user_id, "Webhook user id")->capture_default_str();
    app.add_option("--webhook-code", options.webhook_code, "Webhook secret code")
        ->capture_default_str();
    app.add_option("--oauth-token", options.oauth_token,
                   "Also accept /rest/{method}?auth=TOKEN (default: off)");
    app.add_option("--rate-limit", rate_limit, "Leaky bucket, 2 req/s, burst 50")
        ->check(CLI::IsMember({"on", "off"}))
        ->capture_default_str();
    app.add_option("--history-end", history_end,
                   "End of the generated history, e.g. 2024-06-01T00:00:00Z (default: now)");
    app.add_option("--utc-offset", options.utc_offset_minutes,
                   "Portal time zone in minutes east of UTC")
        ->capture_default_str();
    app.add_flag("--string-numbers", options.history_numbers_as_strings,
                 "crm.stagehistory.list sends numbers as strings");
    app.add_option("--threads", options.worker_threads, "Worker threads (parallel connections)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    options.rate_limit = rate_limit == "on";

    const crmsync::fakes::StopSignals stop_signals;

    return crmsync::fakes::run_fake_main("bitrix24_fake", [&] {
        if (!history_end.empty()) {
            const auto seconds = crmsync::fakes::bitrix24::parse_time(history_end, 0);
            if (!seconds) {
                std::cerr << "bitrix24_fake: error: bad --history-end '" << history_end << "'\n";
                return 2;
            }
            options.history_end =
                std::chrono::system_clock::time_point(std::chrono::seconds(*seconds));
        }
        Bitrix24Fake fake(options);
        std::atomic<bool> shutdown_requested{false};
        fake.set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
        const int bound = fake.start(port);
        if (!port_file.empty()) {
            crmsync::fakes::write_port_file(port_file, bound);
        }
        std::cout << "bitrix24_fake: listening on " << fake.base_url() << ", " << options.deals
                  << " deals, " << fake.history_size() << " history rows, rate limit " << rate_limit
                  << std::endl;
        stop_signals.wait(shutdown_requested);
        fake.stop();
        std::cout << "bitrix24_fake: stopped" << std::endl;
        return 0;
    });
}
