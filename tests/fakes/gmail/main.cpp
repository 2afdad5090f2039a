// gmail_fake: the Gmail users.messages fake as a process, for benchmarks and manual runs.
// Generates --mails lead mails from forms@example.com with the subject "New lead #N", one a
// minute back from now, with "Name:", "E-mail:", "Phone:" and "Message:" lines for a lead
// template to read. Control endpoints (no auth): POST /_fake/faults, DELETE /_fake/faults.
// Exits 0 on SIGTERM or SIGINT.

#include "tests/fakes/common/fake_main.hpp"
#include "tests/fakes/gmail/gmail_fake.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace {

int run(int argc, char** argv) {
    using crmsync::fakes::GmailFake;
    crmsync::fakes::GmailFakeOptions options;
    int port = 0;
    std::string port_file;
    long mails = 100;
    CLI::App app{"Fake Gmail API (users.messages list/get) for crmsync tests"};
    app.add_option("--port", port, "Port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the bound port here once listening");
    app.add_option("--mails", mails, "Lead mails to generate")->capture_default_str();
    app.add_option("--token", options.access_token, "The valid access token")
        ->capture_default_str();
    app.add_option("--email", options.email, "The mailbox's address")->capture_default_str();
    app.add_option("--threads", options.worker_threads, "Worker threads")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;
    GmailFake fake(options);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (long i = 0; i < mails; ++i) {
        const auto n = std::to_string(i);
        char id[24]; // "18c" + at least 13 hex digits (16 for the largest count) + NUL
        std::snprintf(id, sizeof id, "18c%013lx", static_cast<unsigned long>(i));
        fake.put_message(GmailFake::message(
            id, now_ms - i * 60'000,
            GmailFake::part("text/plain",
                            "Name: Lead " + n + "\r\nE-mail: lead" + n +
                                "@example.com\r\nPhone: +48 600 " + n + "\r\nMessage: call me\r\n",
                            {{"Content-Type", "text/plain; charset=\"UTF-8\""}}),
            {{"From", "Website <forms@example.com>"}, {"Subject", "New lead #" + n}}));
    }
    const int bound = fake.start(port);
    if (!port_file.empty()) {
        crmsync::fakes::write_port_file(port_file, bound);
    }
    std::cout << "gmail_fake: listening on " << fake.base_url() << ", " << mails << " mails"
              << std::endl;
    const std::atomic<bool> never{false};
    stop_signals.wait(never);
    fake.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return crmsync::fakes::run_fake_main("gmail_fake", [&] { return run(argc, argv); });
}
