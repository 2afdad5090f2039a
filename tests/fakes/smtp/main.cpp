// smtp_fake: the SMTP fake as a process, for out-of-process tests. SMTP on --port; HTTP control
// endpoints (no auth) on --control-port: GET /_fake/messages, DELETE /_fake/messages,
// POST /_fake/refuse {"stage","code","text","count"}, DELETE /_fake/refuse, GET /_fake/stats,
// POST /_fake/shutdown. Exits 0 on SIGTERM, SIGINT or /_fake/shutdown.

#include "tests/fakes/smtp/smtp_fake.hpp"

#include <CLI/CLI.hpp>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace {

// Readers poll for the port file, so it must appear complete or not at all.
void write_port_file(const std::string& path, int port) {
    const auto temp = path + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(temp, std::ios::trunc);
        out << port << '\n';
        if (!out.flush()) {
            throw std::runtime_error("cannot write " + temp);
        }
    }
    std::filesystem::rename(temp, path);
}

} // namespace

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

    // Every thread inherits this mask, so SIGINT/SIGTERM reach only the sigtimedwait below.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
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
            write_port_file(control_port_file, control_bound);
        }
        if (!port_file.empty()) {
            write_port_file(port_file, bound);
        }
        std::cout << "smtp_fake: listening on " << fake.url()
                  << ", control on http://127.0.0.1:" << control_bound << ", AUTH "
                  << (options.credentials ? "required" : "off") << std::endl;
        while (!shutdown_requested) {
            timespec slice{0, 200'000'000};
            if (sigtimedwait(&signals, nullptr, &slice) > 0) {
                break;
            }
        }
        fake.stop();
        std::cout << "smtp_fake: stopped" << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "smtp_fake: error: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
