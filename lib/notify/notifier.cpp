#include "lib/notify/notifier.hpp"

#include "lib/core/cancel.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/http/curl_handles.hpp"
#include "lib/http/http_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/redact.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <random>
#include <thread>
#include <unistd.h>

namespace crmsync::notify {
namespace {

// RFC 5321 allows 998 characters per line; long error texts are wrapped well below that.
constexpr std::size_t k_max_line = 900;

Error url_error(std::string_view url, const std::string& what) {
    return Error(ErrorKind::usage,
                 "--notify-smtp '" + util::redact(util::redact_url(url)) + "': " + what,
                 "write smtp://user@host:587 (STARTTLS) or smtps://user@host:465; the password "
                 "goes in CRMSYNC_SMTP_PASSWORD");
}

// Header values never carry line breaks (no header injection through a job name or error).
std::string header_value(std::string_view text) {
    std::string out;
    for (const char c : text) {
        out += (c == '\r' || c == '\n' || c == '\t') ? ' ' : c;
    }
    return out;
}

std::string base64(std::string_view data) {
    static constexpr char k_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < data.size(); i += 3) {
        const auto n = (static_cast<unsigned>(static_cast<unsigned char>(data[i])) << 16) |
                       (static_cast<unsigned>(static_cast<unsigned char>(data[i + 1])) << 8) |
                       static_cast<unsigned>(static_cast<unsigned char>(data[i + 2]));
        out += k_alphabet[(n >> 18) & 63];
        out += k_alphabet[(n >> 12) & 63];
        out += k_alphabet[(n >> 6) & 63];
        out += k_alphabet[n & 63];
    }
    if (i < data.size()) {
        auto n = static_cast<unsigned>(static_cast<unsigned char>(data[i])) << 16;
        if (i + 1 < data.size()) {
            n |= static_cast<unsigned>(static_cast<unsigned char>(data[i + 1])) << 8;
        }
        out += k_alphabet[(n >> 18) & 63];
        out += k_alphabet[(n >> 12) & 63];
        out += i + 1 < data.size() ? k_alphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

// RFC 2047 encoded word for a header with non-ASCII text; ASCII stays as it is.
std::string encode_header(std::string_view text) {
    const bool ascii = std::all_of(text.begin(), text.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    return ascii ? std::string(text) : "=?UTF-8?B?" + base64(text) + "?=";
}

// CRLF line ends, lines cut below the SMTP limit at UTF-8 character boundaries.
std::string mail_lines(std::string_view text) {
    std::string out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        while (line.size() > k_max_line) {
            std::size_t cut = k_max_line;
            while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) {
                --cut;
            }
            out += std::string(line.substr(0, cut)) + "\r\n";
            line.remove_prefix(cut);
        }
        out += std::string(line) + "\r\n";
        start = end + 1;
    }
    return out;
}

std::string mail_date() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char text[64];
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return text;
}

std::string random_hex(std::size_t n) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += k_hex[rng() & 15];
    }
    return out;
}

// "db_sync 2FZFB7ZN993KJBR9 into ...": the command, then the job without a repeated prefix.
std::string label(const Notice& n) {
    std::string_view job = n.job;
    if (job.rfind(n.command + ":", 0) == 0) {
        job.remove_prefix(n.command.size() + 1);
    }
    return job.empty() || job == n.command ? n.command : n.command + " " + std::string(job);
}

struct Upload {
    const std::string* data = nullptr;
    std::size_t offset = 0;
};

size_t read_upload(char* buffer, size_t size, size_t count, void* user) {
    auto* upload = static_cast<Upload*>(user);
    const std::size_t n = std::min(size * count, upload->data->size() - upload->offset);
    std::memcpy(buffer, upload->data->data() + upload->offset, n);
    upload->offset += n;
    return n;
}

// Waits before another attempt; false when a stop signal asks to give up.
bool pause_before_retry(int attempt) {
    http::RetryPolicy policy;
    policy.base_delay = std::chrono::milliseconds(500);
    auto wait = policy.backoff(attempt);
    while (wait.count() > 0) {
        if (stop_requested()) {
            return false;
        }
        const auto slice =
            std::min<std::chrono::milliseconds>(wait, std::chrono::milliseconds(100));
        std::this_thread::sleep_for(slice);
        wait -= slice;
    }
    return !stop_requested();
}

} // namespace

std::string_view to_string(Channel channel) noexcept {
    return channel == Channel::smtp ? "smtp" : "url";
}

