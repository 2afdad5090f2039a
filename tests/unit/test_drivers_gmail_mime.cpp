#include "drivers/gmail/charset.hpp"
#include "drivers/gmail/html_text.hpp"
#include "drivers/gmail/mime.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

using nlohmann::json;
namespace gmail = crmsync::drivers::gmail;

namespace {

// base64url with '=' padding, as Gmail sends MessagePartBody.data.
std::string b64url(const std::string& bytes) {
    static const char* alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (const unsigned char c : bytes) {
        buffer = (buffer << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(buffer >> bits) & 63U];
        }
    }
    if (bits > 0) {
        out += alphabet[(buffer << (6 - bits)) & 63U];
    }
    while (out.size() % 4 != 0) {
        out += '=';
    }
    return out;
}

json leaf(const std::string& type, const std::string& bytes, const std::string& content_type,
          const std::string& filename = "", const std::string& transfer = "") {
    json headers = json::array({{{"name", "Content-Type"}, {"value", content_type}}});
    if (!transfer.empty()) {
        headers.push_back({{"name", "Content-Transfer-Encoding"}, {"value", transfer}});
    }
    return {{"partId", "0"},
            {"mimeType", type},
            {"filename", filename},
            {"headers", headers},
            {"body", {{"size", bytes.size()}, {"data", b64url(bytes)}}}};
}

json container(const std::string& type, json parts) {
    return {{"partId", ""},
            {"mimeType", type},
            {"filename", ""},
            {"headers",
             json::array({{{"name", "Content-Type"}, {"value", type + "; boundary=\"b1\""}}})},
            {"body", {{"size", 0}}},
            {"parts", std::move(parts)}};
}

} // namespace

TEST_CASE("gmail decode_base64url reads Gmail's body data", "[unit]") {
    SECTION("url alphabet with padding") {
        CHECK(gmail::decode_base64url("-__-Pw==") == std::string("\xfb\xff\xfe\x3f"));
    }
    SECTION("without padding and with the standard alphabet") {
        CHECK(gmail::decode_base64url("SGk") == std::string("Hi"));
        CHECK(gmail::decode_base64url("+//+Pw==") == std::string("\xfb\xff\xfe\x3f"));
    }
    SECTION("characters outside the alphabet or data after padding are refused") {
        CHECK_FALSE(gmail::decode_base64url("SGk*"));
        CHECK_FALSE(gmail::decode_base64url("SG==k"));
    }
}

