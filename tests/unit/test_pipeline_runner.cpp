#include "lib/pipeline/runner.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/pipeline/sink.hpp"
#include "lib/pipeline/source.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using crmsync::Error;
using crmsync::ErrorKind;
namespace pipeline = crmsync::pipeline;
namespace sql = crmsync::sql;

namespace {

// One scripted page: its record numbers and the checkpoint it carries.
struct Step {
    std::vector<int> records;
    std::optional<std::string> checkpoint;
    bool fail;         // next_page() throws instead of returning this page
    bool late = false; // next_page() waits until the source's `late_after` has passed first
};

Step page(std::vector<int> records, std::optional<std::string> checkpoint = std::nullopt) {
    return Step{std::move(records), std::move(checkpoint), false};
}

Step failure() { return Step{{}, std::nullopt, true}; }

// `step`, given only once the run's deadline (the source's late_after) has passed.
Step late(Step step) {
    step.late = true;
    return step;
}

class ScriptedSource final : public pipeline::Source {
public:
    explicit ScriptedSource(std::vector<Step> steps) : m_steps(std::move(steps)) {}

    void open(const std::optional<std::string>& checkpoint) override {
        opened_with = checkpoint;
        opened = true;
    }
    std::optional<pipeline::Page> next_page() override {
        if (m_next == m_steps.size()) {
            return std::nullopt;
        }
        const auto& step = m_steps[m_next++];
        ++pages_returned;
        if (delay.count() > 0) {
            std::this_thread::sleep_for(delay);
        }
        if (step.late) {
            std::this_thread::sleep_until(late_after + std::chrono::milliseconds(1));
        }
        if (step.fail) {
            throw Error(ErrorKind::connection, "the API went away");
        }
        pipeline::Page page;
        page.stream = "numbers";
        for (const int r : step.records) {
            page.records.emplace_back(r);
        }
        page.checkpoint = step.checkpoint;
        return page;
    }
    void report(pipeline::RunSummary& summary) const override {
        ++reports;
        summary.counters.emplace_back("pages", static_cast<long>(pages_returned.load()));
    }

    std::optional<std::string> opened_with;
    bool opened = false;
    std::atomic<std::size_t> pages_returned = 0; // read by the writer thread in some tests
    mutable int reports = 0;
    std::chrono::milliseconds delay{0};
    std::chrono::steady_clock::time_point late_after{};

private:
    std::vector<Step> m_steps;
    std::size_t m_next = 0;
};

// What was committed, commit by commit.
struct Commit {
    std::vector<int> rows; // all rows committed after this commit, in order
    std::optional<std::string> checkpoint;
    bool deferred = false; // Sink::commit_deferred: durable only with a later commit()
};

class RecordingSink final : public pipeline::Sink {
public:
    bool lock() override { return true; }
    std::string description() const override { return "memory"; }
    void prepare(const std::vector<const sql::Table*>& /*tables*/) override {}
    std::optional<std::string> load_checkpoint() override { return m_checkpoint; }

    void add(const sql::Table& /*table*/, sql::Row row) override {
        m_buffer.push_back(std::stoi(*row.at(0)));
    }
    void reject(const std::string& /*table*/, const std::string& key, const std::string& reason,
                const std::string& /*raw*/) override {
        m_pending_rejects.push_back(key + ": " + reason);
    }
    std::size_t buffered() const override { return m_buffer.size(); }
    void commit(const std::optional<std::string>& checkpoint,
                const std::string& /*progress*/) override {
        record(checkpoint, false);
    }
    void commit_deferred(const std::optional<std::string>& checkpoint,
                         const std::string& /*progress*/) override {
        record(checkpoint, true);
    }

    std::vector<int> durable() const { return m_durable; }
    std::optional<std::string> checkpoint() const { return m_checkpoint; }

    std::vector<Commit> commits;
    std::vector<std::string> rejects;
    std::optional<std::size_t> fail_on_commit;  // 1-based
    std::function<void(std::size_t)> on_commit; // called with the commit's number, 1-based

    void set_checkpoint(std::string c) { m_checkpoint = std::move(c); }

private:
    void record(const std::optional<std::string>& checkpoint, bool deferred) {
        if (on_commit) {
            on_commit(commits.size() + 1);
        }
        if (fail_on_commit && commits.size() + 1 == *fail_on_commit) {
            m_buffer.clear();
            m_pending_rejects.clear();
            throw Error(ErrorKind::io, "the disk is full");
        }
        m_durable.insert(m_durable.end(), m_buffer.begin(), m_buffer.end());
        m_buffer.clear();
        rejects.insert(rejects.end(), m_pending_rejects.begin(), m_pending_rejects.end());
        m_pending_rejects.clear();
        if (checkpoint) {
            m_checkpoint = checkpoint;
        }
        commits.push_back({m_durable, m_checkpoint, deferred});
    }

