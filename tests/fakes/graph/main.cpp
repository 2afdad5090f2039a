// graph_fake: the Graph API Lead Ads fake as a process, for benchmarks and manual runs.
// Generates --leads leads, one a minute back from now, in each of the --form forms. Control
// endpoints (no auth): POST /_fake/faults, DELETE /_fake/faults. Exits 0 on SIGTERM or SIGINT.

#include "tests/fakes/common/fake_main.hpp"
#include "tests/fakes/graph/graph_fake.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <iostream>

namespace {

int run(int argc, char** argv) {
    crmsync::fakes::GraphFakeOptions options;
    int port = 0;
    std::string port_file;
    std::vector<std::string> forms{"700100"};
    long leads = 100;
    CLI::App app{"Fake Graph API (Lead Ads retrieval) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--form", forms, "Form ids")->delimiter(',')->capture_default_str();
    app.add_option("--leads", leads, "Leads to generate per form")->capture_default_str();
    app.add_option("--token", options.access_token, "The valid page access token")
        ->capture_default_str();
    app.add_option("--version", options.version, "API version in the path")->capture_default_str();
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;
    crmsync::fakes::GraphFake fake(options);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    for (const auto& form : forms) {
        fake.add_form(form);
        for (long i = 0; i < leads; ++i) {
            const auto n = std::to_string(i);
            fake.put_lead(form,
                          crmsync::fakes::GraphFake::lead(form + "00" + n, now - i * 60,
                                                          {{"full_name", "Lead " + n},
                                                           {"email", "lead" + n + "@example.com"},
                                                           {"phone_number", "+4860000" + n}}));
        }
    }
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        crmsync::fakes::write_port_file(port_file, bound);
    }
    std::cout << "graph_fake: listening on " << fake.base_url() << ", " << forms.size()
              << " form(s), " << leads << " leads each" << std::endl;
    const std::atomic<bool> never{false};
    stop_signals.wait(never);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("graph_fake", [&] { return run(argc, argv); });
}
