#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace crmsync::cli {

// `crmsync run JOBS.toml [--jobs N]`: many jobs from one cron line.
struct RunJobsOptions {
    std::string jobs_file;
    int jobs = 4; // at most this many at once
};

// One job of a jobs file: its section name and the command line it runs (without argv[0]).
struct JobSpec {
    std::string name;
    std::vector<std::string> args; // {"db_sync", "--campaign=ABC", ...}
};

// What a jobs file is checked against: the command table of cmd/cli.cpp.
struct CommandCatalog {
    std::function<bool(const std::string& command)> exists;
    // Whether `command` has the long flag `--<flag>` (defaults go only to jobs that take them).
    std::function<bool(const std::string& command, const std::string& flag)> takes_flag;
};

// Reads a jobs file: one TOML section per job with `command = "..."` and the command's flags
// (long names without "--"); keys above the first section apply to every job that does not set
// them (and whose command has that flag). Throws Error(usage) for a missing or unreadable file, a
// job without a known command, nested sections, or a secret in the file (see
// refuse_secret_in_file).
std::vector<JobSpec> read_jobs_file(const std::string& path, const CommandCatalog& commands);

// The exit code of `crmsync run` from its jobs' codes: the worst of ok (0, and 4: a job still
// running from the last time is skipped, not an error) < partial (3) < failed (1); a job's
// usage error (2) counts as failed, since the other jobs did run.
int worst_exit_code(const std::vector<int>& job_exit_codes);

void add_run_jobs(CLI::App& app, RunJobsOptions& options);
// Starts each job as a child crmsync process (its own lock, log and summary), at most
// options.jobs at once, prints each job's output (prefixed with its name) when it ends and one
// line per job, then a total line. SIGINT/SIGTERM are passed on to running jobs.
int run_run_jobs(const RunJobsOptions& options, const CommandCatalog& commands);

} // namespace crmsync::cli
