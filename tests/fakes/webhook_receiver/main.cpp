// webhook_receiver: the webhook receiver fake as a process, for out-of-process tests and
// benchmarks. Webhooks go to the main port (any path). The control endpoints (no auth) are on a
// second port so that they stay reachable while the receiver is down:
//   GET /_fake/stats, GET /_fake/requests[?limit=N], DELETE /_fake/requests, GET /_fake/ids,
//   POST /_fake/faults, DELETE /_fake/faults, POST /_fake/down[?for_ms=N], POST /_fake/up,
//   POST /_fake/restore, POST /_fake/delay?ms=N, POST /_fake/secret {"secret": ...|null},
//   POST /_fake/clock?offset_ms=N, POST /_fake/shutdown.
// Exits 0 on SIGTERM, SIGINT or /_fake/shutdown.

#include "tests/fakes/webhook_receiver/webhook_receiver.hpp"

#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

std::string read_secret_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::stringstream text;
    text << in.rdbuf();
    auto secret = text.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
    }
    return secret;
}

} // namespace

int main(int argc, char** argv) {
    using crmsync::fakes::WebhookReceiver;
    crmsync::fakes::WebhookReceiverOptions options;
    int port = 0;
    int control_port = 0;
    std::string port_file;
    std::string control_port_file;
    std::string secret;
    std::string secret_file;
    int tolerance_s = static_cast<int>(options.timestamp_tolerance.count());
    int delay_ms = 0;

    CLI::App app{"Fake webhook receiver (Standard Webhooks signatures) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--control-port", control_port, "Port of the /_fake/ endpoints (0 = any)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--control-port-file", control_port_file,
                   "Write the control port here once listening");
    auto* secret_option =
        app.add_option("--secret", secret, "Standard Webhooks secret (whsec_<base64> or raw)");
    app.add_option("--secret-file", secret_file, "Read the secret from this file")
        ->excludes(secret_option);
    app.add_option("--tolerance", tolerance_s, "Allowed webhook-timestamp skew in s (0 = off)")
        ->capture_default_str();
    app.add_option("--id-header", options.id_header, "Header naming a delivery")
        ->capture_default_str();
    app.add_option("--delay-ms", delay_ms, "Sleep before every answer")->capture_default_str();
    app.add_option("--threads", options.worker_threads, "Worker threads (parallel connections)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;

    return crmsync::fakes::run_fake_main("webhook_receiver", [&] {
        if (!secret_file.empty()) {
            secret = read_secret_file(secret_file);
        }
        if (!secret.empty()) {
            options.secret = secret;
        }
        options.timestamp_tolerance = std::chrono::seconds(tolerance_s);
        WebhookReceiver receiver(options);
        receiver.set_response_delay(std::chrono::milliseconds(delay_ms));
        std::atomic<bool> shutdown_requested{false};
        receiver.set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
        const int bound = receiver.start(port);
        const int control_bound = receiver.start_control(control_port);
        if (!control_port_file.empty()) {
            crmsync::fakes::write_port_file(control_port_file, control_bound);
        }
        if (!port_file.empty()) {
            crmsync::fakes::write_port_file(port_file, bound);
        }
        std::cout << "webhook_receiver: listening on " << receiver.base_url()
                  << ", control on http://127.0.0.1:" << control_bound << ", signatures "
                  << (options.secret ? "checked" : "not checked") << std::endl;
        stop_signals.wait(shutdown_requested);
        receiver.stop();
        std::cout << "webhook_receiver: stopped" << std::endl;
        return 0;
    });
}