bool SmtpUrl::loopback() const {
    return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

SmtpUrl parse_smtp_url(std::string_view url) {
    SmtpUrl result;
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        throw url_error(url, "not an smtp:// or smtps:// URL");
    }
    const std::string scheme = util::ascii_lower(url.substr(0, scheme_end));
    if (scheme == "smtps") {
        result.implicit_tls = true;
        result.port = 465;
    } else if (scheme != "smtp") {
        throw url_error(url, "not an smtp:// or smtps:// URL");
    }
    std::string_view rest = url.substr(scheme_end + 3);
    if (const auto slash = rest.find_first_of("/?#"); slash != std::string_view::npos) {
        if (rest.substr(slash) != "/") {
            throw url_error(url, "an SMTP URL has no path or query");
        }
        rest = rest.substr(0, slash);
    }
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const auto userinfo = rest.substr(0, at);
        if (userinfo.find(':') != std::string_view::npos) {
            throw url_error(url, "the URL holds a password, which would show in ps and logs");
        }
        result.user = util::percent_decode(userinfo);
        rest = rest.substr(at + 1);
    }
    std::string_view host = rest;
    std::string_view port;
    bool has_port = false;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) {
            throw url_error(url, "unterminated IPv6 address");
        }
        host = rest.substr(0, close + 1);
        if (close + 1 < rest.size()) {
            if (rest[close + 1] != ':') {
                throw url_error(url, "unexpected text after the host");
            }
            has_port = true;
            port = rest.substr(close + 2);
        }
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        has_port = true;
    }
    if (host.empty()) {
        throw url_error(url, "no host");
    }
    result.host = util::ascii_lower(host);
    if (has_port) {
        int value = 0;
        for (const char c : port) {
            if (!std::isdigit(static_cast<unsigned char>(c)) || value > 65535) {
                value = -1;
                break;
            }
            value = value * 10 + (c - '0');
        }
        if (port.empty() || value <= 0 || value > 65535) {
            throw url_error(url, "invalid port");
        }
        result.port = value;
    }
    return result;
}

std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
        return "localhost";
    }
    return name;
}

Notifier::Notifier(NotifierOptions options) : m_options(std::move(options)) {
    http::ensure_curl_global_init();
}

std::vector<Channel> Notifier::channels() const {
    std::vector<Channel> out;
    if (!m_options.smtp_url.empty() && !m_options.mail_to.empty()) {
        out.push_back(Channel::smtp);
    }
    if (!m_options.url.empty()) {
        out.push_back(Channel::url);
    }
    return out;
}

std::string Notifier::subject(const Notice& n) {
    return fmt::format("crmsync: {} {} on {}", label(n),
                       n.kind == Notice::Kind::error ? "failing" : "recovered", n.host);
}

std::string Notifier::body(const Notice& n) {
    if (n.kind == Notice::Kind::error) {
        return fmt::format(
            "The crmsync job {} on {} failed at {}:\n\n{}\n\n"
            "This is the only notice of this error episode: further failures of the job send "
            "nothing,\nand the first successful run sends a \"recovered\" notice.\n",
            label(n), n.host, n.at, n.error);
    }
    return fmt::format("The crmsync job {} on {} works again: the run at {} succeeded.\n\n"
                       "It had failed {} run{} in a row since {}. The last error was:\n\n{}\n",
                       label(n), n.host, n.at, n.failures, n.failures == 1 ? "" : "s", n.since,
                       n.error);
}

std::string Notifier::mail_from() const {
    if (!m_options.mail_from.empty()) {
        return m_options.mail_from;
    }
    try {
        const auto smtp = parse_smtp_url(m_options.smtp_url);
        if (smtp.user.find('@') != std::string::npos) {
            return smtp.user;
        }
    } catch (const Error&) {
        // send_mail reports the URL.
    }
    return "crmsync@" + host_name();
}

std::string Notifier::mail_message(const Notice& n) const {
    std::string to;
    for (const auto& address : m_options.mail_to) {
        to += (to.empty() ? "" : ", ") + header_value(address);
    }
    std::string headers;
    headers += "Date: " + mail_date() + "\r\n";
    headers += "From: crmsync <" + header_value(mail_from()) + ">\r\n";
    headers += "To: " + to + "\r\n";
    headers += "Subject: " + encode_header(header_value(util::redact(subject(n)))) + "\r\n";
    headers += "Message-ID: <" + random_hex(24) + ".crmsync@" + header_value(n.host) + ">\r\n";
    headers += "MIME-Version: 1.0\r\n";
    headers += "Content-Type: text/plain; charset=utf-8\r\n";
    headers += "Content-Transfer-Encoding: 8bit\r\n";
    headers += "Auto-Submitted: auto-generated\r\n";
    headers += "X-Crmsync-Job: " + header_value(label(n)) + "\r\n";
    headers += std::string("X-Crmsync-Event: ") +
               (n.kind == Notice::Kind::error ? "error" : "recovered") + "\r\n";
    return headers + "\r\n" + mail_lines(util::redact(body(n)));
}

