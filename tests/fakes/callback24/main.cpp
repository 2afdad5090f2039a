// callback24_fake: the Callback24 fake as a process, for benchmarks and manual runs.
// Generates --calls calls of --service (with --other-every N, every Nth of another service),
// one a second back from now, each with a page URL carrying UTM parameters. Exits 0 on SIGTERM or
// SIGINT.

#include "tests/fakes/callback24/callback24_fake.hpp"
#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <iostream>

namespace {

int run(int argc, char** argv) {
    crmsync::fakes::Callback24FakeOptions options;
    int port = 0;
    std::string port_file;
    long calls = 1000;
    std::string service = "shop.example";
    long other_every = 0;
    CLI::App app{"Fake Callback24 API (call history, call info) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--token", options.token, "API key (X-API-TOKEN)")->capture_default_str();
    app.add_option("--calls", calls, "Calls to generate")->capture_default_str();
    app.add_option("--service", service, "service_name of the generated calls")
        ->capture_default_str();
    app.add_option("--other-every", other_every, "Every Nth call is of another service (0 = none)")
        ->capture_default_str();
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;
    crmsync::fakes::Callback24Fake fake(options);
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    for (long i = 0; i < calls; ++i) {
        const auto at = now - (calls - i) * 1000;
        fake.put(
            {{"id", 1'000'000 + i},
             {"phone_number", "+48500" + std::to_string(100000 + i)},
             {"addition_time", crmsync::fakes::callback24_time(at)},
             {"service_name",
              other_every > 0 && i % other_every == other_every - 1 ? "other.example" : service},
             {"call_start_time", crmsync::fakes::callback24_time(at + 15000)},
             {"has_status_realised", i % 2 == 0}},
            "https://" + service + "/offer?utm_source=google&utm_campaign=c" +
                std::to_string(i % 7));
    }
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        crmsync::fakes::write_port_file(port_file, bound);
    }
    std::cout << "callback24_fake: listening on " << fake.base_url() << ", " << calls << " calls"
              << std::endl;
    const std::atomic<bool> never{false};
    stop_signals.wait(never);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("callback24_fake", [&] { return run(argc, argv); });
}
