#include "cmd/run_jobs.hpp"

#include "cmd/config_file.hpp"
#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <map>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace crmsync::cli {
namespace {

// What one job may print before its output is cut (the rest is counted, not kept).
constexpr std::size_t k_max_output_bytes = 1 << 20;
constexpr int k_poll_interval_ms = 200;

struct Stream {
    int fd = -1;
    std::string text;
    std::size_t dropped = 0;
};

struct RunningJob {
    JobSpec spec;
    pid_t pid = -1;
    Stream out;
    Stream err;
    std::chrono::steady_clock::time_point started;
};

std::string self_executable() {
    std::string path(4096, '\0');
    const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
    if (n <= 0) {
        throw Error(ErrorKind::internal, "cannot find the crmsync executable (/proc/self/exe)");
    }
    path.resize(static_cast<std::size_t>(n));
    return path;
}

void close_fd(int& fd) {
    if (fd >= 0) {
        ::close(fd);
        fd = -1;
    }
}

RunningJob start_job(const std::string& executable, const JobSpec& spec) {
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        throw Error(ErrorKind::io, std::string("cannot create a pipe: ") + std::strerror(errno));
    }
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        const int e = errno;
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        throw Error(ErrorKind::io, std::string("cannot create a pipe: ") + std::strerror(e));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);

    std::vector<std::string> argv_text{executable};
    argv_text.insert(argv_text.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    for (auto& a : argv_text) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);

    RunningJob job;
    job.spec = spec;
    job.started = std::chrono::steady_clock::now();
    const int rc =
        ::posix_spawn(&job.pid, executable.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (rc != 0) {
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        throw Error(ErrorKind::io, "cannot start job '" + spec.name + "': " + std::strerror(rc));
    }
    job.out.fd = out_pipe[0];
    job.err.fd = err_pipe[0];
    return job;
}

// Reads what is there; closes the stream at its end.
void drain(Stream& stream) {
    char buffer[8192];
    const ssize_t n = ::read(stream.fd, buffer, sizeof buffer);
    if (n > 0) {
        const auto got = static_cast<std::size_t>(n);
        const std::size_t room =
            stream.text.size() < k_max_output_bytes ? k_max_output_bytes - stream.text.size() : 0;
        stream.text.append(buffer, std::min(room, got));
        stream.dropped += got - std::min(room, got);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(stream.fd);
    }
}

void print_prefixed(std::ostream& to, const std::string& name, const Stream& stream) {
    std::size_t at = 0;
    while (at < stream.text.size()) {
        auto end = stream.text.find('\n', at);
        if (end == std::string::npos) {
            end = stream.text.size();
        }
        to << '[' << name << "] " << std::string_view(stream.text).substr(at, end - at) << '\n';
        at = end + 1;
    }
    if (stream.dropped > 0) {
        to << '[' << name << "] (" << stream.dropped << " more bytes of output not shown)\n";
    }
    to.flush();
}

int exit_code_of(int wait_status) {
    if (WIFEXITED(wait_status)) {
        return WEXITSTATUS(wait_status);
    }
    if (WIFSIGNALED(wait_status)) {
        return 128 + WTERMSIG(wait_status);
    }
    return k_exit_failed;
}

std::string outcome_text(int code) {
    switch (code) {
    case k_exit_ok:
        return "ok";
    case k_exit_partial:
        return "partial (records rejected or work left for the next run)";
    case k_exit_locked:
        return "skipped: another run of this job still holds its lock";
    case k_exit_usage:
        return "configuration error";
    case k_exit_interrupted:
        return "interrupted";
    default:
        return code > 128 ? fmt::format("killed by signal {}", code - 128) : "failed";
    }
}

int severity(int code) {
    switch (code) {
    case k_exit_ok:
    case k_exit_locked:
        return 0;
    case k_exit_partial:
        return 1;
    default:
        return 2;
    }
}

} // namespace

