// crmsync contacts-sync end to end: the real binary as a child process against the People API
// and Zoho Creator fakes on loopback, the OAuth accounts and the sync state in a state file of
// a temp dir. The accounts carry valid access tokens, so no token endpoint is asked unless a
// test makes a token expire.

#include "tests/integration/support.hpp"

#include "lib/state/accounts.hpp"
#include "lib/state/contacts_store.hpp"
#include "tests/fakes/oauth/google_token_fake.hpp"
#include "tests/fakes/people/people_fake.hpp"
#include "tests/fakes/zoho_creator/creator_fake.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <set>
#include <thread>

using namespace crmsync;
using crmsync::testing::ProcessResult;
using crmsync::testing::TempDir;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string explain(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

const std::string k_zoho_owner = "zylker";
const std::string k_app = "crm";
const std::string k_form = "Contacts";
const std::string k_report = "All_Contacts";
const std::string k_zoho_token = "1000.zoho-access-token";

struct Fixture {
    TempDir dir;
    std::string state = dir.file("state/state.db");
    fakes::PeopleFake people;
    fakes::CreatorFake creator{creator_options()};
    fakes::GoogleTokenFake google_tokens;

    Fixture() {
        people.start();
        creator.start();
        creator.add_token(k_zoho_token);
        // bob's client is known to Google, his refresh token is not: it was revoked.
        google_tokens.add_account(
            {"google-client", "google-secret", "google-refresh-other", "", false});
        google_tokens.start();
        add_account("zoho", "crm@zylker.com", "", k_zoho_token, creator.base_url());
    }

    // A Google user `name` whose contacts belong to CRM user `name`.crm.
    std::string add_google_user(const std::string& name, bool valid_token = true) {
        const std::string email = name + "@example.com";
        const std::string token = "ya29." + name;
        people.add_user(name, token);
        add_account("google", email, name + ".crm", valid_token ? token : "", "");
        return email;
    }

    void add_account(const std::string& provider, const std::string& email,
                     const std::string& owner, const std::string& access_token,
                     const std::string& api_domain) {
        state::StateStore store(state);
        state::AccountStore accounts(store);
        state::Account a;
        a.provider = provider;
        a.email = email;
        a.owner = owner;
        a.client_id = provider + "-client";
        a.client_secret = provider + "-secret";
        a.refresh_token = provider + "-refresh-" + email;
        a.zoho_dc = provider == "zoho" ? "com" : "";
        const auto [id, added] = accounts.upsert(a);
        if (!access_token.empty()) {
            state::TokenGrant grant;
            grant.access_token = access_token;
            grant.expires_at = std::chrono::time_point_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now() + 1h);
            grant.api_domain = api_domain;
            accounts.record_grant(id, a.refresh_token, grant);
        }
    }

    std::vector<std::string> args(std::vector<std::string> extra = {}) const {
        std::vector<std::string> a{"contacts-sync",
                                   "--zoho-account",
                                   "crm@zylker.com",
                                   "--zoho-owner",
                                   k_zoho_owner,
                                   "--zoho-app",
                                   k_app,
                                   "--zoho-form",
                                   k_form,
                                   "--zoho-report",
                                   k_report,
                                   "--people-url",
                                   people.base_url(),
                                   "--google-token-url",
                                   google_tokens.base_url() + "/token",
                                   "--state",
                                   state,
                                   "--log-dir",
                                   dir.file("logs"),
                                   "--retry-base",
                                   "20ms",
                                   "--summary-json",
                                   dir.file("summary.json")};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    ProcessResult run(std::vector<std::string> extra = {}) const {
        return crmsync::testing::run_crmsync(args(std::move(extra)), {}, dir);
    }
    json summary() const {
        return json::parse(crmsync::testing::read_file(dir.file("summary.json")));
    }

    json google_contact(const std::string& user, const std::string& given,
                        const std::string& email) {
        return people.add_contact(user,
                                  {{"names", {{{"givenName", given}, {"familyName", "Test"}}}},
                                   {"emailAddresses", {{{"value", email}}}},
                                   {"phoneNumbers", {{{"value", "+48 500 100 200"}}}}});
    }

    // Live Google contacts of `user` with this e-mail.
    long google_with_email(const std::string& user, const std::string& email) const {
        long n = 0;
        for (const auto& p : people.contacts(user)) {
            for (const auto& e : p.value("emailAddresses", json::array())) {
                n += e.value("value", "") == email ? 1 : 0;
            }
        }
        return n;
    }
    long zoho_with_email(const std::string& email) const {
        long n = 0;
        for (const auto& r : zoho_records()) {
            n += r.value("Email", "") == email ? 1 : 0;
        }
        return n;
    }
    json zoho_record_with_email(const std::string& email) const {
        for (const auto& r : zoho_records()) {
            if (r.value("Email", "") == email) {
                return r;
            }
        }
        return json();
    }

    static fakes::CreatorFakeOptions creator_options() {
        fakes::CreatorFakeOptions o;
        o.owner = k_zoho_owner;
        o.app = k_app;
        o.form = k_form;
        o.report = k_report;
        o.per_minute_limit = 0; // crmsync paces itself; the limit's own test turns it on
        return o;
    }
    std::vector<json> zoho_records() const { return creator.records(); }
    std::string zoho_seed(const std::string& owner, const std::string& first,
                          const std::string& email) {
        return creator.add_record({{"Name", {{"first_name", first}, {"last_name", "Z"}}},
                                   {"Email", email},
                                   {"Phone_Number", ""},
                                   {"Owner_Login", owner}})["ID"];
    }
    void zoho_edit(const std::string& id, const json& fields) { creator.edit_record(id, fields); }
    // Add requests the Creator fake answered so far.
    long zoho_add_requests() const {
        long n = 0;
        for (const auto& r : creator.requests()) {
            n += r.method == "POST" && r.path == creator.form_path() ? 1 : 0;
        }
        return n;
    }
    // The next request of `method` to `path_prefix` waits 1.5 s in the fake before it is
    // carried out: long enough to kill the client while it waits for the answer.
    void zoho_slow(const std::string& method, const std::string& path_prefix) {
        fakes::CreatorFault fault;
        fault.method = method;
        fault.path_prefix = path_prefix;
        fault.kind = fakes::FaultKind::slow;
        fault.delay_ms = 1500;
        creator.inject(fault);
    }
};

// Waits until the state file holds a row that `sql` counts (the step a run stores right
// before the request it stands for).
void wait_for_row(const std::string& state, const std::string& sql) {
    crmsync::testing::wait_until(
        [&] {
            try {
                SQLite::Database db(state, SQLite::OPEN_READONLY);
                SQLite::Statement st(db, sql);
                return st.executeStep() && st.getColumn(0).getInt64() > 0;
            } catch (const SQLite::Exception&) {
                return false; // not created yet
            }
        },
        "the state file never showed: " + sql);
}

} // namespace

