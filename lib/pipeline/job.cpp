#include "lib/pipeline/job.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/notify/episodes.hpp"
#include "lib/notify/notifier.hpp"
#include "lib/state/state_store.hpp"
#include "lib/util/redact.hpp"

#include <chrono>
#include <iostream>

namespace crmsync::pipeline {
namespace {

// Prints the summary line (stdout) and writes --summary-json; never throws.
void report(const JobSettings& settings, const RunSummary& summary) {
    if (settings.print_summary) {
        std::cout << "crmsync: " << summary.to_line() << std::endl;
    }
    log::info("summary: {}", summary.to_line());
    if (!settings.summary_json.empty()) {
        try {
            write_summary_file(summary, settings.summary_json);
        } catch (const Error& e) {
            std::cerr << "crmsync: warning: " << util::redact(e.what()) << std::endl;
        }
    }
}

// Records the run's outcome in the job's error episode and sends what that calls for. Never
// throws: a notice that cannot be sent is logged, printed as a warning and tried again by the
// next run; the exit code stays the same.
void notify_outcome(const JobSettings& settings, const RunSummary& summary, bool ok,
                    const std::string& error) {
    if (settings.notify.smtp_url.empty() && settings.notify.url.empty()) {
        return;
    }
    try {
        notify::Notifier notifier(settings.notify);
        state::StateStore store(settings.episodes_state.empty() ? state::default_state_path()
                                                                : settings.episodes_state);
        notify::RunOutcome outcome;
        outcome.command = settings.command;
        outcome.job = settings.notify_job.empty() ? summary.job : settings.notify_job;
        outcome.ok = ok;
        outcome.error = error;
        const auto result = notify::record_outcome(
            store, notifier.channels(),
            [&notifier](const notify::Notice& notice, notify::Channel channel) {
                return notifier.send(notice, channel);
            },
            outcome);
        for (const auto& failure : result.failures) {
            std::cerr << "crmsync: warning: a notification could not be sent (" +
                             util::redact(failure) + "); the next run tries again\n";
        }
    } catch (const std::exception& e) {
        log::warn("error notifications: {}", e.what());
        std::cerr << "crmsync: warning: error notifications: " + util::redact(e.what()) + "\n";
    }
}

RunStatus status_of(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::interrupted:
        return RunStatus::interrupted;
    case ErrorKind::locked:
        return RunStatus::locked;
    default:
        return RunStatus::failed;
    }
}

} // namespace

void JobRun::require_lock(bool acquired, const std::string& what) const {
    if (!acquired) {
        throw Error(ErrorKind::locked, "another run of " + what + " holds the lock",
                    "nothing to do: that run will finish the work");
    }
}

namespace {

void apply(JobRun& run, const Sink::Finished& finished) {
    if (!finished.complete) {
        run.set_partial();
    }
    if (!finished.notice_error.empty()) {
        run.set_notice_error(finished.notice_error);
    }
    if (finished.no_notice) {
        run.set_no_notice();
    }
}

Error interrupted() {
    return Error(ErrorKind::interrupted, "interrupted; everything fetched so far was committed",
                 "run again to continue from the checkpoint");
}

} // namespace

void sync_and_finish(JobRun& run, Sink& sink, const std::function<Ending()>& sync) {
    Ending ending = Ending::complete;
    try {
        ending = sync();
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::interrupted && !stop_requested()) {
            // What is already committed still goes out; the source is retried by the next run.
            log::error("{}", e.describe());
            try {
                apply(run, sink.finish(run.summary()));
            } catch (const Error& later) {
                log::error("{}", later.describe());
            }
        }
        throw;
    }
    if (ending == Ending::interrupted) {
        throw interrupted();
    }
    apply(run, sink.finish(run.summary()));
    if (ending == Ending::out_of_time) {
        run.set_partial();
    }
    if (stop_requested()) {
        throw interrupted();
    }
}

int run_job(const JobSettings& settings, const std::function<void(JobRun&)>& work) {
    install_stop_signal_handlers();
    log::init(settings.log);
    RunSummary summary;
    summary.command = settings.command;
    summary.job = settings.job;
    JobRun run(summary);
    const auto started = std::chrono::steady_clock::now();
    const auto finish = [&](RunStatus status) {
        summary.status = status;
        summary.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        report(settings, summary);
    };
    try {
        work(run);
    } catch (const Error& e) {
        if (settings.is_outcome && !settings.is_outcome(e)) {
            throw;
        }
        if (summary.error.empty()) {
            summary.error = e.describe();
        }
        finish(status_of(e.kind()));
        if (summary.status == RunStatus::failed) {
            notify_outcome(settings, summary, false,
                           run.notice_error().empty() ? e.describe() : run.notice_error());
        }
        throw;
    } catch (const std::exception& e) {
        summary.error = e.what();
        finish(RunStatus::failed);
        notify_outcome(settings, summary, false, summary.error);
        throw;
    }
    const bool partial = run.partial() || summary.rejected > 0;
    finish(partial ? RunStatus::partial : RunStatus::ok);
    if (!run.notice_error().empty()) {
        notify_outcome(settings, summary, false, run.notice_error());
    } else if (!run.no_notice()) {
        notify_outcome(settings, summary, true, "");
    }
    return partial ? k_exit_partial : k_exit_ok;
}

} // namespace crmsync::pipeline