std::string Notifier::json_body(const Notice& n) {
    const bool error = n.kind == Notice::Kind::error;
    nlohmann::ordered_json j;
    j["event"] = error ? "error" : "recovered";
    // "text" makes chat webhooks (Slack, Mattermost, Teams connectors) show something useful.
    j["text"] = subject(n) + (error ? ": " + n.error : std::string());
    j["command"] = n.command;
    j["job"] = n.job;
    j["host"] = n.host;
    j["at"] = n.at;
    j["error_since"] = n.since;
    j["failures"] = n.failures;
    j["error"] = n.error;
    j["crmsync_version"] = CRMSYNC_VERSION;
    return util::redact(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

SendResult Notifier::send(const Notice& notice, Channel channel) noexcept {
    SendResult result;
    try {
        result = channel == Channel::smtp ? send_mail(notice) : post(notice);
    } catch (const std::exception& e) {
        result.ok = false;
        result.error = e.what();
    }
    result.error = util::redact(result.error);
    const char* kind = notice.kind == Notice::Kind::error ? "error" : "recovered";
    if (result.ok) {
        log::info("sent the {} notice of {} by {}", kind, label(notice), to_string(channel));
    } else {
        log::warn("could not send the {} notice of {} by {}: {}", kind, label(notice),
                  to_string(channel), result.error);
    }
    return result;
}

SendResult Notifier::send_mail(const Notice& notice) {
    const auto smtp = parse_smtp_url(m_options.smtp_url);
    const std::string message = mail_message(notice);
    const std::string from = mail_from();
    const std::string url =
        fmt::format("{}://{}:{}", smtp.implicit_tls ? "smtps" : "smtp", smtp.host, smtp.port);
    SendResult result;
    for (int attempt = 1;; ++attempt) {
        http::CurlEasy handle(curl_easy_init());
        if (!handle) {
            return {false, "libcurl could not create a handle"};
        }
        CURL* h = handle.get();
        char error_buffer[CURL_ERROR_SIZE] = {};
        http::CurlSlist recipients;
        for (const auto& to : m_options.mail_to) {
            curl_slist* appended = curl_slist_append(recipients.get(), ("<" + to + ">").c_str());
            if (appended == nullptr) {
                return {false, "out of memory"};
            }
            (void)recipients.release();
            recipients.reset(appended);
        }
        Upload upload{&message, 0};
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                         static_cast<long>(http::k_connect_timeout.count()));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(m_options.timeout.count()));
        // A password crosses the network only encrypted; a relay on loopback may do without.
        const bool require_tls = !smtp.implicit_tls && !smtp.user.empty() && !smtp.loopback();
        curl_easy_setopt(h, CURLOPT_USE_SSL,
                         static_cast<long>(require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, m_options.verify_tls ? 1L : 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, m_options.verify_tls ? 2L : 0L);
        if (!smtp.user.empty()) {
            curl_easy_setopt(h, CURLOPT_USERNAME, smtp.user.c_str());
            curl_easy_setopt(h, CURLOPT_PASSWORD, m_options.smtp_password.c_str());
        }
        curl_easy_setopt(h, CURLOPT_MAIL_FROM, ("<" + from + ">").c_str());
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, recipients.get());
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_upload);
        curl_easy_setopt(h, CURLOPT_READDATA, &upload);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        const CURLcode code = curl_easy_perform(h);
        if (code == CURLE_OK) {
            return {true, {}};
        }
        long reply = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply);
        result.error = fmt::format(
            "{} ({}{})", error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code),
            reply > 0 ? "last SMTP reply " : "no SMTP reply",
            reply > 0 ? std::to_string(reply) : std::string());
        // 5xx replies and refused logins are final; timeouts, resets and 4xx may pass.
        const bool final = (reply >= 500 && reply < 600) || code == CURLE_LOGIN_DENIED ||
                           code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT ||
                           code == CURLE_USE_SSL_FAILED || code == CURLE_PEER_FAILED_VERIFICATION;
        if (final || attempt >= m_options.attempts || !pause_before_retry(attempt)) {
            return result;
        }
    }
}

SendResult Notifier::post(const Notice& notice) {
    http::HttpClientOptions client_options;
    client_options.verify_tls = m_options.verify_tls;
    http::HttpClient client(client_options);
    http::HttpRequest request;
    request.method = "POST";
    request.url = m_options.url;
    request.timeout = m_options.timeout;
    request.headers = {{"Content-Type", "application/json"}};
    request.body = json_body(notice);
    SendResult result;
    for (int attempt = 1;; ++attempt) {
        http::HttpResponse response;
        http::TransportFailure failure;
        bool retry = false;
        if (client.perform(request, response, failure)) {
            if (response.status >= 200 && response.status < 300) {
                return {true, {}};
            }
            result.error = fmt::format("HTTP {}", response.status);
            retry = http::RetryPolicy::is_retryable_status(response.status);
        } else {
            result.error = failure.message;
            retry = http::RetryPolicy::is_retryable_transport(failure.curl_code);
        }
        if (!retry || attempt >= m_options.attempts || !pause_before_retry(attempt)) {
            return result;
        }
    }
}

} // namespace crmsync::notify
