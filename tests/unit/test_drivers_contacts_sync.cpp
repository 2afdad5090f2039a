// The two-way contact sync of one account, against in-memory stand-ins of the People API and
// Creator that keep the behaviours the sync relies on (sync tokens and their expiry, etags,
// per-record add failures, answers lost after a write). The HTTP clients and the fakes of the
// real protocols are exercised in tests/integration/test_contacts_sync.cpp.

#include "drivers/contacts/sync.hpp"

#include "lib/core/error.hpp"
#include "lib/util/time.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <map>
#include <regex>

using namespace crmsync;
using namespace crmsync::drivers::contacts;
using nlohmann::json;

namespace {

// Minutes of a shared test clock: both sides stamp changes with it.
struct TestClock {
    long minute = 0;
    SystemTime now() const {
        return SystemTime{std::chrono::hours(24 * 365 * 50) + std::chrono::minutes(minute)};
    }
};

class MemoryPeople final : public PeopleApi {
public:
    explicit MemoryPeople(TestClock& clock) : m_clock(clock) {}

    struct Entry {
        json person;
        long seq = 0;
        bool deleted = false;
    };
    std::map<std::string, Entry> contacts;
    long seq = 0;
    long expired_before = 0; // sync tokens older than this are expired
    long budget = 0;         // 0: none
    long calls = 0;
    bool lose_create_answer = false; // the next create is applied, its answer lost

    std::string add(const std::string& given, const std::string& family, const std::string& email) {
        const std::string rn = fmt::format("people/c{}", 1000 + contacts.size());
        json p = {{"resourceName", rn},
                  {"names", {{{"givenName", given}, {"familyName", family}}}},
                  {"emailAddresses", {{{"value", email}, {"metadata", {{"primary", true}}}}}}};
        touch(rn, p);
        return rn;
    }
    void edit(const std::string& rn, const std::string& given) {
        json p = contacts.at(rn).person;
        p["names"][0]["givenName"] = given;
        touch(rn, p);
    }
    void remove(const std::string& rn) {
        auto& e = contacts.at(rn);
        e.deleted = true;
        e.seq = ++seq;
    }
    long live() const {
        long n = 0;
        for (const auto& [rn, e] : contacts) {
            n += e.deleted ? 0 : 1;
        }
        return n;
    }
    long live_with_email(const std::string& email) const {
        long n = 0;
        for (const auto& [rn, e] : contacts) {
            n += !e.deleted && e.person["emailAddresses"][0]["value"] == email ? 1 : 0;
        }
        return n;
    }

    Page list_connections(const std::string& sync_token, const std::string& page_token,
                          int page_size) override {
        count();
        Page page;
        long since = 0;
        if (!sync_token.empty()) {
            since = std::stol(sync_token.substr(4));
            if (since < expired_before) {
                page.expired = true;
                return page;
            }
        }
        std::vector<const Entry*> changed;
        for (const auto& [rn, e] : contacts) {
            if (e.seq > since && (!e.deleted || !sync_token.empty())) {
                changed.push_back(&e);
            }
        }
        const std::size_t from = page_token.empty() ? 0 : std::stoul(page_token);
        const std::size_t to = std::min(changed.size(), from + static_cast<std::size_t>(page_size));
        for (std::size_t i = from; i < to; ++i) {
            json p = changed[i]->person;
            if (changed[i]->deleted) {
                p = {{"resourceName", p["resourceName"]}, {"metadata", {{"deleted", true}}}};
            }
            page.people.push_back(p);
        }
        if (to < changed.size()) {
            page.next_page_token = std::to_string(to);
        } else {
            page.next_sync_token = fmt::format("tok-{}", seq);
        }
        return page;
    }
    json create_contact(const json& person) override {
        count();
        const std::string rn = fmt::format("people/c{}", 1000 + contacts.size());
        json p = person;
        p["resourceName"] = rn;
        touch(rn, p);
        if (lose_create_answer) {
            lose_create_answer = false;
            throw Error(ErrorKind::connection, "answer lost");
        }
        return contacts.at(rn).person;
    }
    std::optional<json> update_contact(const json& person) override {
        count();
        const std::string rn = person.at("resourceName");
        auto& e = contacts.at(rn);
        if (person.value("etag", "") != e.person.value("etag", "")) {
            return std::nullopt;
        }
        touch(rn, person);
        return contacts.at(rn).person;
    }
    std::optional<json> get_contact(const std::string& rn) override {
        count();
        const auto it = contacts.find(rn);
        if (it == contacts.end() || it->second.deleted) {
            return std::nullopt;
        }
        return it->second.person;
    }
    long calls_left() const override { return budget > 0 ? budget - calls : 1'000'000; }

private:
    void count() {
        if (budget > 0 && calls >= budget) {
            throw Error(ErrorKind::connection, "budget spent");
        }
        ++calls;
    }
    void touch(const std::string& rn, json p) {
        ++seq;
        p["etag"] = fmt::format("etag-{}", seq);
        p["metadata"] = {
            {"sources",
             {{{"type", "CONTACT"}, {"updateTime", util::format_iso8601(m_clock.now())}}}}};
        contacts[rn] = Entry{std::move(p), seq, false};
    }
    TestClock& m_clock;
};

class MemoryCreator final : public CreatorApi {
public:
    explicit MemoryCreator(TestClock& clock) : m_clock(clock) {}

