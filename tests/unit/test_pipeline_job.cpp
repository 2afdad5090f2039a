#include "lib/pipeline/job.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using crmsync::Error;
using crmsync::ErrorKind;
namespace pipeline = crmsync::pipeline;

namespace {

class JobFixture {
public:
    JobFixture() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "crmsync-job-XXXXXX").string();
        m_dir = ::mkdtemp(pattern.data());
        settings.command = "test";
        settings.job = "JOB1";
        settings.summary_json = (std::filesystem::path(m_dir) / "summary.json").string();
    }
    ~JobFixture() {
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }

    nlohmann::json summary() const {
        std::ifstream in(settings.summary_json);
        return nlohmann::json::parse(in);
    }

    pipeline::JobSettings settings;

private:
    std::string m_dir;
};

// Runs the job; returns its exit code, or the kind of the error it rethrew.
struct Outcome {
    int exit_code = -1;
    std::optional<ErrorKind> thrown;
};

Outcome run(const pipeline::JobSettings& settings,
            const std::function<void(pipeline::JobRun&)>& work) {
    Outcome o;
    try {
        o.exit_code = pipeline::run_job(settings, work);
    } catch (const Error& e) {
        o.thrown = e.kind();
    }
    return o;
}

class CountingSink final : public pipeline::Sink {
public:
    bool lock() override { return true; }
    std::string description() const override { return "memory"; }
    void prepare(const std::vector<const crmsync::sql::Table*>& /*tables*/) override {}
    std::optional<std::string> load_checkpoint() override { return std::nullopt; }
    void add(const crmsync::sql::Table& /*table*/, crmsync::sql::Row /*row*/) override {}
    void reject(const std::string&, const std::string&, const std::string&,
                const std::string&) override {}
    std::size_t buffered() const override { return 0; }
    void commit(const std::optional<std::string>&, const std::string&) override {}
    Finished finish(pipeline::RunSummary& summary) override {
        ++finished;
        summary.counters.emplace_back("delivered", 1);
        return result;
    }
    int finished = 0;
    Finished result;
};

} // namespace

TEST_CASE("pipeline::run_job", "[unit]") {
    JobFixture f;

    SECTION("a run that did its work exits 0 and reports ok") {
        const auto o = run(f.settings, [](pipeline::JobRun& run) { run.summary().fetched = 5; });
        CHECK(o.exit_code == crmsync::k_exit_ok);
        CHECK(f.summary()["status"] == "ok");
        CHECK(f.summary()["fetched"] == 5);
        CHECK(f.summary()["command"] == "test");
        CHECK(f.summary()["job"] == "JOB1");
    }

    SECTION("rejects make the run partial: exit 3") {
        const auto o = run(f.settings, [](pipeline::JobRun& run) { run.summary().rejected = 1; });
        CHECK(o.exit_code == crmsync::k_exit_partial);
        CHECK(f.summary()["status"] == "partial");
    }

    SECTION("work left for the next run makes it partial: exit 3") {
        const auto o = run(f.settings, [](pipeline::JobRun& run) { run.set_partial(); });
        CHECK(o.exit_code == crmsync::k_exit_partial);
        CHECK(f.summary()["status"] == "partial");
    }

    SECTION("a failure is reported as failed, with its error, and rethrown") {
        const auto o = run(f.settings, [](pipeline::JobRun&) {
            throw Error(ErrorKind::connection, "the API went away");
        });
        CHECK(o.thrown == ErrorKind::connection);
        CHECK(f.summary()["status"] == "failed");
        CHECK(f.summary()["error"] == "the API went away");
    }

    SECTION("a held lock is reported as locked and rethrown (exit 4)") {
        const auto o = run(f.settings, [](pipeline::JobRun& run) {
            run.require_lock(false, "campaign X into memory");
        });
        CHECK(o.thrown == ErrorKind::locked);
        CHECK(crmsync::exit_code_for(*o.thrown) == crmsync::k_exit_locked);
        CHECK(f.summary()["status"] == "locked");
        CHECK(f.summary()["error"] == "another run of campaign X into memory holds the lock");
    }

    SECTION("an interruption is reported as interrupted and rethrown (exit 130)") {
        const auto o = run(f.settings, [](pipeline::JobRun&) {
            throw Error(ErrorKind::interrupted, "interrupted");
        });
        CHECK(o.thrown == ErrorKind::interrupted);
        CHECK(crmsync::exit_code_for(*o.thrown) == crmsync::k_exit_interrupted);
        CHECK(f.summary()["status"] == "interrupted");
    }
}

TEST_CASE("pipeline::sync_and_finish", "[unit]") {
    JobFixture f;
    CountingSink sink;

    SECTION("finishes the sink after a complete sync") {
        const auto o = run(f.settings, [&](pipeline::JobRun& run) {
            pipeline::sync_and_finish(run, sink, [] { return pipeline::Ending::complete; });
        });
        CHECK(o.exit_code == crmsync::k_exit_ok);
        CHECK(sink.finished == 1);
        CHECK(f.summary()["delivered"] == 1);
    }

    SECTION("out of time: finished, and partial") {
        const auto o = run(f.settings, [&](pipeline::JobRun& run) {
            pipeline::sync_and_finish(run, sink, [] { return pipeline::Ending::out_of_time; });
        });
        CHECK(o.exit_code == crmsync::k_exit_partial);
        CHECK(sink.finished == 1);
    }

    SECTION("work the sink left makes the run partial") {
        sink.result.complete = false;
        const auto o = run(f.settings, [&](pipeline::JobRun& run) {
            pipeline::sync_and_finish(run, sink, [] { return pipeline::Ending::complete; });
        });
        CHECK(o.exit_code == crmsync::k_exit_partial);
    }

    SECTION("a failing source still finishes the sink (deliveries go out), then fails") {
        const auto o = run(f.settings, [&](pipeline::JobRun& run) {
            pipeline::sync_and_finish(run, sink, []() -> pipeline::Ending {
                throw Error(ErrorKind::connection, "the API went away");
            });
        });
        CHECK(o.thrown == ErrorKind::connection);
        CHECK(sink.finished == 1);
        CHECK(f.summary()["status"] == "failed");
        CHECK(f.summary()["delivered"] == 1);
    }

    SECTION("an interrupted sync does not finish the sink") {
        const auto o = run(f.settings, [&](pipeline::JobRun& run) {
            pipeline::sync_and_finish(run, sink, [] { return pipeline::Ending::interrupted; });
        });
        CHECK(o.thrown == ErrorKind::interrupted);
        CHECK(sink.finished == 0);
        CHECK(f.summary()["status"] == "interrupted");
    }
}