TEST_CASE("contacts-sync: contacts of several Google users and Zoho Creator kept in step",
          "[cli]") {
    Fixture f;
    f.add_google_user("ana");
    f.add_google_user("bob");
    const auto jan = f.google_contact("ana", "Jan", "jan@example.com");
    f.google_contact("bob", "Ewa", "ewa@example.com");
    f.zoho_seed("ana.crm", "Ola", "ola@example.com");
    f.zoho_seed("someone.else", "Piotr", "piotr@example.com");

    auto r = f.run();
    INFO(explain(r));
    REQUIRE(r.exit_code == 0);
    auto s = f.summary();
    CHECK(s["accounts"] == 2);
    CHECK(s["zoho_added"] == 2);
    CHECK(s["google_created"] == 1);
    // Each contact went to Zoho once, with its owner and its Google resourceName.
    const auto jan_record = f.zoho_record_with_email("jan@example.com");
    CHECK(jan_record["Owner_Login"] == "ana.crm");
    CHECK(jan_record["Google_Resource_Name"] == jan["resourceName"]);
    CHECK(jan_record["Name"]["first_name"] == "Jan");
    CHECK(f.zoho_record_with_email("ewa@example.com")["Owner_Login"] == "bob.crm");
    // Ola belongs to ana only; Piotr's owner has no Google account here.
    CHECK(f.google_with_email("ana", "ola@example.com") == 1);
    CHECK(f.google_with_email("bob", "ola@example.com") == 0);
    CHECK(f.google_with_email("ana", "piotr@example.com") == 0);
    CHECK_FALSE(f.zoho_record_with_email("ola@example.com")["Google_Resource_Name"]
                    .get<std::string>()
                    .empty());

    SECTION("the next run writes nothing: crmsync's own writes come back as no change") {
        r = f.run();
        REQUIRE(r.exit_code == 0);
        s = f.summary();
        CHECK(s["zoho_added"] == 0);
        CHECK(s["zoho_updated"] == 0);
        CHECK(s["google_created"] == 0);
        CHECK(s["google_updated"] == 0);
        CHECK(f.zoho_records().size() == 4);
    }

    SECTION("edits on each side, both sides, and deletions") {
        const std::string ola_rn =
            f.zoho_record_with_email("ola@example.com")["Google_Resource_Name"];
        f.people.edit_contact("ana", jan["resourceName"],
                              {{"names", {{{"givenName", "Janek"}, {"familyName", "Test"}}}}});
        f.zoho_edit(f.zoho_record_with_email("ola@example.com")["ID"],
                    {{"Name", {{"first_name", "Aleksandra"}, {"last_name", "Z"}}}});
        r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        s = f.summary();
        CHECK(s["zoho_updated"] == 1);
        CHECK(s["google_updated"] == 1);
        CHECK(f.zoho_record_with_email("jan@example.com")["Name"]["first_name"] == "Janek");
        bool found = false;
        for (const auto& p : f.people.contacts("ana")) {
            if (p["resourceName"] == ola_rn) {
                found = true;
                CHECK(p["names"][0]["givenName"] == "Aleksandra");
            }
        }
        CHECK(found);

        // Deleted in Google: the record stays, unlinked for good, never created again.
        f.people.delete_contact("ana", jan["resourceName"]);
        r = f.run();
        REQUIRE(r.exit_code == 0);
        CHECK(f.summary()["tombstoned"] == 1);
        CHECK(f.zoho_with_email("jan@example.com") == 1);
        f.zoho_edit(f.zoho_record_with_email("jan@example.com")["ID"], {{"Phone_Number", "+1"}});
        r = f.run();
        REQUIRE(r.exit_code == 0);
        CHECK(f.google_with_email("ana", "jan@example.com") == 0);

        // With --propagate-deletes the record goes too.
        const auto ewa = f.people.contacts("bob").front();
        f.people.delete_contact("bob", ewa["resourceName"]);
        r = f.run({"--propagate-deletes"});
        REQUIRE(r.exit_code == 0);
        CHECK(f.summary()["zoho_deleted"] == 1);
        CHECK(f.zoho_with_email("ewa@example.com") == 0);
    }

    SECTION("both sides changed: the newer change wins, the conflict is counted") {
        const std::string id = f.zoho_record_with_email("jan@example.com")["ID"];
        f.zoho_edit(id, {{"Name", {{"first_name", "Zoho-Jan"}, {"last_name", "Test"}}}});
        std::this_thread::sleep_for(1100ms); // Creator times have whole seconds
        f.people.edit_contact("ana", jan["resourceName"],
                              {{"names", {{{"givenName", "Google-Jan"}, {"familyName", "Test"}}}}});
        r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        CHECK(f.summary()["conflicts"] == 1);
        CHECK(f.zoho_record_with_email("jan@example.com")["Name"]["first_name"] == "Google-Jan");
        r = f.run();
        CHECK(f.summary()["conflicts"] == 0);
        CHECK(f.summary()["zoho_updated"] == 0);
    }

    SECTION("a dry run counts what it would write and writes nothing") {
        f.google_contact("ana", "New", "new@example.com");
        f.zoho_seed("ana.crm", "Fresh", "fresh@example.com");
        r = f.run({"--dry-run"});
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        s = f.summary();
        CHECK(s["dry_run"] == 1);
        CHECK(s["zoho_added"] == 1);
        CHECK(s["google_created"] == 1);
        CHECK(f.zoho_with_email("new@example.com") == 0);
        CHECK(f.google_with_email("ana", "fresh@example.com") == 0);
        // The state did not move: the real run finds the same work.
        r = f.run();
        REQUIRE(r.exit_code == 0);
        CHECK(f.summary()["zoho_added"] == 1);
        CHECK(f.summary()["google_created"] == 1);
        CHECK(f.zoho_with_email("new@example.com") == 1);
    }

    SECTION("a lost state file duplicates nothing on either side") {
        {
            // The accounts stay; the sync state goes.
            SQLite::Database db(f.state, SQLite::OPEN_READWRITE);
            db.exec("DELETE FROM contacts_links; DELETE FROM contacts_cursor; "
                    "DELETE FROM contacts_queue");
        }
        r = f.run();
        INFO(explain(r));
        REQUIRE(r.exit_code == 0);
        s = f.summary();
        CHECK(s["zoho_added"] == 0);
        CHECK(s["google_created"] == 0);
        CHECK(s["relinked"].get<long>() >= 3);
        CHECK(f.zoho_records().size() == 4);
        CHECK(f.people.contacts("ana").size() == 2);
        CHECK(f.people.contacts("bob").size() == 1);
    }

    SECTION("an expired sync token means a full listing again, without duplicates") {
        for (const int status : {400, 410}) {
            f.people.set_expired_sync_token_status(status);
            f.google_contact("ana", "New", fmt::format("new{}@example.com", status));
            f.people.expire_sync_tokens("ana");
            r = f.run();
            INFO(explain(r));
            REQUIRE(r.exit_code == 0);
            CHECK(f.summary()["zoho_added"] == 1);
            CHECK(f.zoho_with_email("jan@example.com") == 1);
            CHECK(f.zoho_with_email(fmt::format("new{}@example.com", status)) == 1);
        }
    }
}