    std::vector<int> m_buffer;
    std::vector<int> m_durable;
    std::vector<std::string> m_pending_rejects;
    std::optional<std::string> m_checkpoint;
};

const sql::Table& numbers_table() {
    static const sql::Table table{"numbers", {{"n", sql::ColumnType::integer}}, "n", {}, {}, {}};
    return table;
}

// Negative numbers are "bad data": rejected with a reason.
pipeline::Transform numbers_transform(std::function<void(int)> on_record = {}) {
    return [on_record](const pipeline::Page& page, pipeline::Emitter& out,
                       pipeline::RunSummary& /*summary*/) {
        for (const auto& record : page.records) {
            const int n = record.get<int>();
            if (on_record) {
                on_record(n);
            }
            if (n < 0) {
                out.reject("numbers", std::to_string(n), "negative", record.dump());
            } else {
                out.add(numbers_table(), {std::to_string(n)});
            }
        }
    };
}

pipeline::RunnerOptions quiet(std::size_t batch_rows = 1000) {
    pipeline::RunnerOptions o;
    o.batch_rows = batch_rows;
    o.pages_ahead = 2;
    o.show_progress = false;
    return o;
}

// The checkpoint is "the number of pages covered" in these scripts: every commit that holds
// checkpoint c must hold every row of the first c pages.
void check_checkpoint_never_ahead(const RecordingSink& sink, const std::vector<Step>& steps) {
    for (const auto& commit : sink.commits) {
        if (!commit.checkpoint) {
            continue;
        }
        const auto covered = static_cast<std::size_t>(std::stoi(*commit.checkpoint));
        for (std::size_t i = 0; i < covered && i < steps.size(); ++i) {
            for (const int r : steps[i].records) {
                if (r < 0) {
                    continue;
                }
                INFO("checkpoint " << *commit.checkpoint << " without row " << r);
                CHECK(std::find(commit.rows.begin(), commit.rows.end(), r) != commit.rows.end());
            }
        }
    }
}

// A run's batches may be committed deferred, but it ends with a durable commit, which makes
// every commit before it durable as well.
void check_run_ends_durable(const RecordingSink& sink) {
    REQUIRE_FALSE(sink.commits.empty());
    CHECK_FALSE(sink.commits.back().deferred);
    for (std::size_t i = 0; i + 1 < sink.commits.size(); ++i) {
        CAPTURE(i);
        CHECK(sink.commits[i].deferred);
    }
}

struct StopFlagReset {
    ~StopFlagReset() { crmsync::stop_flag() = false; }
};

} // namespace

