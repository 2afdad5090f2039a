// callcenter_fake: the call-center service fake as a process, for benchmarks and manual runs.
// Generates --activities call logs (and a few records of every other stream) for one call
// center. Control endpoints (no auth): POST /_fake/faults, DELETE /_fake/faults,
// POST /_fake/docs. Exits 0 on SIGTERM or SIGINT.

#include "tests/fakes/callcenter/callcenter_fake.hpp"
#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <iostream>

namespace {

constexpr long long k_base = 1'717'200'000'000; // 2024-06-01T00:00:00Z

void generate(crmsync::fakes::CallcenterFake& fake, const std::string& cc, long activities) {
    using nlohmann::json;
    for (long i = 0; i < activities; ++i) {
        const std::string n = std::to_string(i);
        fake.put(cc, "activities",
                 {{"_id", "a" + n},
                  {"creator", "ag" + std::to_string(i % 20)},
                  {"idContact", "c" + std::to_string(i % 5000)},
                  {"text", "call " + n},
                  {"type", "calllog"},
                  {"body",
                   {{"idCalllog", "call" + n},
                    {"status", i % 4 == 0 ? "missed" : "success"},
                    {"duration", i % 600},
                    {"direction", i % 2 == 0 ? "incoming" : "outgoing"},
                    {"source", "0900" + std::to_string(i % 10000)},
                    {"destination", "100"},
                    {"start", k_base + i * 1000},
                    {"end", k_base + i * 1000 + (i % 600) * 1000},
                    {"recordUrl", "https://records.example/" + n}}},
                  {"createdAt", k_base + i * 1000},
                  {"updatedAt", k_base + i * 1000 + 1},
                  {"deleted", false}});
    }
}

int run(int argc, char** argv) {
    crmsync::fakes::CallcenterFakeOptions options;
    int port = 0;
    std::string port_file;
    std::string cc = "cc1";
    long activities = 1000;
    CLI::App app{"Fake call-center service REST API for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--callcenter", cc, "Call center id")->capture_default_str();
    app.add_option("--activities", activities, "Call logs to generate")->capture_default_str();
    app.add_option("--auth", options.auth, "basic, apikey or bearer")->capture_default_str();
    app.add_option("--user", options.user, "User (basic)")->capture_default_str();
    app.add_option("--secret", options.secret, "Password, API key or token")->capture_default_str();
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;
    crmsync::fakes::CallcenterFake fake(options);
    generate(fake, cc, activities);
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        crmsync::fakes::write_port_file(port_file, bound);
    }
    std::cout << "callcenter_fake: listening on " << fake.base_url() << ", call center " << cc
              << ", " << activities << " activities" << std::endl;
    const std::atomic<bool> never{false};
    stop_signals.wait(never);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("callcenter_fake", [&] { return run(argc, argv); });
}
