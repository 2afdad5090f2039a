// Dialfire paging quirks end to end: E2 pages without results but with a cursor, a cursor
// answered back unchanged, and contacts E2 lists that E3 does not return. None may end paging
// early, page forever, or move the checkpoint past contacts that were not stored.

#include "tests/integration/support.hpp"

#include "tests/fakes/dialfire/dialfire_fake.hpp"

#include <catch2/catch.hpp>

#include <chrono>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;

namespace {

struct PagingFixture {
    TempDir dir;
    fakes::DialfireFake fake;
    std::string url;
    std::string prefix = crmsync::testing::unique_prefix();

    PagingFixture() : fake(options()), url("sqlite://" + dir.file("paging.db")) { fake.start(); }

    static fakes::FakeCampaignOptions options() {
        fakes::FakeCampaignOptions o;
        o.contacts = 30;
        o.inbound_calls = 2;
        o.history_end = std::chrono::system_clock::now() - std::chrono::hours(1);
        return o;
    }

    ProcessResult sync() const {
        return crmsync::testing::run_crmsync({"db_sync", "--campaign", fake.options().campaign_id,
                                              "--api-url", fake.base_url(), "--url", url,
                                              "--table-prefix", prefix, "--log-dir",
                                              dir.file("logs"), "--retry-base", "20ms"},
                                             {{"CRMSYNC_TOKEN", fake.options().token}}, dir);
    }

    std::optional<std::string> checkpoint() const {
        auto db = crmsync::testing::open(url);
        if (!crmsync::testing::table_exists(*db, "crmsync_state")) {
            return std::nullopt;
        }
        const auto& d = db->dialect();
        const auto rows =
            db->query("SELECT " + d.quote("checkpoint") + " FROM " + d.quote("crmsync_state") +
                          " WHERE " + d.quote("job") + " = " + d.placeholder("p", 0),
                      {"db_sync:" + fake.options().campaign_id + ":" + prefix});
        return rows.empty() ? std::nullopt : rows[0][0];
    }

    long contacts() const {
        auto db = crmsync::testing::open(url);
        return crmsync::testing::count_rows(*db, prefix + "contacts");
    }
};

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

} // namespace

TEST_CASE("db_sync pages past E2 pages that carry a cursor but no results", "[sqlite]") {
    PagingFixture f;
    // Pages of 7 with an empty page before each, the first answer included: a client that
    // stops on an empty page stores nothing.
    f.fake.set_list_paging({7, true, false});
    const auto r = f.sync();
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    CHECK(f.contacts() == 30);
    CHECK(f.checkpoint().has_value());
    // 5 pages of results (7, 7, 7, 7, 2) and an empty page before each.
    CHECK(f.fake.request_count("/api/campaigns/" + f.fake.options().campaign_id +
                               "/contacts/list") == 10);
}

TEST_CASE("db_sync stops listing on a repeated cursor and keeps the checkpoint", "[sqlite]") {
    PagingFixture f;
    f.fake.set_list_paging({10, false, true});
    const auto r = f.sync();
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    // The first page, and the second that answered its own cursor back: then listing stops.
    CHECK(f.contacts() == 20);
    CHECK(f.checkpoint() == std::nullopt);
    CHECK(f.fake.request_count("/api/campaigns/" + f.fake.options().campaign_id +
                               "/contacts/list") == 2);

    f.fake.set_list_paging({});
    const auto healed = f.sync();
    INFO(explain(healed));
    REQUIRE(healed.exit_code == 0);
    CHECK(f.contacts() == 30);
    CHECK(f.checkpoint().has_value());
}

TEST_CASE("db_sync keeps the checkpoint where it was while listed contacts are not returned",
          "[sqlite]") {
    PagingFixture f;
    const auto first = f.sync();
    INFO(explain(first));
    REQUIRE(first.exit_code == 0);
    const auto before = f.checkpoint();
    REQUIRE(before.has_value());

    // The clock moves on so that a moved checkpoint would show.
    f.fake.set_clock_offset(std::chrono::minutes(5));
    const auto touched = f.fake.touch_contacts(3);
    f.fake.withhold_contacts({touched[1]});
    const auto gap = f.sync();
    INFO(explain(gap));
    REQUIRE(gap.exit_code == 0);
    CHECK(f.checkpoint() == before);

    f.fake.withhold_contacts({});
    const auto healed = f.sync();
    INFO(explain(healed));
    REQUIRE(healed.exit_code == 0);
    CHECK(f.checkpoint() != before);
    CHECK(f.checkpoint().has_value());
}