TEST_CASE("pipeline::Runner", "[unit]") {
    pipeline::RunSummary summary;
    summary.command = "test";
    RecordingSink sink;

    SECTION("commits each page that carries a checkpoint together with its rows") {
        const std::vector<Step> steps{page({1, 2}), page({3}, "2"), page({4})};
        ScriptedSource source(steps);
        const auto ending =
            pipeline::Runner(source, numbers_transform(), sink, summary, quiet()).run();
        CHECK(ending == pipeline::Ending::complete);
        REQUIRE(sink.commits.size() == 2);
        CHECK(sink.commits[0].rows == std::vector<int>{1, 2, 3});
        CHECK(sink.commits[0].checkpoint == "2");
        // The last page's rows are durable, the checkpoint stays where its page put it.
        CHECK(sink.commits[1].rows == std::vector<int>{1, 2, 3, 4});
        CHECK(sink.commits[1].checkpoint == "2");
        CHECK(summary.fetched == 4);
        CHECK(source.reports == 1);
        check_checkpoint_never_ahead(sink, steps);
        check_run_ends_durable(sink);
    }

    SECTION("opens the source at the sink's stored checkpoint") {
        sink.set_checkpoint("7");
        ScriptedSource source(std::vector<Step>{});
        pipeline::Runner(source, numbers_transform(), sink, summary, quiet()).run();
        CHECK(source.opened_with == "7");
        CHECK(sink.checkpoint() == "7");
    }

    SECTION("commits every batch_rows rows without moving the checkpoint") {
        const std::vector<Step> steps{page({1, 2}), page({3, 4}), page({5}), page({}, "3")};
        ScriptedSource source(steps);
        pipeline::Runner(source, numbers_transform(), sink, summary, quiet(2)).run();
        REQUIRE(sink.commits.size() >= 3);
        CHECK(sink.commits[0].rows == std::vector<int>{1, 2});
        CHECK_FALSE(sink.commits[0].checkpoint);
        CHECK(sink.commits[1].rows == std::vector<int>{1, 2, 3, 4});
        CHECK_FALSE(sink.commits[1].checkpoint);
        CHECK(sink.checkpoint() == "3");
        check_checkpoint_never_ahead(sink, steps);
        check_run_ends_durable(sink);
    }

    SECTION("keeps a rejected record with its reason and goes on") {
        ScriptedSource source({page({1, -2, 3}, "1")});
        const auto ending =
            pipeline::Runner(source, numbers_transform(), sink, summary, quiet()).run();
        CHECK(ending == pipeline::Ending::complete);
        CHECK(sink.durable() == std::vector<int>{1, 3});
        CHECK(sink.rejects == std::vector<std::string>{"-2: negative"});
    }

    SECTION("a failing source: pages before the failure are committed, its error is thrown") {
        const std::vector<Step> steps{page({1}, "1"), page({2}, "2"), failure(), page({3}, "3")};
        ScriptedSource source(steps);
        pipeline::Runner runner(source, numbers_transform(), sink, summary, quiet());
        try {
            runner.run();
            FAIL("no error thrown");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::connection);
        }
        CHECK(sink.durable() == std::vector<int>{1, 2});
        CHECK(sink.checkpoint() == "2");
        CHECK(source.reports == 1);
        check_checkpoint_never_ahead(sink, steps);
        check_run_ends_durable(sink);
    }

    SECTION("a failing sink: its error is thrown and the checkpoint stays at the last commit") {
        const std::vector<Step> steps{page({1}, "1"), page({2}, "2"), page({3}, "3")};
        ScriptedSource source(steps);
        sink.fail_on_commit = 2;
        pipeline::Runner runner(source, numbers_transform(), sink, summary, quiet());
        try {
            runner.run();
            FAIL("no error thrown");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::io);
        }
        CHECK(sink.durable() == std::vector<int>{1});
        CHECK(sink.checkpoint() == "1");
        CHECK(sink.commits.size() == 1);
        CHECK(source.reports == 1);
    }

    SECTION("a stop signal at any page commits the page in flight and ends interrupted") {
        StopFlagReset reset;
        const std::vector<Step> steps{page({1}, "1"), page({2}, "2"), page({3}, "3"),
                                      page({4}, "4")};
        for (int stop_at = 1; stop_at <= 4; ++stop_at) {
            CAPTURE(stop_at);
            crmsync::stop_flag() = false;
            RecordingSink fresh;
            ScriptedSource source(steps);
            const auto ending = pipeline::Runner(source, numbers_transform([stop_at](int n) {
                                                     if (n == stop_at) {
                                                         crmsync::stop_flag() = true;
                                                     }
                                                 }),
                                                 fresh, summary, quiet())
                                    .run();
            CHECK(ending == pipeline::Ending::interrupted);
            // The page being written when the signal came is committed, nothing after it.
            std::vector<int> expected;
            for (int i = 1; i <= stop_at; ++i) {
                expected.push_back(i);
            }
            CHECK(fresh.durable() == expected);
            CHECK(fresh.checkpoint() == std::to_string(stop_at));
            check_checkpoint_never_ahead(fresh, steps);
            check_run_ends_durable(fresh);
        }
    }

    SECTION("a stop signal before the first page fetches nothing") {
        StopFlagReset reset;
        crmsync::stop_flag() = true;
        ScriptedSource source({page({1}, "1")});
        const auto ending =
            pipeline::Runner(source, numbers_transform(), sink, summary, quiet()).run();
        CHECK(ending == pipeline::Ending::interrupted);
        CHECK(source.pages_returned == 0);
        CHECK(sink.durable().empty());
        CHECK_FALSE(sink.checkpoint());
    }

    SECTION("a deadline already past fetches nothing and ends out of time") {
        auto options = quiet();
        options.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
        ScriptedSource source({page({1}, "1")});
        const auto ending =
            pipeline::Runner(source, numbers_transform(), sink, summary, options).run();
        CHECK(ending == pipeline::Ending::out_of_time);
        CHECK(source.pages_returned == 0);
        CHECK_FALSE(sink.checkpoint());
    }

    SECTION("a deadline reached mid-run keeps what was committed and leaves the rest") {
        std::vector<Step> steps;
        for (int i = 1; i <= 50; ++i) {
            steps.push_back(page({i}, std::to_string(i)));
        }
        auto options = quiet();
        options.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
        ScriptedSource source(steps);
        source.delay = std::chrono::milliseconds(20);
        const auto ending =
            pipeline::Runner(source, numbers_transform(), sink, summary, options).run();
        CHECK(ending == pipeline::Ending::out_of_time);
        CHECK(source.pages_returned < 50);
        REQUIRE(sink.checkpoint());
        const auto covered = std::stoi(*sink.checkpoint());
        CHECK(static_cast<std::size_t>(covered) == sink.durable().size());
        check_checkpoint_never_ahead(sink, steps);
    }
}

