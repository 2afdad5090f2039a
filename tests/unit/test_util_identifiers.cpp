#include "lib/util/hash.hpp"
#include "lib/util/identifiers.hpp"
#include "lib/util/utf8.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

namespace util = crmsync::util;

namespace {

std::string suffix_of(const std::string& original) {
    return "_" + util::md5_hex(original).substr(0, 8);
}

bool ends_with(const std::string& text, const std::string& tail) {
    return text.size() >= tail.size() &&
           text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

std::string repeat(const std::string& unit, std::size_t times) {
    std::string out;
    for (std::size_t i = 0; i < times; ++i) {
        out += unit;
    }
    return out;
}

} // namespace

TEST_CASE("util::sanitize_identifier", "[unit]") {
    SECTION("ordinary names, dbsync2's $ names and non-ASCII letters are kept") {
        CHECK(util::sanitize_identifier("firstname", 64) == "firstname");
        CHECK(util::sanitize_identifier("$status_detail", 64) == "$status_detail");
        CHECK(util::sanitize_identifier("Z\xC3\xA4hler_Nr", 64) == "Z\xC3\xA4hler_Nr");
        CHECK(util::sanitize_identifier("first name", 64) == "first name");
    }
    SECTION("quote characters of every dialect become _") {
        CHECK(util::sanitize_identifier("a\"b", 64) == "a_b");
        CHECK(util::sanitize_identifier("a`b", 64) == "a_b");
        CHECK(util::sanitize_identifier("a'b", 64) == "a_b");
        CHECK(util::sanitize_identifier("[a]", 64) == "_a_");
        CHECK(util::sanitize_identifier("a\\b", 64) == "a_b");
    }
    SECTION("placeholder characters : and ? become _") {
        CHECK(util::sanitize_identifier("a:b", 64) == "a_b");
        CHECK(util::sanitize_identifier(":p0", 64) == "_p0");
        CHECK(util::sanitize_identifier("why?", 64) == "why_");
    }
    SECTION("control characters become _") {
        CHECK(util::sanitize_identifier(std::string("a\0b", 3), 64) == "a_b");
        CHECK(util::sanitize_identifier("a\nb", 64) == "a_b");
        CHECK(util::sanitize_identifier("a\tb", 64) == "a_b");
        CHECK(util::sanitize_identifier("a\x7F"
                                        "b",
                                        64) == "a_b");
    }
    SECTION("surrounding spaces are trimmed") {
        CHECK(util::sanitize_identifier("  name  ", 64) == "name");
    }
    SECTION("an empty or blank name becomes field") {
        CHECK(util::sanitize_identifier("", 64) == "field");
        CHECK(util::sanitize_identifier("   ", 64) == "field");
    }
    SECTION("invalid UTF-8 is replaced so the name is valid UTF-8") {
        const auto s = util::sanitize_identifier("a\xFF"
                                                 "b",
                                                 64);
        CHECK(util::is_valid_utf8(s));
        CHECK(s == "a\xEF\xBF\xBD"
                   "b");
    }
    SECTION("a name of exactly max bytes is kept") {
        const std::string name(64, 'a');
        CHECK(util::sanitize_identifier(name, 64) == name);
    }
    SECTION("a long name is cut and suffixed with its hash, within max bytes") {
        const std::string name(100, 'a');
        const auto s = util::sanitize_identifier(name, 64);
        CHECK(s.size() <= 64);
        CHECK(ends_with(s, suffix_of(name)));
        CHECK(s.rfind(std::string(40, 'a'), 0) == 0);
    }
    SECTION("a long multibyte name is cut on a code point boundary") {
        const std::string name = repeat("\xC3\xA4", 40); // 80 bytes of 'ä'
        for (std::size_t max : {63u, 64u, 30u}) {
            INFO(max);
            const auto s = util::sanitize_identifier(name, max);
            CHECK(s.size() <= max);
            CHECK(util::is_valid_utf8(s));
            CHECK(ends_with(s, suffix_of(name)));
        }
        const std::string emoji = repeat("\xF0\x9F\x98\x80", 30); // 120 bytes
        const auto e = util::sanitize_identifier(emoji, 63);
        CHECK(e.size() <= 63);
        CHECK(util::is_valid_utf8(e));
    }
    SECTION("two long names sharing a prefix stay distinct") {
        const std::string a = std::string(100, 'x') + "a";
        const std::string b = std::string(100, 'x') + "b";
        CHECK(util::sanitize_identifier(a, 64) != util::sanitize_identifier(b, 64));
    }
}

TEST_CASE("util::collision_key", "[unit]") {
    SECTION("ASCII letters are lower-cased") {
        CHECK(util::collision_key("Name") == "name");
        CHECK(util::collision_key("$ID") == "$id");
        CHECK(util::collision_key("_RAW") == "_raw");
    }
    SECTION("each non-ASCII code point folds to one ?") {
        CHECK(util::collision_key("Z\xC3\xA4hler") == "z?hler");
        CHECK(util::collision_key("Z\xC3\x84HLER") == "z?hler");
        CHECK(util::collision_key("\xF0\x9F\x98\x80") == "?");
    }
    SECTION("case twins share a key") {
        CHECK(util::collision_key("firstName") == util::collision_key("FIRSTNAME"));
    }
}

TEST_CASE("util::IdentifierAllocator", "[unit]") {
    util::IdentifierAllocator names(64);

    SECTION("reserved fixed names keep their spelling and cannot be reserved twice") {
        CHECK(names.reserve("$id"));
        CHECK(names.reserve("_raw"));
        CHECK_FALSE(names.reserve("$id"));
        CHECK_FALSE(names.reserve("$ID"));
    }
    SECTION("a free name keeps its spelling") {
        CHECK(names.allocate("firstname") == "firstname");
        CHECK(names.allocate("Z\xC3\xA4hler") == "Z\xC3\xA4hler");
    }
    SECTION("a name colliding with a fixed column gets its hash suffix") {
        names.reserve("$id");
        names.reserve("_raw");
        CHECK(names.allocate("$id") == "$id" + suffix_of("$id"));
        CHECK(names.allocate("_RAW") == "_RAW" + suffix_of("_RAW"));
    }
    SECTION("case twins get distinct names") {
        const auto first = names.allocate("Name");
        const auto second = names.allocate("name");
        CHECK(first == "Name");
        CHECK(second == "name" + suffix_of("name"));
        CHECK(util::collision_key(first) != util::collision_key(second));
    }
    SECTION("names that sanitise alike get distinct names") {
        const auto a = names.allocate("a\"b");
        const auto b = names.allocate("a`b");
        const auto c = names.allocate("a_b");
        const std::set<std::string> keys{util::collision_key(a), util::collision_key(b),
                                         util::collision_key(c)};
        CHECK(keys.size() == 3);
        for (const auto& s : {a, b, c}) {
            CHECK(s.find_first_of("\"`") == std::string::npos);
        }
    }
    SECTION("suffixed long names stay within max bytes") {
        const std::string base(70, 'q');
        const auto a = names.allocate(base);
        const auto b = names.allocate(base);
        CHECK(a.size() <= 64);
        CHECK(b.size() <= 64);
        CHECK(a != b);
    }
    SECTION("a field maps to the same name whatever was allocated before it") {
        const std::vector<std::string> fields{"zeta",
                                              "$id",
                                              "alpha",
                                              "_raw",
                                              "Stra\xC3\x9F"
                                              "e",
                                              "x:y"};
        util::IdentifierAllocator forward(64);
        util::IdentifierAllocator backward(64);
        for (auto* a : {&forward, &backward}) {
            a->reserve("$id");
            a->reserve("_raw");
        }
        std::vector<std::string> out_forward;
        for (const auto& f : fields) {
            out_forward.push_back(forward.allocate(f));
        }
        std::vector<std::string> out_backward(fields.size());
        for (std::size_t i = fields.size(); i-- > 0;) {
            out_backward[i] = backward.allocate(fields[i]);
        }
        CHECK(out_forward == out_backward);
    }
    SECTION("a field with a suffix gets the same suffix in every run") {
        util::IdentifierAllocator other(64);
        other.reserve("$id");
        other.allocate("unrelated");
        names.reserve("$id");
        CHECK(names.allocate("$id") == other.allocate("$id"));
    }
}

TEST_CASE("util::is_plain_mail_address", "[unit]") {
    SECTION("takes name@domain") { CHECK(util::is_plain_mail_address("alice@example.com")); }
    SECTION("refuses what could break a mail header or hide a second address") {
        for (const char* bad :
             {"", "alice", "@example.com", "alice@", "a b@example.com", "<alice@example.com>",
              "a@x.com,b@y.com", "\"a\"@x.com", "a@x.com\r\nBcc: e@vil.com"}) {
            CAPTURE(bad);
            CHECK_FALSE(util::is_plain_mail_address(bad));
        }
    }
}
