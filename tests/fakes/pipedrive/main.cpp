// pipedrive_fake: the Pipedrive fake as a process, for benchmarks and manual runs. Control
// endpoints (no auth): POST /_fake/faults, DELETE /_fake/faults, GET /_fake/stats (persons,
// leads, and how the burst budget was used). Exits 0 on SIGTERM or SIGINT.

#include "tests/fakes/common/fake_main.hpp"
#include "tests/fakes/pipedrive/pipedrive_fake.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <iostream>

namespace {

int run(int argc, char** argv) {
    crmsync::fakes::PipedriveFakeOptions options;
    int port = 0;
    std::string port_file;
    bool no_rate_headers = false;
    CLI::App app{"Fake Pipedrive API (persons, leads) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--token", options.token, "API token (x-api-token)")->capture_default_str();
    app.add_option("--burst-limit", options.burst_limit, "Requests per burst window (0 = no limit)")
        ->capture_default_str();
    app.add_option("--window-ms", options.window_ms, "Burst window")->capture_default_str();
    app.add_flag("--no-rate-headers", no_rate_headers, "Leave out the x-ratelimit-* headers");
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    options.rate_headers = !no_rate_headers;

    const crmsync::fakes::StopSignals stop_signals;
    crmsync::fakes::PipedriveFake fake(options);
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        crmsync::fakes::write_port_file(port_file, bound);
    }
    std::cout << "pipedrive_fake: listening on " << fake.base_url() << std::endl;
    const std::atomic<bool> never{false};
    stop_signals.wait(never);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("pipedrive_fake", [&] { return run(argc, argv); });
}