TEST_CASE("gmail to_utf8 converts declared charsets", "[unit]") {
    SECTION("ISO-8859-2 Polish names") {
        CHECK(gmail::to_utf8("Pawe\xb3 \xa3ukasz", "iso-8859-2") == "Paweł Łukasz");
    }
    SECTION("windows-1250 Czech names, charset names in any case") {
        CHECK(gmail::to_utf8("\x8a\xe1rka \x8ei\x9ekov\xe1", "Windows-1250") == "Šárka Žižková");
    }
    SECTION("ISO-8859-1") {
        CHECK(gmail::to_utf8("Jos\xe9 M\xfcller", "ISO-8859-1") == "José Müller");
    }
    SECTION("a byte the charset does not define becomes U+FFFD and the rest survives") {
        CHECK(gmail::to_utf8("a\x98z", "windows-1250") == "a\xEF\xBF\xBDz");
    }
    SECTION("invalid UTF-8 in a UTF-8 part becomes U+FFFD") {
        CHECK(gmail::to_utf8("ok \xff\xfe end", "utf-8") == "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
    }
    SECTION("an unknown charset is read as UTF-8 and reported") {
        bool unknown = false;
        CHECK(gmail::to_utf8("Zażółć", "x-no-such-charset", &unknown) == "Zażółć");
        CHECK(unknown);
    }
    SECTION("an empty charset means ASCII/UTF-8") { CHECK(gmail::to_utf8("plain", "") == "plain"); }
}

TEST_CASE("gmail decode_header_words decodes RFC 2047 words", "[unit]") {
    CHECK(gmail::decode_header_words("=?iso-8859-2?Q?Pawe=B3_Nowak?= <p@example.pl>") ==
          "Paweł Nowak <p@example.pl>");
    CHECK(gmail::decode_header_words("=?UTF-8?B?WmHFvMOzxYLEhyBHxJnFm2zEhQ==?=") == "Zażółć Gęślą");
    // Whitespace between two encoded words is dropped, between a word and text it stays.
    CHECK(gmail::decode_header_words("=?UTF-8?Q?New_lead:?= =?UTF-8?Q?_Anna?= here") ==
          "New lead: Anna here");
    CHECK(gmail::decode_header_words("plain =?bogus") == "plain =?bogus");
}

TEST_CASE("gmail html_to_text shows what a reader sees", "[unit]") {
    SECTION("a form mailer's HTML: breaks, paragraphs, entities, styles and comments") {
        const std::string html =
            "<html><head><style>p { color: red; }</style><title>Lead</title></head>\r\n"
            "<body><!-- tracking --><p>New lead&nbsp;from the site</p>\r\n"
            "<p>Name: Anna &amp; Jan&#160;Nowak<br>E-mail:\r\n   anna@example.com<BR/>"
            "Phone: +48&nbsp;600&#x20;100 200</p><script>var x = '<p>no</p>';</script>"
            "<div>Message: I&#39;d like a &quot;quote&quot; &lt;today&gt;</div></body></html>";
        CHECK(gmail::html_to_text(html) ==
              "New lead from the site\n\nName: Anna & Jan Nowak\nE-mail: anna@example.com\n"
              "Phone: +48 600 100 200\n\nMessage: I'd like a \"quote\" <today>");
    }
    SECTION("table rows become lines, cells are separated") {
        CHECK(gmail::html_to_text("<table><tr><td>Name:</td><td>Ewa</td></tr>"
                                  "<tr><td>Phone:</td><td>123</td></tr></table>") ==
              "Name: Ewa\nPhone: 123");
    }
    SECTION("unknown entities and an unterminated tag do not break the text") {
        CHECK(gmail::html_to_text("a &bogus; b <span") == "a &bogus; b");
        CHECK(gmail::decode_entities("&#128512; &#xD800;") == "\xF0\x9F\x98\x80 \xEF\xBF\xBD");
    }
}

TEST_CASE("gmail message_text walks MIME trees", "[unit]") {
    SECTION("multipart/alternative inside multipart/mixed: the text/plain part wins over "
            "HTML and over a text attachment") {
        const json payload = container(
            "multipart/mixed",
            json::array({container("multipart/alternative",
                                   json::array({leaf("text/plain", "Name: Ewa\r\nPhone: 123\r\n",
                                                     "text/plain; charset=\"UTF-8\""),
                                                leaf("text/html", "<p>Name: HTML</p>",
                                                     "text/html; charset=\"UTF-8\"")})),
                         leaf("text/plain", "Name: Attachment", "text/plain; charset=UTF-8",
                              "notes.txt")}));
        const auto text = gmail::message_text(payload);
        CHECK(text.mime_type == "text/plain");
        CHECK(text.text == "Name: Ewa\nPhone: 123\n");
        CHECK(text.charset == "UTF-8");
    }
    SECTION("an attachment-only text part (Content-Disposition) is not the body") {
        json attachment = leaf("text/plain", "csv,data", "text/plain");
        attachment["headers"].push_back(
            {{"name", "Content-Disposition"}, {"value", "attachment; filename=\"a.csv\""}});
        const json payload =
            container("multipart/mixed",
                      json::array({leaf("text/html", "<b>Phone:</b> 5", "text/html"), attachment}));
        const auto text = gmail::message_text(payload);
        CHECK(text.mime_type == "text/html");
        CHECK(text.text == "Phone: 5");
    }
    SECTION("an HTML-only mail is converted to text") {
        const auto text = gmail::message_text(
            leaf("text/html", "<div>E-mail: <a href=\"mailto:x@y.pl\">x@y.pl</a></div>",
                 "text/html; charset=utf-8"));
        CHECK(text.text == "E-mail: x@y.pl");
    }
    SECTION("a part declared quoted-printable is not decoded twice") {
        // Gmail has undone the transfer encoding: "=3D" in the data is a literal "=3D".
        const auto text = gmail::message_text(
            leaf("text/plain", "Link: https://example.com/?a=3D1&b=C2\r\nName: Zo\xc3\xab\r\n",
                 "text/plain; charset=\"UTF-8\"", "", "quoted-printable"));
        CHECK(text.text == "Link: https://example.com/?a=3D1&b=C2\nName: Zoë\n");
    }
    SECTION("an ISO-8859-2 part is converted to UTF-8") {
        const auto text = gmail::message_text(
            leaf("text/plain", "Name: Pawe\xb3 Nowak", "text/plain; charset=ISO-8859-2"));
        CHECK(text.text == "Name: Paweł Nowak");
        CHECK(text.charset == "ISO-8859-2");
    }
    SECTION("a body kept as an attachment, or no text at all, is reported") {
        json big = leaf("text/plain", "", "text/plain");
        big["body"] = {{"size", 900000}, {"attachmentId", "ANGjdJ8"}};
        CHECK(gmail::message_text(big).problem == "the text part is stored as an attachment");
        CHECK(gmail::message_text(leaf("image/png", "\x89PNG", "image/png")).problem ==
              "the mail has no text/plain or text/html part");
        CHECK(gmail::message_text(json("not a part")).text.empty());
    }
    SECTION("a hostile, very deep tree is not walked to the end") {
        json part = leaf("text/plain", "deep", "text/plain");
        for (int i = 0; i < 100; ++i) {
            part = container("multipart/mixed", json::array({part}));
        }
        CHECK(gmail::message_text(part).text.empty());
    }
    SECTION("header_value finds a header case-insensitively and decodes it") {
        json part = leaf("text/plain", "x", "text/plain");
        part["headers"].push_back({{"name", "SUBJECT"}, {"value", "=?UTF-8?Q?Zg=C5=82oszenie?="}});
        CHECK(gmail::header_value(part, "Subject") == "Zgłoszenie");
        CHECK_FALSE(gmail::header_value(part, "From"));
        CHECK(gmail::header_parameter("text/plain; format=flowed; CHARSET=\"iso-8859-2\"",
                                      "charset") == "iso-8859-2");
    }
}