TEST_CASE("contacts-sync: the queue cap and the per-run limits hold", "[cli]") {
    Fixture f;
    f.add_google_user("ana");
    for (int i = 0; i < 230; ++i) {
        f.google_contact("ana", fmt::format("P{}", i), fmt::format("p{}@example.com", i));
    }
    long runs = 0;
    for (; runs < 40; ++runs) {
        const auto google_before = f.people.stats("ana").requests;
        const auto adds_before = f.zoho_add_requests();
        const auto r = f.run(
            {"--queue-cap", "100", "--max-per-run", "40", "--batch", "20", "--google-calls", "6"});
        INFO(explain(r));
        REQUIRE((r.exit_code == 0 || r.exit_code == 3));
        CHECK(f.people.stats("ana").requests - google_before <= 6);
        CHECK(f.zoho_add_requests() - adds_before <= 2);
        const auto s = f.summary();
        CHECK(s["queued"].get<long>() <= 100);
        CHECK(s["zoho_added"].get<long>() <= 40);
        {
            state::StateStore store(f.state);
            CHECK(state::ContactsStore(store).queue_lengths()["ana@example.com"] ==
                  s["queued"].get<long>());
        }
        if (runs == 0) {
            // The queue as the seed's pendingConnections: accounts list and status show it.
            REQUIRE(s["queued"].get<long>() > 0);
            const auto listed = crmsync::testing::run_crmsync(
                {"accounts", "list", "--state", f.state, "--json"}, {}, f.dir);
            CHECK(json::parse(listed.out)[1]["pending_connections"] == s["queued"]);
            const auto status =
                crmsync::testing::run_crmsync({"status", "--state", f.state}, {}, f.dir);
            CHECK(status.out.find("queued contacts " + std::to_string(s["queued"].get<long>())) !=
                  std::string::npos);
        }
        if (r.exit_code == 0) {
            break;
        }
    }
    CHECK(runs >= 5); // 230 contacts at 40 per run
    CHECK(f.zoho_records().size() == 230);
    const auto listed = crmsync::testing::run_crmsync(
        {"accounts", "list", "--state", f.state, "--json"}, {}, f.dir);
    CHECK(json::parse(listed.out)[1]["pending_connections"] == 0);
}

