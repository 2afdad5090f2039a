// smtp_fake: the SMTP fake as a process, for out-of-process tests. SMTP on --port; HTTP control
// endpoints (no auth) on --control-port: GET /_fake/messages, DELETE /_fake/messages,
// POST /_fake/refuse {"stage","code","text","count"}, DELETE /_fake/refuse, GET /_fake/stats,
// POST /_fake/shutdown. Exits 0 on SIGTERM, SIGINT or /_fake/shutdown.

#include "tests/fakes/smtp/smtp_fake.hpp"

#include "tests/fakes/common/fake_main.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <iostream>

int main(int argc, char** argv) {
    using crmsync::fakes::SmtpFake;
    crmsync::fakes::SmtpFakeOptions options;
    int port = 0;
    int control_port = 0;
    std::string port_file;
    std::string control_port_file;
    std::string user;
    std::string password;
    int idle_timeout_s = static_cast<int>(options.idle_timeout.count());

    CLI::App app{"Fake SMTP server (plain TCP, AUTH PLAIN/LOGIN) for crmsync tests"};
    app.add_option("--port", port, "SMTP port on 127.0.0.1 (0 = any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--port-file", port_file, "Write the SMTP port here once listening");
    app.add_option("--control-port", control_port, "HTTP port of the /_fake/ endpoints")
        ->check(CLI::Range(0, 65535));
    app.add_option("--control-port-file", control_port_file,
                   "Write the control port here once listening");
    auto* user_option = app.add_option("--user", user, "Require AUTH with this user");
    app.add_option("--password", password, "Password for --user")->needs(user_option);
    app.add_option("--hostname", options.hostname, "Name in the greeting")->capture_default_str();
    app.add_option("--max-message-bytes", options.max_message_bytes, "SIZE limit")
        ->capture_default_str();
    app.add_option("--idle-timeout", idle_timeout_s, "Seconds of silence before 421")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const crmsync::fakes::StopSignals stop_signals;

    return crmsync::fakes::run_fake_main("smtp_fake", [&] {
        if (!user.empty()) {
            options.credentials = crmsync::fakes::SmtpCredentials{user, password};
        }
        options.idle_timeout = std::chrono::seconds(idle_timeout_s);
        SmtpFake fake(options);
        std::atomic<bool> shutdown_requested{false};
        fake.set_shutdown_handler([&shutdown_requested] { shutdown_requested = true; });
        const int bound = fake.start(port);
        const int control_bound = fake.start_control(control_port);
        if (!control_port_file.empty()) {
            crmsync::fakes::write_port_file(control_port_file, control_bound);
        }
        if (!port_file.empty()) {
            crmsync::fakes::write_port_file(port_file, bound);
        }
        std::cout << "smtp_fake: listening on " << fake.url()
                  << ", control on http://127.0.0.1:" << control_bound << ", AUTH "
                  << (options.credentials ? "required" : "off") << std::endl;
        stop_signals.wait(shutdown_requested);
        fake.stop();
        std::cout << "smtp_fake: stopped" << std::endl;
        return 0;
    });
}
