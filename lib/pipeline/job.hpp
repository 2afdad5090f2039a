#pragma once

#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/notify/notifier.hpp"
#include "lib/pipeline/runner.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/pipeline/summary.hpp"

#include <functional>
#include <string>
#include <vector>

namespace crmsync::pipeline {

// Everything run_job needs to know about a job besides its work.
struct JobSettings {
    std::string command;            // "db_sync": the summary's command and the log file's mode part
    std::string job;                // "DEMO0000CAMPAIGN": the summary's job
    std::string log_job;            // the log file's job part (default: job)
    log::LogOptions log;            // log.file empty: no log file
    std::string summary_json;       // --summary-json FILE, "" = none
    std::string notify_job;         // how notices name the job (default: the summary's job)
    notify::NotifierOptions notify; // no smtp_url and no url: no notices
    std::string episodes_state;     // the state file keeping the job's error episodes
    // false: no summary line on stdout (it belongs to the command's output); --summary-json
    // is still written.
    bool print_summary = true;
    // Which errors are an outcome of the job (summary, notice). Others (e.g. an unknown
    // account found only at run time) are rethrown as they are, with no summary and no
    // notice. Default: every error.
    std::function<bool(const Error&)> is_outcome;
};

// The running job as its work sees it.
class JobRun {
public:
    explicit JobRun(RunSummary& summary) : m_summary(summary) {}

    RunSummary& summary() { return m_summary; }
    // Throws Error(locked) naming `what` ("campaign X into Y") unless `acquired`.
    void require_lock(bool acquired, const std::string& what) const;
    // The run is done but left work or records behind (exit 3) even without rejects.
    void set_partial() { m_partial = true; }
    bool partial() const { return m_partial; }
    // The run's outcome counts as an error episode for notices (e.g. a receiver that refused
    // every delivery) even if it does not fail; `message` says what happened. When the run
    // fails, the notice says `message` instead of the error line. (A summary.error set before
    // a throw is kept as the summary's error too.)
    void set_notice_error(std::string message) { m_notice_error = std::move(message); }
    const std::string& notice_error() const { return m_notice_error; }
    // The run's outcome says nothing about the job's health (nothing was due): no notice.
    void set_no_notice() { m_no_notice = true; }
    bool no_notice() const { return m_no_notice; }

private:
    RunSummary& m_summary;
    bool m_partial = false;
    bool m_no_notice = false;
    std::string m_notice_error;
};

// The lifecycle of every job, written once: opens the log, installs the stop signal
// handlers, runs `work`, then in every ending (done, partial, failed, interrupted, locked)
// prints the one summary line, writes --summary-json, records the outcome in the job's error
// episode (one notice when failing starts, one when it ends; locked and interrupted runs say
// nothing) and returns the exit code: 0 done, 3 partial or rejects, 4 locked. A failure or an
// interruption is rethrown after the summary (cli::run prints the one error line and maps
// the kind to 1 or 130).
int run_job(const JobSettings& settings, const std::function<void(JobRun&)>& work);

// The common ending of a sync job inside run_job: runs `sync` (a driver's Runner), then the
// sink's finish() (an outbox delivers what is pending, also after a failing source), and turns
// the Ending into the job's status: out of time or work left -> partial; interrupted ->
// Error(interrupted). Rethrows the sync's Error after finish().
void sync_and_finish(JobRun& run, Sink& sink, const std::function<Ending()>& sync);

} // namespace crmsync::pipeline