TEST_CASE("contacts-sync: a run killed at any step leaves no duplicate", "[cli]") {
    Fixture f;
    f.add_google_user("ana");
    struct Step {
        const char* name;
        const char* row;                     // the state row stored right before the request
        std::function<void()> slow_down;     // the next such request waits 1.5 s in the fake
        std::function<bool()> request_taken; // that request has reached the fake
        std::function<bool()> applied;       // the killed run's request was carried out
    };
    const std::vector<Step> steps{
        {"during the Creator add", "SELECT COUNT(*) FROM contacts_queue WHERE step = 'sending'",
         [&] {
             for (int i = 0; i < 5; ++i) {
                 f.google_contact("ana", fmt::format("G{}", i), fmt::format("g{}@example.com", i));
             }
             f.zoho_slow("POST", f.creator.form_path());
         },
         [&] { return f.creator.pending_faults() == 0; },
         [&] { return f.zoho_records().size() == 5; }},
        {"during the Google create",
         "SELECT COUNT(*) FROM contacts_links WHERE state = 'creating_google'",
         [&] {
             for (int i = 0; i < 3; ++i) {
                 f.zoho_seed("ana.crm", fmt::format("Z{}", i), fmt::format("z{}@example.com", i));
             }
             f.people.inject(fakes::Fault{"POST", "/v1/people:createContact",
                                          fakes::FaultKind::slow, 200, std::nullopt, 1500, 1});
         },
         [&] { return f.people.pending_faults() == 0; },
         [&] { return f.people.contacts("ana").size() == 6; }},
    };
    for (const auto& step : steps) {
        INFO(step.name);
        step.slow_down();
        crmsync::testing::CrmsyncProcess child(f.args({"--zoho-requests-per-minute", "0"}), {},
                                               f.dir);
        wait_for_row(f.state, step.row);
        // The row is stored right before the request is sent: killed at once, the run could
        // die before sending it. Killed while the fake holds the request, its answer is lost.
        crmsync::testing::wait_until(step.request_taken, "the fake never received the request");
        child.kill(SIGKILL);
        CHECK(child.wait().exit_code == 128 + SIGKILL);
        std::this_thread::sleep_for(2s); // the fake finishes the request it was given
        // The write happened, its answer never arrived: the rerun must find it, not repeat it.
        CHECK(step.applied());
        const auto r = f.run();
        INFO(explain(r));
        CHECK(r.exit_code == 0);
    }
    for (int i = 0; i < 5; ++i) {
        CHECK(f.zoho_with_email(fmt::format("g{}@example.com", i)) == 1);
    }
    for (int i = 0; i < 3; ++i) {
        CHECK(f.zoho_with_email(fmt::format("z{}@example.com", i)) == 1);
        CHECK(f.google_with_email("ana", fmt::format("z{}@example.com", i)) == 1);
    }
    CHECK(f.people.contacts("ana").size() == 8);
    CHECK(f.zoho_records().size() == 8);
}

