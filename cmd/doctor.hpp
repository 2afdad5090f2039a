#pragma once

#include "cmd/common.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace crmsync::cli {

// One line of `crmsync doctor`: what was checked and what was found.
struct DoctorCheck {
    enum class Verdict { ok, warning, failed, skipped };
    std::string what; // "target", "api", "clock", "state file", "log dir", "tls"
    Verdict verdict = Verdict::ok;
    std::string detail;
    std::string hint; // what to do about a warning or failure
};

// Connects to a target URL and creates, widens and drops a scratch table, as a first run must.
DoctorCheck check_target(const std::string& url);
// The directory the command's log files go to: usable, and not open to other users.
DoctorCheck check_log_dir(const CommonOptions& options, const std::string& job);
// A state file (created when missing, like a run does): writable, and private (no access for
// group or others: it holds OAuth secrets, outbox payloads and checkpoints).
DoctorCheck check_state_file(const std::string& path);
DoctorCheck check_tls(const CommonOptions& options);
// The clock against a server's Date header (checkpoints come from the server; more than a
// minute apart is a warning).
DoctorCheck check_clock(const std::string& date_header, const std::string& server);

// Prints one line per check ("ok      target: ..." then "        hint: ..."); returns 0 when
// nothing failed (warnings included), 1 when a check failed.
int report_checks(const std::vector<DoctorCheck>& checks);

// `crmsync doctor COMMAND [that command's options]`: the checks for what a first run of COMMAND
// needs, without writing anything but a scratch table (dropped at once) and the state file.
// Declares the nested commands and returns the runner of the one the command line names.
std::function<int()> add_doctor(CLI::App& app);

} // namespace crmsync::cli