    std::map<std::string, json> records_by_id;
    long next_id = 3888833000000114000;
    long calls = 0;
    long adds = 0;
    bool lose_add_answer = false; // the next add is applied, its answer lost
    std::string refuse_email;     // adds of this e-mail fail with code 3001

    std::string seed(const std::string& owner, const std::string& first, const std::string& email,
                     const std::string& link = "") {
        const std::string id = std::to_string(next_id++);
        records_by_id[id] = {{"ID", id},
                             {"Name", {{"first_name", first}, {"last_name", "Z"}}},
                             {"Email", email},
                             {"Phone_Number", ""},
                             {"Owner_Login", owner},
                             {"Google_Resource_Name", link}};
        stamp(id);
        return id;
    }
    void edit(const std::string& id, const std::string& first) {
        records_by_id.at(id)["Name"]["first_name"] = first;
        stamp(id);
    }
    long with_email(const std::string& email) const {
        long n = 0;
        for (const auto& [id, r] : records_by_id) {
            n += r["Email"] == email ? 1 : 0;
        }
        return n;
    }

    std::vector<Outcome> add_records(const std::vector<json>& records) override {
        ++calls;
        ++adds;
        REQUIRE(records.size() <= 200);
        std::vector<Outcome> out;
        for (const auto& r : records) {
            Outcome o;
            if (!refuse_email.empty() && r.value("Email", "") == refuse_email) {
                o.error = "code 3001: Enter a valid email address";
            } else {
                o.id = std::to_string(next_id++);
                records_by_id[o.id] = r;
                records_by_id[o.id]["ID"] = o.id;
                stamp(o.id);
                o.ok = true;
            }
            out.push_back(o);
        }
        if (lose_add_answer) {
            lose_add_answer = false;
            throw Error(ErrorKind::connection, "answer lost");
        }
        return out;
    }
    std::vector<json> records(const std::string& criteria) override {
        ++calls;
        static const std::regex owner_re(R"re(Owner_Login == "([^"]*)")re");
        static const std::regex since_re(R"re(Modified_Time >= "([^"]*)")re");
        std::smatch m;
        REQUIRE(std::regex_search(criteria, m, owner_re));
        const std::string owner = m[1];
        std::optional<SystemTime> since;
        if (std::regex_search(criteria, m, since_re)) {
            since = ZohoZone::parse("UTC").parse_time(m[1].str());
            REQUIRE(since);
        }
        std::vector<json> out;
        for (const auto& [id, r] : records_by_id) {
            const auto modified = ZohoZone::parse("UTC").parse_time(r.value("Modified_Time", ""));
            if (r.value("Owner_Login", "") == owner && (!since || *modified >= *since)) {
                out.push_back(r);
            }
        }
        return out;
    }
    Outcome update_record(const std::string& id, const json& data) override {
        ++calls;
        Outcome o;
        const auto it = records_by_id.find(id);
        if (it == records_by_id.end()) {
            o.not_found = true;
            return o;
        }
        for (const auto& [key, value] : data.items()) {
            if (value.is_object()) {
                for (const auto& [sub, v] : value.items()) {
                    it->second[key][sub] = v;
                }
            } else {
                it->second[key] = value;
            }
        }
        stamp(id);
        o.ok = true;
        return o;
    }
    Outcome delete_record(const std::string& id) override {
        ++calls;
        Outcome o;
        o.not_found = records_by_id.erase(id) == 0;
        o.ok = !o.not_found;
        return o;
    }

private:
    void stamp(const std::string& id) {
        records_by_id[id]["Modified_Time"] = ZohoZone::parse("UTC").format_time(m_clock.now());
    }
    TestClock& m_clock;
};

struct World {
    crmsync::testing::TempState temp;
    TestClock clock;
    MemoryPeople people{clock};
    MemoryCreator creator{clock};
    SyncOptions options;
    std::string owner = "jsmith";

    SyncCounts run(const std::string& state_file = {}) {
        clock.minute += 1; // runs are a minute apart; changes between them land in between
        state::StateStore store(state_file.empty() ? temp.path() : state_file);
        AccountSync sync(store, "contacts:o/app/report", "jsmith@example.com", owner, people,
                         creator, Mapping::builtin(), options);
        auto counts = sync.run();
        clock.minute += 1;
        return counts;
    }
    json record_of_link(const std::string& rn) const {
        for (const auto& [id, r] : creator.records_by_id) {
            if (r.value("Google_Resource_Name", "") == rn) {
                return r;
            }
        }
        return json();
    }
};

} // namespace

TEST_CASE("AccountSync", "[unit]") {
    World w;

    SECTION("a first sync adds Google contacts to Zoho and the owner's records to Google") {
        const auto jan = w.people.add("Jan", "Kowalski", "jan@example.com");
        w.people.add("Ewa", "Nowak", "ewa@example.com");
        w.creator.seed("jsmith", "Ola", "ola@example.com");
        w.creator.seed("someone_else", "Piotr", "piotr@example.com");

        const auto first = w.run();
        CHECK(first.zoho_added == 2);
        CHECK(first.google_created == 1);
        CHECK(first.queue_left == 0);
        const auto jan_record = w.record_of_link(jan);
        REQUIRE(jan_record.is_object());
        CHECK(jan_record["Owner_Login"] == "jsmith");
        CHECK(jan_record["Name"]["first_name"] == "Jan");
        CHECK(jan_record["Email"] == "jan@example.com");
        // Only the owner's record came to this Google account; its link was written back.
        CHECK(w.people.live_with_email("ola@example.com") == 1);
        CHECK(w.people.live_with_email("piotr@example.com") == 0);
        const auto ola = w.creator.records_by_id.begin()->second;
        CHECK(ola["Google_Resource_Name"].get<std::string>().starts_with("people/c"));

        SECTION("and the next runs find nothing to write: crmsync's own writes are no change") {
            for (int i = 0; i < 2; ++i) {
                const auto again = w.run();
                CHECK(again.zoho_added == 0);
                CHECK(again.zoho_updated == 0);
                CHECK(again.google_created == 0);
                CHECK(again.google_updated == 0);
                CHECK(again.conflicts == 0);
            }
            CHECK(w.creator.records_by_id.size() == 4);
            CHECK(w.people.live() == 3);
        }
    }

    SECTION("an edit on either side reaches the other once") {
        const auto jan = w.people.add("Jan", "Kowalski", "jan@example.com");
        const auto ola_id = w.creator.seed("jsmith", "Ola", "ola@example.com");
        w.run();
        w.people.edit(jan, "Janek");
        w.creator.edit(ola_id, "Aleksandra");
        const auto counts = w.run();
        CHECK(counts.zoho_updated == 1);
        CHECK(counts.google_updated == 1);
        CHECK(w.record_of_link(jan)["Name"]["first_name"] == "Janek");
        const auto ola_rn = w.creator.records_by_id.at(ola_id)["Google_Resource_Name"];
        CHECK(w.people.contacts.at(ola_rn).person["names"][0]["givenName"] == "Aleksandra");
        // Secondary data of the Google contact is kept: only mapped primary values change.
        const auto calm = w.run();
        CHECK(calm.zoho_updated == 0);
        CHECK(calm.google_updated == 0);
    }

    SECTION("a stale etag is fetched and the update tried again") {
        const auto ola_id = w.creator.seed("jsmith", "Ola", "ola@example.com");
        w.options.direction = Direction::zoho_to_google;
        w.run();
        const std::string rn = w.creator.records_by_id.at(ola_id)["Google_Resource_Name"];
        // Changed in Google without crmsync reading it: the stored etag is stale.
        w.people.contacts.at(rn).person["etag"] = "etag-changed-elsewhere";
        w.creator.edit(ola_id, "Aleksandra");
        const auto counts = w.run();
        CHECK(counts.google_updated == 1);
        CHECK(w.people.contacts.at(rn).person["names"][0]["givenName"] == "Aleksandra");
    }

    SECTION("both sides edited: the newer change wins and the conflict is counted") {
        const auto jan = w.people.add("Jan", "Kowalski", "jan@example.com");
        w.run();
        const std::string id = w.record_of_link(jan)["ID"];
        w.creator.edit(id, "Zoho-Jan");
        w.clock.minute += 5;
        w.people.edit(jan, "Google-Jan"); // later: Google wins
        auto counts = w.run();
        CHECK(counts.conflicts == 1);
        CHECK(w.creator.records_by_id.at(id)["Name"]["first_name"] == "Google-Jan");
        CHECK(w.people.contacts.at(jan).person["names"][0]["givenName"] == "Google-Jan");

        w.people.edit(jan, "Google-Again");
        w.clock.minute += 5;
        w.creator.edit(id, "Zoho-Again"); // later: Zoho wins
        counts = w.run();
        CHECK(counts.conflicts == 1);
        CHECK(w.creator.records_by_id.at(id)["Name"]["first_name"] == "Zoho-Again");
        CHECK(w.people.contacts.at(jan).person["names"][0]["givenName"] == "Zoho-Again");
        CHECK(w.run().conflicts == 0);
    }

    SECTION("a Google deletion unlinks the record for good, or deletes it when asked") {
        const auto jan = w.people.add("Jan", "Kowalski", "jan@example.com");
        const auto ewa = w.people.add("Ewa", "Nowak", "ewa@example.com");
        w.run();
        const std::string jan_id = w.record_of_link(jan)["ID"];
        w.people.remove(jan);
        auto counts = w.run();
        CHECK(counts.tombstoned == 1);
        CHECK(w.creator.records_by_id.count(jan_id) == 1);
        // The record changes later: it is still never created in Google again.
        w.creator.edit(jan_id, "Still here");
        counts = w.run();
        CHECK(counts.google_created == 0);
        CHECK(w.people.live_with_email("jan@example.com") == 0);

        w.options.propagate_deletes = true;
        const std::string ewa_id = w.record_of_link(ewa)["ID"];
        w.people.remove(ewa);
        counts = w.run();
        CHECK(counts.zoho_deleted == 1);
        CHECK(w.creator.records_by_id.count(ewa_id) == 0);
    }

    SECTION("the queue never holds more than its cap, and a run sends at most max-per-run") {
        for (int i = 0; i < 250; ++i) {
            w.people.add("P", std::to_string(i), fmt::format("p{}@example.com", i));
        }
        w.options.queue_cap = 100;
        w.options.page_size = 40;
        w.options.max_per_run = 30;
        w.options.batch = 10;
        long runs = 0;
        long added = 0;
        for (; runs < 30; ++runs) {
            const long adds_before = w.creator.adds;
            const auto counts = w.run();
            CHECK(counts.queue_left <= 100);
            CHECK(counts.zoho_added <= 30);
            CHECK(w.creator.adds - adds_before <= 3); // 30 per run in batches of 10
            added += counts.zoho_added;
            if (!counts.work_left) {
                break;
            }
        }
        CHECK(added == 250);
        CHECK(w.creator.records_by_id.size() == 250);
        CHECK(runs >= 8);
    }

    SECTION("the Google call budget is never exceeded; the listing goes on in the next run") {
        for (int i = 0; i < 120; ++i) {
            w.people.add("P", std::to_string(i), fmt::format("p{}@example.com", i));
        }
        for (int i = 0; i < 5; ++i) {
            w.creator.seed("jsmith", fmt::format("Z{}", i), fmt::format("z{}@example.com", i));
        }
        w.options.page_size = 10;
        w.people.budget = 4;
        for (int i = 0; i < 40; ++i) {
            w.people.calls = 0;
            const auto counts = w.run();
            CHECK(w.people.calls <= 4);
            if (!counts.work_left) {
                break;
            }
        }
        CHECK(w.creator.records_by_id.size() == 125);
        CHECK(w.people.live() == 125);
    }

    SECTION("an expired sync token means a full listing again, without duplicates") {
        const auto jan = w.people.add("Jan", "Kowalski", "jan@example.com");
        w.run();
        w.people.add("Ewa", "Nowak", "ewa@example.com");
        w.people.edit(jan, "Janek");
        w.people.expired_before = w.people.seq + 1;
        const auto counts = w.run();
        CHECK(counts.zoho_added == 1);
        CHECK(counts.zoho_updated == 1);
        CHECK(w.creator.records_by_id.size() == 2);
        CHECK(w.creator.with_email("jan@example.com") == 1);
    }

    SECTION("a lost state file duplicates nothing: records are linked again") {
        const auto jan = w.people.add("Jan", "Kowalski", "jan@example.com");
        w.creator.seed("jsmith", "Ola", "ola@example.com");
        // A record someone typed into Zoho with the same e-mail as a Google contact.
        w.creator.seed("jsmith", "Ewa", "ewa@example.com");
        w.people.add("Ewa", "Nowak", "ewa@example.com");
        w.run();
        CHECK(w.creator.records_by_id.size() == 3);
        CHECK(w.people.live() == 3);

        crmsync::testing::TempState other;
        w.people.edit(jan, "Janek");
        const auto counts = w.run(other.path());
        CHECK(counts.zoho_added == 0);
        CHECK(counts.google_created == 0);
        CHECK(counts.relinked >= 3);
        CHECK(w.creator.records_by_id.size() == 3);
        CHECK(w.people.live() == 3);
        CHECK(w.record_of_link(jan)["Name"]["first_name"] == "Janek");
    }

    SECTION("an add whose answer was lost is linked again, not added twice") {
        w.people.add("Jan", "Kowalski", "jan@example.com");
        w.people.add("Ewa", "Nowak", "ewa@example.com");
        w.creator.lose_add_answer = true;
        CHECK_THROWS_AS(w.run(), Error);
        CHECK(w.creator.records_by_id.size() == 2);
        const auto counts = w.run();
        CHECK(counts.zoho_added == 0);
        CHECK(counts.relinked == 2);
        CHECK(counts.queue_left == 0);
        CHECK(w.creator.records_by_id.size() == 2);
    }

    SECTION("a Google create whose answer was lost is found again, not created twice") {
        w.creator.seed("jsmith", "Ola", "ola@example.com");
        w.people.lose_create_answer = true;
        CHECK_THROWS_AS(w.run(), Error);
        CHECK(w.people.live() == 1);
        const auto counts = w.run();
        CHECK(counts.google_created == 0);
        CHECK(counts.zoho_added == 0);
        CHECK(w.people.live() == 1);
        CHECK(w.creator.records_by_id.size() == 1);
        CHECK(w.creator.records_by_id.begin()->second["Google_Resource_Name"] ==
              w.people.contacts.begin()->first);
    }

    SECTION("a record Zoho refuses is parked with its answer; the others go through") {
        w.people.add("Jan", "Kowalski", "jan@example.com");
        w.people.add("Bad", "Mail", "not-a-mail");
        w.creator.refuse_email = "not-a-mail";
        const auto counts = w.run();
        CHECK(counts.zoho_added == 1);
        CHECK(counts.rejected == 1);
        CHECK(counts.queue_left == 0);
        CHECK(w.run().rejected == 0); // not tried again until it changes
    }
}

TEST_CASE("ZohoZone", "[unit]") {
    SECTION("reads Creator times in the app's zone") {
        const auto utc = ZohoZone::parse("UTC").parse_time("13-Apr-2020 10:15:30");
        REQUIRE(utc);
        CHECK(util::format_iso8601(*utc) == "2020-04-13T10:15:30.000Z");
        const auto india = ZohoZone::parse("+05:30").parse_time("13-Apr-2020 10:15:30");
        REQUIRE(india);
        CHECK(util::format_iso8601(*india) == "2020-04-13T04:45:30.000Z");
        const auto other_format = ZohoZone::parse("UTC").parse_time("Sep 07,2026 14:42:52");
        REQUIRE(other_format);
        CHECK(util::format_iso8601(*other_format) == "2026-09-07T14:42:52.000Z");
    }
    SECTION("follows daylight saving time in a named zone") {
        const auto zone = ZohoZone::parse("Europe/Warsaw");
        CHECK(util::format_iso8601(*zone.parse_time("15-Jul-2024 12:00:00")) ==
              "2024-07-15T10:00:00.000Z");
        CHECK(util::format_iso8601(*zone.parse_time("15-Jan-2024 12:00:00")) ==
              "2024-01-15T11:00:00.000Z");
        CHECK(zone.format_time(*util::parse_iso8601("2024-07-15T10:00:00Z")) ==
              "15-Jul-2024 12:00:00");
    }
    SECTION("refuses what it cannot read") {
        CHECK_FALSE(ZohoZone::parse("UTC").parse_time("2020-04-13 10:15:30"));
        CHECK_FALSE(ZohoZone::parse("UTC").parse_time("13-Foo-2020 10:15:30"));
        CHECK_THROWS_AS(ZohoZone::parse("Mars/Olympus"), Error);
        CHECK_THROWS_AS(ZohoZone::parse("../../etc/passwd"), Error);
    }
}

TEST_CASE("Mapping", "[unit]") {
    const auto& m = Mapping::builtin();
    SECTION("reads the primary entries of a Person and the fields of a record alike") {
        const json person = {{"names", {{{"givenName", "Jan"}, {"familyName", "Kowalski"}}}},
                             {"emailAddresses",
                              {{{"value", "other@example.com"}},
                               {{"value", "jan@example.com"}, {"metadata", {{"primary", true}}}}}},
                             {"phoneNumbers", {{{"value", "+48 123"}}}}};
        const json record = {{"Name", {{"first_name", "Jan"}, {"last_name", "Kowalski"}}},
                             {"Email", "jan@example.com"},
                             {"Phone_Number", "+48 123"}};
        CHECK(m.from_google(person) == m.from_zoho(record));
        CHECK(m.to_zoho(m.from_google(person)) == record);
        CHECK(m.relink_key(m.from_zoho(json{{"Email", "Jan@Example.com"}})) == "jan@example.com");
    }
    SECTION("writes into a Person without losing its other entries") {
        const json person = {{"emailAddresses",
                              {{{"value", "old@example.com"}, {"metadata", {{"primary", true}}}},
                               {{"value", "second@example.com"}}}}};
        Contact c = m.from_google(person);
        c.values[2] = "new@example.com";
        const auto out = m.to_google(c, person);
        CHECK(out["emailAddresses"].size() == 2);
        CHECK(out["emailAddresses"][0]["value"] == "new@example.com");
        CHECK(out["emailAddresses"][1]["value"] == "second@example.com");
        CHECK(out["names"].empty());
    }
    SECTION("refuses a mapping without fields or with an unknown relink field") {
        CHECK_THROWS_AS(Mapping::parse("{}"), Error);
        CHECK_THROWS_AS(
            Mapping::parse(R"({"fields":[{"name":"a","google":{"list":"names","field":"x"},)"
                           R"("zoho":"A"}],"relink_field":"b"})"),
            Error);
    }
}
