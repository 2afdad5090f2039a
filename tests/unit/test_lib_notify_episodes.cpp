#include "lib/notify/episodes.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <unistd.h>

using namespace crmsync;
using notify::Channel;
using notify::Notice;
namespace fs = std::filesystem;

namespace {

using crmsync::testing::TempState;

// Records what would have been sent; a channel can be made to fail.
struct Recorder {
    std::vector<std::pair<Channel, Notice>> sent;
    std::map<Channel, bool> down;

    notify::SendFunction function() {
        return [this](const Notice& notice, Channel channel) {
            if (down[channel]) {
                return notify::SendResult{false, "connection refused"};
            }
            sent.emplace_back(channel, notice);
            return notify::SendResult{true, {}};
        };
    }
    long count(Notice::Kind kind, Channel channel = Channel::smtp) const {
        return std::count_if(sent.begin(), sent.end(), [&](const auto& s) {
            return s.first == channel && s.second.kind == kind;
        });
    }
};

notify::RunOutcome run(bool ok, const std::string& error = {}, const std::string& job = "job-1") {
    notify::RunOutcome o;
    o.command = "db_sync";
    o.job = job;
    o.ok = ok;
    o.error = error;
    o.host = "host-1";
    return o;
}

} // namespace

TEST_CASE("notify::record_outcome", "[unit]") {
    TempState temp;
    state::StateStore store(temp.path());
    Recorder recorder;
    const auto send = recorder.function();
    const std::vector<Channel> smtp{Channel::smtp};
    const std::vector<Channel> both{Channel::smtp, Channel::url};

    SECTION("three failures in a row send one error notice; the next success one recovered") {
        notify::record_outcome(store, smtp, send, run(false, "connection refused"));
        notify::record_outcome(store, smtp, send, run(false, "connection refused again"));
        notify::record_outcome(store, smtp, send, run(false, "still refused"));
        CHECK(recorder.count(Notice::Kind::error) == 1);
        CHECK(recorder.count(Notice::Kind::recovered) == 0);
        REQUIRE(recorder.sent.size() == 1);
        CHECK(recorder.sent[0].second.error == "connection refused");
        CHECK(recorder.sent[0].second.failures == 1);
        CHECK(recorder.sent[0].second.host == "host-1");

        notify::record_outcome(store, smtp, send, run(true));
        CHECK(recorder.count(Notice::Kind::recovered) == 1);
        const auto& recovered = recorder.sent.back().second;
        CHECK(recovered.failures == 3);
        CHECK(recovered.error == "still refused");
        CHECK(recovered.since == recorder.sent[0].second.at);

        notify::record_outcome(store, smtp, send, run(true));
        CHECK(recorder.sent.size() == 2);
    }
    SECTION("the episode is kept in the state file") {
        notify::record_outcome(store, smtp, send, run(false, "boom"));
        notify::record_outcome(store, smtp, send, run(false, "boom 2"));
        const auto e = notify::EpisodeStore(store).get("job-1");
        REQUIRE(e);
        CHECK(e->is_error);
        CHECK(e->failures == 2);
        CHECK(e->last_error == "boom 2");
        CHECK(e->command == "db_sync");
        CHECK(e->error_sent == smtp);
        CHECK_FALSE(e->error_since.empty());
        notify::record_outcome(store, smtp, send, run(true));
        CHECK_FALSE(notify::EpisodeStore(store).get("job-1")->is_error);
    }
    SECTION("successes outside an episode send nothing") {
        notify::record_outcome(store, smtp, send, run(true));
        notify::record_outcome(store, smtp, send, run(true));
        CHECK(recorder.sent.empty());
    }
    SECTION("episodes are per job") {
        notify::record_outcome(store, smtp, send, run(false, "a", "job-a"));
        notify::record_outcome(store, smtp, send, run(false, "b", "job-b"));
        notify::record_outcome(store, smtp, send, run(false, "a", "job-a"));
        CHECK(recorder.count(Notice::Kind::error) == 2);
        notify::record_outcome(store, smtp, send, run(true, "", "job-a"));
        CHECK(recorder.count(Notice::Kind::recovered) == 1);
        CHECK(notify::EpisodeStore(store).get("job-b")->is_error);
    }
    SECTION("an error notice that could not be sent is sent by the next failing run") {
        recorder.down[Channel::smtp] = true;
        const auto first = notify::record_outcome(store, smtp, send, run(false, "first"));
        CHECK(first.failures.size() == 1);
        CHECK(recorder.sent.empty());
        recorder.down[Channel::smtp] = false;
        notify::record_outcome(store, smtp, send, run(false, "second"));
        notify::record_outcome(store, smtp, send, run(false, "third"));
        REQUIRE(recorder.count(Notice::Kind::error) == 1);
        CHECK(recorder.sent[0].second.error == "second");
        CHECK(recorder.sent[0].second.failures == 2);
    }
    SECTION("each channel gets its notice once, whatever the other one does") {
        recorder.down[Channel::url] = true;
        notify::record_outcome(store, both, send, run(false, "x"));
        CHECK(recorder.count(Notice::Kind::error, Channel::smtp) == 1);
        CHECK(recorder.count(Notice::Kind::error, Channel::url) == 0);
        recorder.down[Channel::url] = false;
        notify::record_outcome(store, both, send, run(false, "x"));
        CHECK(recorder.count(Notice::Kind::error, Channel::smtp) == 1);
        CHECK(recorder.count(Notice::Kind::error, Channel::url) == 1);
    }
    SECTION("a recovered notice that could not be sent is sent by the next successful run") {
        notify::record_outcome(store, smtp, send, run(false, "x"));
        recorder.down[Channel::smtp] = true;
        notify::record_outcome(store, smtp, send, run(true));
        CHECK(recorder.count(Notice::Kind::recovered) == 0);
        recorder.down[Channel::smtp] = false;
        notify::record_outcome(store, smtp, send, run(true));
        notify::record_outcome(store, smtp, send, run(true));
        CHECK(recorder.count(Notice::Kind::recovered) == 1);
    }
    SECTION("a new failure drops a recovered notice still owed and starts a new episode") {
        notify::record_outcome(store, smtp, send, run(false, "x"));
        recorder.down[Channel::smtp] = true;
        notify::record_outcome(store, smtp, send, run(true));
        recorder.down[Channel::smtp] = false;
        notify::record_outcome(store, smtp, send, run(false, "y"));
        CHECK(recorder.count(Notice::Kind::error) == 2);
        CHECK(recorder.count(Notice::Kind::recovered) == 0);
        notify::record_outcome(store, smtp, send, run(true));
        CHECK(recorder.count(Notice::Kind::recovered) == 1);
        CHECK(recorder.sent.back().second.failures == 1);
    }
    SECTION("without channels the episode is still tracked and nothing is sent") {
        notify::record_outcome(store, {}, send, run(false, "x"));
        CHECK(recorder.sent.empty());
        CHECK(notify::EpisodeStore(store).get("job-1")->is_error);
        // A channel configured later still learns about the running episode.
        notify::record_outcome(store, smtp, send, run(false, "x"));
        CHECK(recorder.count(Notice::Kind::error) == 1);
    }
}
