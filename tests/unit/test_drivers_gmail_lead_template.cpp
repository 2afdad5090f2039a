#include "drivers/gmail/lead_source.hpp"
#include "drivers/gmail/lead_template.hpp"
#include "lib/core/error.hpp"
#include "tests/fakes/gmail/gmail_fake.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

using crmsync::Error;
using crmsync::ErrorKind;
using crmsync::fakes::GmailFake;
using nlohmann::json;
namespace gmail = crmsync::drivers::gmail;

namespace {

// The template of the issue, as a user writes it.
const char* const k_contact_form = R"({"name": "contact-form",
  "query": "from:forms@example.com subject:\"New lead\"",
  "fields": {"name": "^Name:\\s*(.+)$", "email": "^E-?mail:\\s*(\\S+)$",
             "phone": "^Phone:\\s*(.+)$", "message": "^Message:\\s*([\\s\\S]*)$"}})";

gmail::LeadTemplate contact_form() { return gmail::LeadTemplate::parse(k_contact_form, "t.json"); }

const std::vector<std::pair<std::string, std::string>> k_headers = {
    {"From", "Website <forms@example.com>"}, {"Subject", "New lead: contact form"}};

std::string config_error(const std::string& text) {
    try {
        gmail::LeadTemplate::parse(text, "bad.json");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::config);
        return e.what();
    }
    FAIL("no error for " << text);
    return {};
}

} // namespace

TEST_CASE("gmail lead template reads real-world lead mails", "[unit]") {
    const auto t = contact_form();
    CHECK(t.name() == "contact-form");
    CHECK(t.query() == "from:forms@example.com subject:\"New lead\"");

    SECTION("a plain UTF-8 mail declared quoted-printable, with CRLF and a multi-line message") {
        // What Gmail hands over for a QP part: decoded bytes, CRLF kept, "=3D" never seen.
        const auto message = GmailFake::message(
            "18c1f0a2b3c4d5e6", 1764756000000,
            GmailFake::part("text/plain",
                            "Name: Zoë Müller\r\nE-mail: zoe@example.de\r\nPhone: +49 30 "
                            "1234567 \r\nMessage: Hello,\r\nplease call me =3D soon.\r\n",
                            {{"Content-Type", "text/plain; charset=\"UTF-8\""},
                             {"Content-Transfer-Encoding", "quoted-printable"}}),
            k_headers);
        const auto r = gmail::lead_record(message, t);
        CHECK(r["source"] == "gmail");
        CHECK(r["id"] == "18c1f0a2b3c4d5e6");
        CHECK(r["created_at"] == "2025-12-03T10:00:00Z");
        CHECK(r["name"] == "Zoë Müller");
        CHECK(r["email"] == "zoe@example.de");
        CHECK(r["phone"] == "+49 30 1234567");
        CHECK(r["message"] == "Hello,\nplease call me =3D soon.");
        CHECK(r["details"]["template"] == "contact-form");
        CHECK(r["details"]["subject"] == "New lead: contact form");
        CHECK(r["details"]["from"] == "Website <forms@example.com>");
        CHECK(r["details"]["part"] == "text/plain");
        CHECK_FALSE(r.contains("error"));
    }
    SECTION("an HTML-only mail with an ISO-8859-2 name") {
        const auto message = GmailFake::message(
            "18c1f0a2b3c4d5e7", 1764756000000,
            GmailFake::part("text/html",
                            "<html><body><p><b>Name:</b>&nbsp;Pawe\xb3 \xa3uczak</p>"
                            "<p><b>Email:</b> pawel@example.pl<br>"
                            "<b>Phone:</b> +48&nbsp;600 100 200</p></body></html>",
                            {{"Content-Type", "text/html; charset=iso-8859-2"},
                             {"Content-Transfer-Encoding", "quoted-printable"}}),
            k_headers);
        const auto r = gmail::lead_record(message, t);
        CHECK(r["name"] == "Paweł Łuczak");
        CHECK(r["email"] == "pawel@example.pl");
        CHECK(r["phone"] == "+48 600 100 200");
        CHECK(r["message"].is_null());
        CHECK(r["details"]["part"] == "text/html");
        CHECK(r["details"]["charset"] == "iso-8859-2");
    }
    SECTION("multipart/alternative inside multipart/mixed with a PDF attachment") {
        const auto message = GmailFake::message(
            "18c1f0a2b3c4d5e8", 1764756000000,
            GmailFake::multipart(
                "multipart/mixed",
                {GmailFake::multipart(
                     "multipart/alternative",
                     {GmailFake::part("text/plain", "Name: Jiří Dvořák\r\nPhone: 777 123 456\r\n",
                                      {{"Content-Type", "text/plain; charset=UTF-8"}}),
                      GmailFake::part("text/html", "<p>Name: wrong</p>",
                                      {{"Content-Type", "text/html; charset=UTF-8"}})}),
                 [] {
                     auto pdf = GmailFake::part("application/pdf", "%PDF-1.4",
                                                {{"Content-Type", "application/pdf"}});
                     pdf["filename"] = "offer.pdf";
                     return pdf;
                 }()}),
            k_headers);
        const auto r = gmail::lead_record(message, t);
        CHECK(r["name"] == "Jiří Dvořák");
        CHECK(r["email"].is_null());
        CHECK(r["phone"] == "777 123 456");
    }
    SECTION("a mail with neither e-mail nor phone is a record with the reason") {
        const auto message =
            GmailFake::message("18c1f0a2b3c4d5e9", 1764756000000,
                               GmailFake::part("text/plain", "Out of office until Monday.\r\n",
                                               {{"Content-Type", "text/plain; charset=UTF-8"}}),
                               k_headers);
        const auto r = gmail::lead_record(message, t);
        CHECK(r["id"] == "18c1f0a2b3c4d5e9");
        CHECK(r["error"] ==
              "template contact-form found neither an e-mail nor a phone in the mail");
        CHECK(r["raw"] == "Out of office until Monday.\n");
    }
    SECTION("a mail without a usable internalDate or payload is a record with the reason") {
        auto message = GmailFake::message(
            "m1", 1764756000000,
            GmailFake::part("text/plain", "E-mail: a@b.c", {{"Content-Type", "text/plain"}}),
            k_headers);
        message["internalDate"] = "soon";
        CHECK(gmail::lead_record(message, t)["error"] ==
              "the message has no readable internalDate");
        message["internalDate"] = "1764756000000";
        message.erase("payload");
        CHECK(gmail::lead_record(message, t)["error"].get<std::string>().starts_with(
            "the message has no payload"));
    }
    SECTION("a regex that gives up on a hostile mail is a reason, not a crash") {
        const auto hostile = gmail::LeadTemplate::parse(
            R"({"name": "h", "query": "x", "fields": {"email": "^(a+)+$"}})", "h.json");
        std::vector<std::string> problems;
        const auto values = hostile.read(std::string(5000, 'a') + "!", &problems);
        CHECK(values.empty());
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].find("field 'email'") != std::string::npos);
    }
    SECTION("a very long message body is read without recursion trouble") {
        const std::string body =
            "E-mail: long@example.com\nMessage: " + std::string(2'000'000, 'x');
        const auto values = t.read(body);
        CHECK(values.at("email") == "long@example.com");
        CHECK(values.at("message").size() == 1'000'000 - 34);
    }
}