TEST_CASE("pipeline::Runner with a source failing after the deadline", "[unit]") {
    pipeline::RunSummary summary;
    RecordingSink sink;
    auto options = quiet();
    // The first page comes at once, well before the deadline; the failure waits for it to pass
    // (fixed delays per page made the order depend on the machine's load).
    options.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);

    SECTION("ends out of time, not failed, keeping the committed pages") {
        ScriptedSource source({page({1}, "1"), late(failure())});
        source.late_after = *options.deadline;
        const auto ending =
            pipeline::Runner(source, numbers_transform(), sink, summary, options).run();
        CHECK(ending == pipeline::Ending::out_of_time);
        CHECK(source.pages_returned == 2); // the failure came after the deadline
        CHECK(sink.durable() == std::vector<int>{1});
        CHECK(sink.checkpoint() == "1");
        check_run_ends_durable(sink);
    }

    SECTION("a failure before the deadline is still a failure") {
        options.deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
        ScriptedSource source({page({1}, "1"), failure()});
        pipeline::Runner runner(source, numbers_transform(), sink, summary, options);
        CHECK_THROWS_AS(runner.run(), Error);
        CHECK(sink.checkpoint() == "1");
    }
}

TEST_CASE("pipeline::Runner with the transform running ahead on the fetch thread", "[unit]") {
    pipeline::RunSummary summary;
    RecordingSink sink;
    auto options = quiet(2);
    options.transform_ahead = true;
    const std::vector<Step> steps{page({1, -2}), page({3}, "2"), page({4, 5}), page({}, "4"),
                                  page({6})};

    SECTION("the same commits, rows, rejects and checkpoints as the transform inline") {
        ScriptedSource inline_source(steps);
        RecordingSink inline_sink;
        pipeline::RunSummary inline_summary;
        CHECK(pipeline::Runner(inline_source, numbers_transform(), inline_sink, inline_summary,
                               quiet(2))
                  .run() == pipeline::Ending::complete);

        ScriptedSource source(steps);
        const auto caller = std::this_thread::get_id();
        std::vector<std::thread::id> ran_on;
        const auto ending = pipeline::Runner(source, numbers_transform([&](int) {
                                                 ran_on.push_back(std::this_thread::get_id());
                                             }),
                                             sink, summary, options)
                                .run();
        CHECK(ending == pipeline::Ending::complete);
        REQUIRE(sink.commits.size() == inline_sink.commits.size());
        for (std::size_t i = 0; i < sink.commits.size(); ++i) {
            CAPTURE(i);
            CHECK(sink.commits[i].rows == inline_sink.commits[i].rows);
            CHECK(sink.commits[i].checkpoint == inline_sink.commits[i].checkpoint);
        }
        CHECK(sink.rejects == std::vector<std::string>{"-2: negative"});
        CHECK(sink.rejects == inline_sink.rejects);
        CHECK(summary.fetched == inline_summary.fetched);
        CHECK(source.reports == 1);
        REQUIRE(ran_on.size() == 6);
        for (const auto& id : ran_on) {
            CHECK(id != caller);
        }
        check_checkpoint_never_ahead(sink, steps);
    }

    SECTION("while a batch commits the next one is fetched whole, however few rows a page has") {
        // 40 pages of one row, batches of 10 rows, 2 pages ahead: during the first commit
        // (after 10 pages) the fetch thread must get 10 pages further, not stop at 2.
        std::vector<Step> single_rows;
        for (int n = 1; n <= 40; ++n) {
            single_rows.push_back(page({n}));
        }
        ScriptedSource source(single_rows);
        options.batch_rows = 10;
        std::size_t fetched_during_first_commit = 0;
        sink.on_commit = [&](std::size_t number) {
            if (number != 1) {
                return;
            }
            // Not a timing test: the wait ends as soon as the pages are there; the limit only
            // keeps a regression from hanging the suite.
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            while (source.pages_returned < 20 && std::chrono::steady_clock::now() < give_up) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            fetched_during_first_commit = source.pages_returned;
        };
        CHECK(pipeline::Runner(source, numbers_transform(), sink, summary, options).run() ==
              pipeline::Ending::complete);
        CHECK(fetched_during_first_commit >= 20);
        REQUIRE(sink.commits.size() >= 4);
        CHECK(sink.commits[0].rows.size() == 10);
        CHECK(sink.durable().size() == 40);
    }

    SECTION("the transform's counters count the committed pages") {
        ScriptedSource source(steps);
        long seen = 0;
        const auto counting = [&seen](const pipeline::Page& page, pipeline::Emitter& out,
                                      pipeline::RunSummary& s) {
            numbers_transform()(page, out, s);
            seen += static_cast<long>(page.records.size());
            s.filtered = seen;
            s.in_progress = 2 * seen;
        };
        pipeline::Runner(source, counting, sink, summary, options).run();
        CHECK(summary.filtered == 6);
        CHECK(summary.in_progress == 12);
    }

    SECTION("a throwing transform: the pages before it are committed, its error is thrown") {
        ScriptedSource source(steps);
        const auto throwing = numbers_transform([](int n) {
            if (n == 4) {
                throw Error(ErrorKind::internal, "the transform broke");
            }
        });
        pipeline::Runner runner(source, throwing, sink, summary, options);
        try {
            runner.run();
            FAIL("no error thrown");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::internal);
        }
        CHECK(sink.durable() == std::vector<int>{1, 3});
        CHECK(sink.checkpoint() == "2");
        CHECK(sink.rejects == std::vector<std::string>{"-2: negative"});
        check_checkpoint_never_ahead(sink, steps);
    }

    SECTION("a throwing transform fails the run even after the deadline") {
        options.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
        ScriptedSource source({page({1}, "1"), late(page({2}, "2"))});
        source.late_after = *options.deadline;
        const auto throwing = numbers_transform([](int n) {
            if (n == 2) {
                throw Error(ErrorKind::internal, "the transform broke");
            }
        });
        pipeline::Runner runner(source, throwing, sink, summary, options);
        CHECK_THROWS_AS(runner.run(), Error);
        CHECK(sink.checkpoint() == "1");
    }

    SECTION("a failing source: pages before the failure are committed, its error is thrown") {
        const std::vector<Step> failing{page({1}, "1"), page({2}, "2"), failure(), page({3})};
        ScriptedSource source(failing);
        pipeline::Runner runner(source, numbers_transform(), sink, summary, options);
        CHECK_THROWS_AS(runner.run(), Error);
        CHECK(sink.durable() == std::vector<int>{1, 2});
        CHECK(sink.checkpoint() == "2");
    }

    SECTION("a stop signal: what is committed is a prefix, the checkpoint never ahead of it") {
        StopFlagReset reset;
        std::vector<Step> numbered;
        for (int i = 1; i <= 6; ++i) {
            numbered.push_back(page({i}, std::to_string(i)));
        }
        for (int stop_at = 1; stop_at <= 6; ++stop_at) {
            CAPTURE(stop_at);
            crmsync::stop_flag() = false;
            RecordingSink fresh;
            ScriptedSource source(numbered);
            const auto ending = pipeline::Runner(source, numbers_transform([stop_at](int n) {
                                                     if (n == stop_at) {
                                                         crmsync::stop_flag() = true;
                                                     }
                                                 }),
                                                 fresh, summary, options)
                                    .run();
            CHECK(ending == pipeline::Ending::interrupted);
            // Pages transformed ahead but not yet written when the signal came are left for the
            // next run; what was written is whole and in order.
            const auto durable = fresh.durable();
            CHECK(durable.size() <= static_cast<std::size_t>(stop_at));
            for (std::size_t i = 0; i < durable.size(); ++i) {
                CHECK(durable[i] == static_cast<int>(i) + 1);
            }
            CHECK(source.pages_returned <= static_cast<std::size_t>(stop_at));
            check_checkpoint_never_ahead(fresh, numbered);
            if (fresh.checkpoint()) {
                CHECK(*fresh.checkpoint() == std::to_string(durable.size()));
            }
        }
    }
}
