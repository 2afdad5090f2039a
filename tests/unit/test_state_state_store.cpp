#include "lib/state/state_store.hpp"
#include "tests/support/temp_dir.hpp"

#include "lib/core/error.hpp"
#include "lib/state/episodes.hpp"
#include "lib/state/open_file.hpp"
#include "lib/state/outbox.hpp"

#include <SQLiteCpp/Database.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>

using namespace crmsync;
namespace fs = std::filesystem;

namespace {

using crmsync::testing::TempState;

// Runs `child` in a forked process (another process, as a second cron run would be) and
// returns its exit code.
int in_child(const std::function<int()>& child) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int code = 99;
        try {
            code = child();
        } catch (...) {
            code = 98;
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

// 0 when another process could take the job's lock on the file at `path`, 1 when not.
int lock_in_child(const std::string& path, const std::string& job) {
    return in_child([&] { return state::StateStore(path).try_lock_job(job) ? 0 : 1; });
}

// The Error that `body` throws; fails the test when it throws none.
Error error_of(const std::function<void()>& body) {
    try {
        body();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no crmsync::Error thrown");
    return Error(ErrorKind::internal, "");
}

state::Delivery delivery(int n, std::size_t body_size) {
    state::Delivery d;
    d.id = "delivery-" + std::to_string(n);
    d.job = "job";
    d.group_key = "contact";
    d.order_key = std::to_string(n);
    d.event = "new";
    d.body = std::string(body_size, 'x');
    return d;
}

} // namespace

TEST_CASE("state::StateStore job locks", "[unit]") {
    TempState temp;

    SECTION("another process cannot take a lock this process holds") {
        state::StateStore store(temp.path());
        REQUIRE(store.try_lock_job("job"));
        CHECK(lock_in_child(temp.path(), "job") == 1);
        CHECK(lock_in_child(temp.path(), "other job") == 0);
    }
    SECTION("a second store on the same path keeps the first one's lock when it closes") {
        state::StateStore first(temp.path());
        REQUIRE(first.try_lock_job("job"));
        {
            state::StateStore second(temp.path());
            CHECK(&second.file() == &first.file());
            CHECK(second.try_lock_job("job"));
            CHECK(second.checkpoint("job") == std::nullopt);
        }
        CHECK(lock_in_child(temp.path(), "job") == 1);
        first.set_checkpoint("job", "c1");
        CHECK(first.checkpoint("job") == "c1");
    }
    SECTION("the lock goes when the last store of the file closes") {
        {
            state::StateStore store(temp.path());
            REQUIRE(store.try_lock_job("job"));
        }
        CHECK(lock_in_child(temp.path(), "job") == 0);
    }
    SECTION("a lock taken on a later job keeps the earlier one") {
        state::StateStore store(temp.path());
        REQUIRE(store.try_lock_job("a"));
        REQUIRE(store.try_lock_job("b"));
        CHECK(lock_in_child(temp.path(), "a") == 1);
        CHECK(lock_in_child(temp.path(), "b") == 1);
    }
    SECTION("a symlinked path is the same file: same connection, same lock") {
        const state::StateStore creator(temp.path());
        const fs::path other = temp.dir / "elsewhere";
        fs::create_directory(other);
        const fs::path link = other / "link.db";
        fs::create_symlink(temp.path(), link);
        state::StateStore by_link(link.string());
        REQUIRE(by_link.try_lock_job("job"));
        CHECK(&by_link.file() == &const_cast<state::StateStore&>(creator).file());
        CHECK(lock_in_child(temp.path(), "job") == 1);
        CHECK(lock_in_child(link.string(), "job") == 1);
    }
}

TEST_CASE("state::StateStore errors", "[unit]") {
    TempState temp;

    SECTION("a full disk is an io error that says so and how to fix it") {
        state::StateStore store(temp.path());
        auto& db = state::detail::connection(store);
        const int pages = db.execAndGet("PRAGMA page_count").getInt();
        db.exec("PRAGMA max_page_count = " + std::to_string(pages + 8));
        state::Outbox outbox(store);
        const Error e = error_of([&] {
            for (int n = 0; n < 1000; ++n) {
                outbox.enqueue(delivery(n, 4000));
            }
        });
        CHECK(e.kind() == ErrorKind::io);
        CHECK(std::string(e.what()).find("no space left") != std::string::npos);
        CHECK(e.hint().find("free disk space or move --state") != std::string::npos);
    }
    SECTION("a full disk inside a transaction is an io error too") {
        state::StateStore store(temp.path());
        auto& db = state::detail::connection(store);
        const int pages = db.execAndGet("PRAGMA page_count").getInt();
        db.exec("PRAGMA max_page_count = " + std::to_string(pages + 8));
        const Error e = error_of([&] {
            state::Transaction transaction(store);
            state::Ledger ledger(store);
            for (int n = 0; n < 10000; ++n) {
                ledger.record("job", std::string(500, 'k') + std::to_string(n), "md5", 1, "id");
            }
            transaction.commit();
        });
        CHECK(e.kind() == ErrorKind::io);
        CHECK(std::string(e.what()).find("no space left") != std::string::npos);
    }
    SECTION("a file of garbage is reported as corrupt") {
        {
            std::ofstream garbage(temp.path(), std::ios::binary);
            for (int i = 0; i < 4096; ++i) {
                garbage.put(static_cast<char>('A' + i % 23));
            }
        }
        const Error e = error_of([&] { state::StateStore store(temp.path()); });
        CHECK(e.kind() == ErrorKind::io);
        CHECK(std::string(e.what()).find("corrupt") != std::string::npos);
        CHECK_FALSE(e.hint().empty());
    }
    SECTION("a file another connection writes to is reported as held by another process") {
        state::StateStore store(temp.path());
        state::detail::connection(store).setBusyTimeout(50);
        SQLite::Database other(temp.path(), SQLite::OPEN_READWRITE);
        other.exec("BEGIN IMMEDIATE");
        const Error e = error_of([&] { state::Transaction transaction(store); });
        CHECK(e.kind() == ErrorKind::io);
        CHECK(std::string(e.what()).find("another process holds it") != std::string::npos);
        other.exec("ROLLBACK");
    }
    SECTION("no error ever names a bug in crmsync") {
        state::StateStore store(temp.path());
        state::detail::connection(store).exec("DROP TABLE outbox");
        const Error e = error_of([&] { state::Outbox(store).counts("job"); });
        CHECK(e.kind() == ErrorKind::io);
    }
}

TEST_CASE("state::Transaction", "[unit]") {
    TempState temp;
    state::StateStore store(temp.path());

    SECTION("takes the write lock at once (IMMEDIATE)") {
        state::Transaction transaction(store);
        SQLite::Database other(temp.path(), SQLite::OPEN_READWRITE);
        other.setBusyTimeout(0);
        CHECK_THROWS_AS(other.exec("BEGIN IMMEDIATE"), SQLite::Exception);
    }
    SECTION("rolls back unless committed") {
        {
            state::Transaction transaction(store);
            store.set_checkpoint("job", "c1");
        }
        CHECK_FALSE(store.checkpoint("job").has_value());
        {
            state::Transaction transaction(store);
            store.set_checkpoint("job", "c2");
            transaction.commit();
        }
        CHECK(store.checkpoint("job") == "c2");
    }
}

TEST_CASE("state::StateStore::jobs", "[unit]") {
    TempState temp;
    state::StateStore store(temp.path());
    CHECK(store.jobs().empty());
    store.set_checkpoint("b", "1");
    state::Outbox(store).enqueue(delivery(1, 10)); // job "job"
    store.set_checkpoint("job", "2");
    CHECK(store.jobs() == std::vector<std::string>{"b", "job"});
}

TEST_CASE("state::EpisodeTable", "[unit]") {
    TempState temp;
    state::StateStore store(temp.path());
    state::EpisodeTable episodes(store);
    CHECK_FALSE(episodes.get("job").has_value());
    state::EpisodeRow row;
    row.job = "job";
    row.command = "webhook";
    row.is_error = true;
    row.error_since = "2024-01-01T00:00:00Z";
    row.failures = 2;
    row.last_error = "refused";
    row.error_sent = "smtp,url";
    episodes.put(row);
    const auto back = episodes.get("job");
    REQUIRE(back.has_value());
    CHECK(back->is_error);
    CHECK(back->error_since == "2024-01-01T00:00:00Z");
    CHECK(back->last_failure.empty());
    CHECK(back->failures == 2);
    CHECK(back->error_sent == "smtp,url");
    CHECK(episodes.list().size() == 1);
}

TEST_CASE("state::StateStore page size", "[unit]") {
    TempState temp;
    const auto page_size = [&] {
        SQLite::Database db(temp.path(), SQLite::OPEN_READONLY);
        return db.execAndGet("PRAGMA page_size").getInt();
    };

    SECTION("a new state file gets 16 KB pages") {
        {
            state::StateStore store(temp.path());
            state::Outbox(store).enqueue(delivery(1, 3000));
        }
        CHECK(page_size() == 16384);
    }
    SECTION("a file made with 4 KB pages keeps them and its contents") {
        {
            SQLite::Database db(temp.path(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db.exec("PRAGMA page_size = 4096");
            db.exec("PRAGMA journal_mode = WAL");
            db.exec("CREATE TABLE kept (v TEXT)");
            db.exec("INSERT INTO kept VALUES ('before')");
        }
        {
            state::StateStore store(temp.path());
            store.set_checkpoint("job", "c1");
            state::Outbox(store).enqueue(delivery(1, 3000));
        }
        CHECK(page_size() == 4096);
        SQLite::Database db(temp.path(), SQLite::OPEN_READONLY);
        CHECK(db.execAndGet("SELECT v FROM kept").getString() == "before");
        state::StateStore store(temp.path());
        CHECK(store.checkpoint("job") == "c1");
    }
}