TEST_CASE("gmail lead template files are checked with clear errors", "[unit]") {
    SECTION("a regex that does not compile names the field, the offset and why") {
        const auto what = config_error(
            R"({"name": "n", "query": "q", "fields": {"email": "^E-mail:\\s*(\\S+$"}})");
        CHECK(what.find("field 'email'") != std::string::npos);
        CHECK(what.find("missing closing parenthesis") != std::string::npos);
        CHECK(what.find("bad.json") != std::string::npos);
    }
    SECTION("missing or ill-typed keys are named") {
        CHECK(config_error(R"({"query": "q", "fields": {"email": "x"}})").find("\"name\"") !=
              std::string::npos);
        CHECK(config_error(R"({"name": "n", "fields": {"email": "x"}})").find("\"query\"") !=
              std::string::npos);
        CHECK(config_error(R"({"name": "n", "query": "q"})").find("\"fields\"") !=
              std::string::npos);
        CHECK(config_error(R"({"name": "n", "query": "q", "fields": {"email": 5}})")
                  .find("field 'email'") != std::string::npos);
        CHECK(config_error(R"({"name": "n", "query": "q", "fields": {"name": "x"}})")
                  .find("neither \"email\" nor \"phone\"") != std::string::npos);
        CHECK(config_error("{not json").find("not a JSON object") != std::string::npos);
    }
    SECTION("load_lead_template reads a file, and names a missing one") {
        crmsync::testing::TempDir dir;
        const auto path = std::filesystem::path(dir.path()) / "template.json";
        std::ofstream(path) << k_contact_form;
        const auto t = gmail::load_lead_template(path.string());
        CHECK(t.field_names() == std::vector<std::string>{"email", "message", "name", "phone"});
        try {
            gmail::load_lead_template(dir.path() + "/missing.json");
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::config);
            CHECK(std::string(e.what()).find("missing.json") != std::string::npos);
        }
    }
}
