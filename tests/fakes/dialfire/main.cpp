// dialfire_fake: the Dialfire API fake as a process, for out-of-process tests and benchmarks.
// Control endpoints (no auth): POST /_fake/faults, DELETE /_fake/faults, POST /_fake/touch?n=N,
// POST /_fake/fields, POST /_fake/contacts[?id=ID], POST /_fake/clock?offset_ms=N,
// GET /_fake/stats, POST /_fake/shutdown. Exits 0 on SIGTERM, SIGINT or /_fake/shutdown.

#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <iostream>

namespace {

int run(int argc, char** argv) {
    using crmsync::fakes::DialfireFake;
    crmsync::fakes::FakeCampaignOptions options;
    options.control_endpoints = true;
    int port = 0;
    std::string port_file;
    std::string history_end;

    CLI::App app{"Fake Dialfire API (E1-E5 of the dbsync2 reference) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--campaign", options.campaign_id, "Campaign id")->capture_default_str();
    app.add_option("--token", options.token, "Bearer token")->capture_default_str();
    app.add_option("--contacts", options.contacts, "Number of contacts")->capture_default_str();
    app.add_option("--custom-fields", options.custom_fields, "Active custom fields")
        ->capture_default_str();
    app.add_option("--transactions-per-contact", options.transactions_per_contact,
                   "Transactions per contact")
        ->capture_default_str();
    app.add_option("--inbound-calls", options.inbound_calls, "Number of inbound calls")
        ->capture_default_str();
    app.add_option("--seed", options.seed, "Generator seed")->capture_default_str();
    app.add_flag("--hostile", options.hostile, "Add hostile field names and values");
    app.add_option("--history-end", history_end,
                   "End of the generated history, e.g. 2024-06-01T00:00:00 (default: now)");
    app.add_option("--threads", options.worker_threads, "Worker threads (parallel connections)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;

    if (!history_end.empty()) {
        const auto ms = crmsync::fakes::parse_api_time(history_end);
        if (!ms) {
            std::cerr << "dialfire_fake: error: bad --history-end '" << history_end << "'\n";
            return 2;
        }
        options.history_end = std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms));
    }
    DialfireFake fake(options);
    std::atomic<bool> shutdown_requested{false};
    fake.set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        crmsync::fakes::write_port_file(port_file, bound);
    }
    std::cout << "dialfire_fake: listening on " << fake.base_url() << ", campaign "
              << options.campaign_id << ", " << options.contacts << " contacts, "
              << fake.event_count() << " transaction events" << std::endl;
    stop_signals.wait(shutdown_requested);
    fake.stop();
    std::cout << "dialfire_fake: stopped" << std::endl;
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("dialfire_fake", [&] { return run(argc, argv); });
}