TEST_CASE("contacts-sync: one failing account does not stop the others", "[cli]") {
    Fixture f;
    f.add_google_user("ana");
    // bob's access token is gone and his refresh token is unknown to Google: revoked.
    f.add_google_user("bob", false);
    f.google_contact("ana", "Jan", "jan@example.com");
    f.google_contact("bob", "Ewa", "ewa@example.com");
    const auto r = f.run();
    INFO(explain(r));
    CHECK(r.exit_code == 3);
    CHECK(f.summary()["accounts_failed"] == 1);
    CHECK(f.zoho_with_email("jan@example.com") == 1);
    CHECK(f.zoho_with_email("ewa@example.com") == 0);
    state::StateStore store(f.state);
    const auto bob = state::AccountStore(store).find("bob@example.com", "google");
    REQUIRE(bob);
    CHECK(bob->status == "needs_reauth");
}

TEST_CASE("doctor contacts-sync reads Zoho Creator and each Google account with the run's "
          "credentials",
          "[cli]") {
    Fixture f;
    const auto alice = f.add_google_user("alice");
    const auto bob = f.add_google_user("bob", false); // his refresh token was revoked
    f.google_contact("alice", "Ann", "ann@example.com");
    const auto doctor = [&](std::vector<std::string> extra = {}) {
        auto args = f.args(std::move(extra));
        args.insert(args.begin(), "doctor");
        return crmsync::testing::run_crmsync(args, {}, f.dir);
    };
    const auto has_line = [](const ProcessResult& r, const std::string& start) {
        return r.out.find("\n" + start) != std::string::npos || r.out.rfind(start, 0) == 0;
    };

    SECTION("each credential is read once; a revoked one fails; nothing is written") {
        const auto r = doctor();
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "ok       zoho: Zoho Creator report zylker/crm/All_Contacts (account "
                          "crm@zylker.com) answers with the run's credentials"));
        CHECK(has_line(r, "ok       google: the People API for " + alice +
                              " answers with the run's credentials"));
        CHECK(has_line(r, "FAILED   google: the People API for " + bob + ": "));
        CHECK(has_line(r, "ok       state file: "));
        CHECK(f.creator.records().empty());
        CHECK(f.people.contacts("alice").size() == 1);
        CHECK(f.people.contacts("bob").empty());
        const auto only_alice = doctor({"--account", alice});
        INFO(explain(only_alice));
        CHECK(only_alice.exit_code == 0);
        CHECK(only_alice.out.find(bob) == std::string::npos);
    }
    SECTION("a Zoho token Creator refuses fails the zoho check, without showing it") {
        f.add_account("zoho", "other@zylker.com", "", "1000.not-known-to-creator",
                      f.creator.base_url());
        auto args = f.args({"--account", alice});
        const auto at = std::find(args.begin(), args.end(), "crm@zylker.com");
        REQUIRE(at != args.end());
        *at = "other@zylker.com";
        args.insert(args.begin(), "doctor");
        const auto r = crmsync::testing::run_crmsync(args, {}, f.dir);
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "FAILED   zoho: Zoho Creator report zylker/crm/All_Contacts (account "
                          "other@zylker.com): "));
        CHECK(has_line(r, "ok       google: the People API for " + alice));
        CHECK(r.out.find("1000.not-known-to-creator") == std::string::npos);
    }
    SECTION("no Google account to sync is a failure, not a silent pass") {
        {
            state::StateStore store(f.state);
            state::AccountStore accounts(store);
            for (const auto& email : {alice, bob}) {
                const auto account = accounts.find(email, "google");
                REQUIRE(account);
                accounts.set_active(account->id, false);
            }
        }
        const auto r = doctor();
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "ok       zoho: "));
        CHECK(has_line(r, "FAILED   google: no active Google account to sync"));
    }
    SECTION("a state file that does not exist is named") {
        const auto r = doctor({"--state", f.dir.file("nowhere/state.db")});
        INFO(explain(r));
        CHECK(r.exit_code == 1);
        CHECK(has_line(r, "FAILED   accounts: the state file "));
        CHECK(r.out.find("does not exist") != std::string::npos);
    }
}
