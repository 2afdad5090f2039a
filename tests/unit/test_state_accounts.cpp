#include "lib/state/accounts.hpp"

#include "lib/core/error.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

using namespace crmsync;
namespace fs = std::filesystem;

namespace {

struct TempState {
    fs::path dir;
    TempState() {
        std::string pattern = (fs::temp_directory_path() / "crmsync-accounts.XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        dir = pattern;
    }
    ~TempState() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string path() const { return (dir / "state" / "state.db").string(); }
};

state::Account google(const std::string& email, const std::string& refresh_token) {
    state::Account a;
    a.provider = "google";
    a.email = email;
    a.owner = "jdoe";
    a.client_id = "client-1.apps.googleusercontent.com";
    a.client_secret = "GOCSPX-secret-1";
    a.refresh_token = refresh_token;
    return a;
}

SystemTime at(long long ms) { return SystemTime(std::chrono::milliseconds(ms)); }

} // namespace

TEST_CASE("state::AccountStore", "[unit]") {
    TempState temp;
    state::StateStore store(temp.path());
    state::AccountStore accounts(store);

    SECTION("adds an account and reads every field back") {
        const auto [id, added] = accounts.upsert(google("alice@example.com", "1//r1"));
        CHECK(added);
        const auto a = accounts.get(id);
        REQUIRE(a);
        CHECK(a->provider == "google");
        CHECK(a->email == "alice@example.com");
        CHECK(a->owner == "jdoe");
        CHECK(a->client_secret == "GOCSPX-secret-1");
        CHECK(a->refresh_token == "1//r1");
        CHECK(a->access_token.empty());
        CHECK_FALSE(a->expires_at);
        CHECK(a->active);
        CHECK(a->status == "ok");
        CHECK_FALSE(a->created_at.empty());
    }
    SECTION("the state file and its directory stay private") {
        accounts.upsert(google("alice@example.com", "1//r1"));
        struct stat st {};
        REQUIRE(::stat(temp.path().c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        REQUIRE(::stat((temp.dir / "state").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0700);
    }
    SECTION("adding the same provider and email again is a re-authorization") {
        const auto [id, added] = accounts.upsert(google("alice@example.com", "1//r1"));
        state::TokenGrant grant{"ya29.old", at(5'000'000), ""};
        REQUIRE(accounts.record_grant(id, "1//r1", grant));
        REQUIRE(accounts.record_failure(id, "1//r1", "needs_reauth", "invalid_grant"));
        accounts.record_token_requests(id, at(1000), 3, std::chrono::minutes(10));
        accounts.set_active(id, false);

        const auto [id2, added2] = accounts.upsert(google("ALICE@example.com", "1//r2"));
        CHECK(id2 == id);
        CHECK_FALSE(added2);
        const auto a = accounts.get(id);
        REQUIRE(a);
        CHECK(a->refresh_token == "1//r2");
        CHECK(a->status == "ok");
        CHECK(a->last_error.empty());
        CHECK(a->access_token.empty());
        CHECK_FALSE(a->expires_at);
        CHECK_FALSE(a->active); // disabling is the user's decision, kept
        CHECK(accounts.token_requests_since(id, at(0)).empty());
        CHECK(accounts.list().size() == 1);
    }
    SECTION("a Google and a Zoho account may share an email; find needs the provider then") {
        accounts.upsert(google("bob@example.com", "1//g"));
        auto zoho = google("bob@example.com", "1000.z");
        zoho.provider = "zoho";
        zoho.zoho_dc = "eu";
        accounts.upsert(zoho);
        CHECK_THROWS_AS(accounts.find("bob@example.com"), Error);
        const auto z = accounts.find("Bob@Example.com", "zoho");
        REQUIRE(z);
        CHECK(z->zoho_dc == "eu");
        CHECK(accounts.list("zoho").size() == 1);
        CHECK(accounts.list().size() == 2);
    }
    SECTION("find takes an id or an email; unknown ones give nothing") {
        const auto [id, added] = accounts.upsert(google("carol@example.com", "1//c"));
        CHECK(accounts.find(std::to_string(id))->email == "carol@example.com");
        CHECK(accounts.find("carol@example.com")->id == id);
        CHECK_FALSE(accounts.find("999"));
        CHECK_FALSE(accounts.find("nobody@example.com"));
        CHECK_FALSE(accounts.find(std::to_string(id), "zoho"));
    }
    SECTION("a grant or failure for a refresh token that was replaced meanwhile changes nothing") {
        const auto [id, added] = accounts.upsert(google("dave@example.com", "1//old"));
        accounts.upsert(google("dave@example.com", "1//new"));
        CHECK_FALSE(accounts.record_grant(id, "1//old", {"ya29.x", at(1), ""}));
        CHECK_FALSE(accounts.record_failure(id, "1//old", "needs_reauth", "invalid_grant"));
        const auto a = accounts.get(id);
        CHECK(a->status == "ok");
        CHECK(a->access_token.empty());
        CHECK(accounts.record_grant(id, "1//new", {"ya29.y", at(7000), "https://www.zohoapis.eu"}));
        const auto b = accounts.get(id);
        CHECK(b->access_token == "ya29.y");
        CHECK(b->expires_at == at(7000));
        CHECK(b->api_domain == "https://www.zohoapis.eu");
        CHECK_FALSE(b->refreshed_at.empty());
    }
    SECTION("a grant clears a stored error; an empty api_domain keeps the old one") {
        const auto [id, added] = accounts.upsert(google("erin@example.com", "1//e"));
        accounts.record_grant(id, "1//e", {"t1", at(1000), "https://www.zohoapis.com"});
        accounts.record_failure(id, "1//e", "error", "HTTP 503");
        CHECK(accounts.get(id)->status == "error");
        accounts.record_grant(id, "1//e", {"t2", at(2000), ""});
        const auto a = accounts.get(id);
        CHECK(a->status == "ok");
        CHECK(a->last_error.empty());
        CHECK(a->api_domain == "https://www.zohoapis.com");
    }
    SECTION("token requests are counted per account in a sliding window") {
        const auto [id, added] = accounts.upsert(google("fred@example.com", "1//f"));
        const auto [other, added2] = accounts.upsert(google("gina@example.com", "1//g"));
        const auto keep = std::chrono::minutes(10);
        accounts.record_token_requests(id, at(1'000'000), 2, keep);
        accounts.record_token_requests(id, at(1'300'000), 1, keep);
        accounts.record_token_requests(other, at(1'300'000), 5, keep);
        CHECK(accounts.token_requests_since(id, at(0)).size() == 3);
        CHECK(accounts.token_requests_since(id, at(1'100'000)).size() == 1);
        // Old rows are dropped when new ones are recorded.
        accounts.record_token_requests(id, at(1'000'000 + 700'000), 1, keep);
        const auto left = accounts.token_requests_since(id, at(0));
        REQUIRE(left.size() == 2);
        CHECK(left.front() == at(1'300'000));
        CHECK(accounts.token_requests_since(other, at(0)).size() == 5);
    }
    SECTION("disable, enable and remove") {
        const auto [id, added] = accounts.upsert(google("hank@example.com", "1//h"));
        accounts.record_token_requests(id, at(1000), 1, std::chrono::minutes(10));
        CHECK(accounts.set_active(id, false));
        CHECK_FALSE(accounts.get(id)->active);
        CHECK(accounts.set_active(id, true));
        CHECK(accounts.get(id)->active);
        CHECK(accounts.remove(id));
        CHECK_FALSE(accounts.get(id));
        CHECK(accounts.token_requests_since(id, at(0)).empty());
        CHECK_FALSE(accounts.remove(id));
        CHECK_FALSE(accounts.set_active(id, true));
    }
}
