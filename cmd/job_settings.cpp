#include "cmd/common.hpp"

#include "lib/core/error.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/redact.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

// What the common flags decide about a run: its budget, retries, log file and lifecycle.
namespace crmsync::cli {
namespace {

// Creates what is missing of `dir` private (0700, whatever the umask): the logs in it hold
// customer data. Existing directories keep their mode.
void create_private_dirs(const std::filesystem::path& dir) {
    std::filesystem::path partial;
    for (const auto& part : dir) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0700) == 0) {
            ::chmod(partial.c_str(), 0700); // mkdir applies the umask
        }
    }
}

bool usable_dir(const std::filesystem::path& dir) {
    std::error_code ec;
    create_private_dirs(dir);
    return std::filesystem::is_directory(dir, ec) && ::access(dir.c_str(), W_OK) == 0;
}

} // namespace

std::optional<std::chrono::steady_clock::time_point> run_deadline(const CommonOptions& o) {
    const auto budget = parse_duration_option(o.max_runtime, "--max-runtime");
    if (budget.count() <= 0) {
        return std::nullopt;
    }
    return std::chrono::steady_clock::now() + budget;
}

http::RetryPolicy retry_policy(const CommonOptions& o) {
    http::RetryPolicy policy;
    policy.max_attempts = o.retry_attempts;
    policy.base_delay = parse_duration_option(o.retry_base, "--retry-base");
    return policy;
}

std::string log_file_path(const CommonOptions& o, const std::string& job, const std::string& mode) {
    std::vector<std::filesystem::path> candidates;
    if (!o.log_dir.empty()) {
        candidates.emplace_back(o.log_dir);
    } else {
        candidates.emplace_back("/var/log/crmsync");
        if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
            candidates.emplace_back(std::filesystem::path(home) / ".crmsync" / "logs");
        }
    }
    for (const auto& dir : candidates) {
        if (usable_dir(dir)) {
            const std::time_t now = std::time(nullptr);
            std::tm tm{};
            gmtime_r(&now, &tm);
            char stamp[32];
            std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
            std::string safe_job = job;
            for (char& c : safe_job) {
                if (c == '/' || c == '\\' || c == '\0') {
                    c = '_';
                }
            }
            return (dir / fmt::format("{}_{}_{}.log", safe_job, mode, stamp)).string();
        }
    }
    throw Error(ErrorKind::io, "no writable log directory",
                "pass --log-dir DIR, or make /var/log/crmsync or ~/.crmsync/logs writable");
}

void init_logging(const CommonOptions& o, const std::string& job, const std::string& mode) {
    log::LogOptions options;
    options.file = log_file_path(o, job, mode);
    options.level = static_cast<log::Level>(o.log_level);
    options.to_stdout = o.log_stdout;
    log::init(options);
}

pipeline::JobSettings job_settings(const CommonOptions& o, const std::string& command,
                                   const std::string& job, const std::string& log_job,
                                   const std::string& notify_job, const std::string& state_path) {
    pipeline::JobSettings settings;
    settings.command = command;
    settings.job = job;
    settings.log_job = log_job;
    if (!log_job.empty()) {
        settings.log.file = log_file_path(o, log_job, command);
    }
    settings.log.level = static_cast<log::Level>(o.log_level);
    settings.log.to_stdout = o.log_stdout;
    settings.summary_json = o.summary_json;
    settings.notify_job = notify_job;
    auto& n = settings.notify;
    n.smtp_url = o.notify_smtp;
    n.mail_to = o.notify_to;
    n.mail_from = o.notify_from;
    n.url = o.notify_url;
    n.verify_tls = n.smtp_url.empty() && n.url.empty() ? true : verify_tls(o, Endpoint::notify);
    settings.episodes_state = !o.notify_state.empty() ? o.notify_state
                              : !state_path.empty()   ? state_path
                                                      : state::default_state_path();
    if (!n.smtp_url.empty()) {
        if (const char* password = std::getenv(k_smtp_password_env); password != nullptr) {
            n.smtp_password = password;
            util::register_secret(n.smtp_password);
        }
    }
    return settings;
}

} // namespace crmsync::cli