std::vector<JobSpec> read_jobs_file(const std::string& path, const CommandCatalog& commands) {
    std::ifstream in(path);
    if (!in) {
        throw Error(ErrorKind::usage, "cannot read jobs file " + path + ": " + std::strerror(errno),
                    "crmsync run JOBS.toml: one [section] per job with command = \"...\"");
    }
    std::vector<CLI::ConfigItem> items;
    try {
        items = CLI::ConfigTOML().from_config(in);
    } catch (const CLI::Error& e) {
        throw Error(ErrorKind::usage, "jobs file " + path + ": " + e.what());
    }

    std::vector<CLI::ConfigItem> defaults;
    std::vector<std::string> order;
    std::map<std::string, std::vector<CLI::ConfigItem>> sections;
    for (auto& item : items) {
        if (item.parents.size() > 1) {
            throw Error(ErrorKind::usage,
                        "jobs file " + path + ": nested section [" + item.parents[0] + "." +
                            item.parents[1] + "]",
                        "one [name] section per job");
        }
        if (item.name == "++" || item.name == "--") {
            continue; // section open and close markers
        }
        refuse_secret_in_file(path, item.name, item.inputs);
        if (item.parents.empty()) {
            if (item.name == "command") {
                throw Error(ErrorKind::usage,
                            "jobs file " + path + ": 'command' above the first job",
                            "put command = \"...\" in each [job] section");
            }
            defaults.push_back(item);
            continue;
        }
        const auto& name = item.parents.front();
        if (!sections.count(name)) {
            order.push_back(name);
        }
        sections[name].push_back(item);
    }
    if (order.empty()) {
        throw Error(ErrorKind::usage, "jobs file " + path + " lists no jobs",
                    "one [name] section per job, with command = \"...\" and the command's flags");
    }

    std::vector<JobSpec> jobs;
    for (const auto& name : order) {
        const auto& job_items = sections[name];
        const auto command = std::find_if(job_items.begin(), job_items.end(),
                                          [](const auto& i) { return i.name == "command"; });
        if (command == job_items.end() || command->inputs.size() != 1) {
            throw Error(ErrorKind::usage,
                        "jobs file " + path + ": job [" + name + "] has no command",
                        "add command = \"db_sync\" (or another command) to the section");
        }
        const auto& command_name = command->inputs.front();
        if (command_name == "run" || !commands.exists(command_name)) {
            throw Error(ErrorKind::usage, "jobs file " + path + ": job [" + name +
                                              "] has an unknown command '" + command_name + "'");
        }
        JobSpec spec{name, {command_name}};
        std::vector<CLI::ConfigItem> flags;
        for (const auto& d : defaults) {
            const bool overridden = std::any_of(job_items.begin(), job_items.end(),
                                                [&](const auto& i) { return i.name == d.name; });
            if (!overridden && commands.takes_flag(command_name, d.name)) {
                flags.push_back(d);
            }
        }
        for (const auto& i : job_items) {
            if (i.name != "command") {
                flags.push_back(i);
            }
        }
        const auto args = items_to_arguments(flags);
        spec.args.insert(spec.args.end(), args.begin(), args.end());
        jobs.push_back(std::move(spec));
    }
    return jobs;
}

int worst_exit_code(const std::vector<int>& job_exit_codes) {
    int worst = k_exit_ok;
    for (const int code : job_exit_codes) {
        if (severity(code) > severity(worst)) {
            worst = code;
        }
    }
    return severity(worst) == 2 ? k_exit_failed
                                : (severity(worst) == 1 ? k_exit_partial : k_exit_ok);
}

void add_run_jobs(CLI::App& app, RunJobsOptions& o) {
    app.add_option("jobs_file", o.jobs_file,
                   "TOML file: one [name] section per job with command = \"...\" and its flags; "
                   "keys above the first section apply to every job")
        ->required();
    app.add_option("--jobs", o.jobs, "Run at most N jobs at once")->check(CLI::Range(1, 64));
}

int run_run_jobs(const RunJobsOptions& o, const CommandCatalog& commands) {
    const auto jobs = read_jobs_file(o.jobs_file, commands);
    const auto executable = self_executable();
    install_stop_signal_handlers();
    const auto t0 = std::chrono::steady_clock::now();

    std::vector<RunningJob> running;
    std::vector<int> codes;
    std::map<int, int> counts; // exit code -> jobs
    std::size_t next = 0;
    bool stopping = false;
    const auto seconds_since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };

    while ((!stopping && next < jobs.size()) || !running.empty()) {
        if (stop_requested() && !stopping) {
            stopping = true;
            for (const auto& r : running) {
                ::kill(r.pid, SIGTERM);
            }
        }
        while (!stopping && next < jobs.size() &&
               running.size() < static_cast<std::size_t>(o.jobs)) {
            running.push_back(start_job(executable, jobs[next++]));
        }
        std::vector<pollfd> fds;
        std::vector<Stream*> streams;
        for (auto& r : running) {
            for (Stream* s : {&r.out, &r.err}) {
                if (s->fd >= 0) {
                    fds.push_back({s->fd, POLLIN, 0});
                    streams.push_back(s);
                }
            }
        }
        if (!fds.empty() && ::poll(fds.data(), fds.size(), k_poll_interval_ms) > 0) {
            for (std::size_t i = 0; i < fds.size(); ++i) {
                if (fds[i].revents != 0) {
                    drain(*streams[i]);
                }
            }
        }
        for (auto it = running.begin(); it != running.end();) {
            if (it->out.fd >= 0 || it->err.fd >= 0) {
                ++it;
                continue;
            }
            int status = 0;
            while (::waitpid(it->pid, &status, 0) < 0 && errno == EINTR) {
            }
            const int code = exit_code_of(status);
            print_prefixed(std::cout, it->spec.name, it->out);
            print_prefixed(std::cerr, it->spec.name, it->err);
            std::cout << fmt::format("crmsync: run: {}: {} (exit {}) in {:.1f}s\n", it->spec.name,
                                     outcome_text(code), code, seconds_since(it->started));
            std::cout.flush();
            codes.push_back(code);
            ++counts[code];
            it = running.erase(it);
        }
    }

    const int not_started = static_cast<int>(jobs.size() - codes.size());
    const int failed = static_cast<int>(
        std::count_if(codes.begin(), codes.end(), [](int c) { return severity(c) == 2; }));
    std::cout << fmt::format(
        "crmsync: run {}: {} jobs in {:.1f}s: {} ok, {} partial, {} failed, {} skipped "
        "(locked){}\n",
        o.jobs_file, jobs.size(), seconds_since(t0), counts[k_exit_ok], counts[k_exit_partial],
        failed, counts[k_exit_locked],
        not_started > 0 ? fmt::format(", {} not started (interrupted)", not_started) : "");
    std::cout.flush();
    return stopping ? k_exit_interrupted : worst_exit_code(codes);
}

} // namespace crmsync::cli
