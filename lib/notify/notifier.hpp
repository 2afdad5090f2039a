#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::notify {

// Where a notice goes: a mail through an SMTP server, or a JSON POST to a URL.
enum class Channel { smtp, url };
std::string_view to_string(Channel channel) noexcept;

// "smtp://[user@]host[:port]" (STARTTLS) or "smtps://[user@]host[:port]" (TLS from the start),
// split. The port defaults to 587 for smtp and 465 for smtps. Throws Error(usage) for another
// scheme, a missing host, a bad port, a path, or a password in the URL (it belongs in the
// environment, not in argv).
struct SmtpUrl {
    bool implicit_tls = false; // smtps
    std::string user;          // percent-decoded; empty: no AUTH
    std::string host;
    int port = 587;
    // Loopback servers (a local relay) may take a password without TLS; others must offer
    // STARTTLS or the mail is not sent.
    bool loopback() const;
};
SmtpUrl parse_smtp_url(std::string_view url);

struct NotifierOptions {
    std::string smtp_url;      // empty: no mail
    std::string smtp_password; // a secret (registered by the caller)
    std::vector<std::string> mail_to;
    std::string mail_from; // empty: the SMTP user if it is an address, else crmsync@<host>
    std::string url;       // empty: no POST
    bool verify_tls = true;
    std::chrono::milliseconds timeout{20'000}; // per attempt
    int attempts = 3;                          // per channel and notice
};

// One notice about a job's error episode.
struct Notice {
    enum class Kind { error, recovered };
    Kind kind = Kind::error;
    std::string command; // "db_sync"
    std::string job;     // "2FZFB7ZN993KJBR9"
    std::string host;    // the machine the job runs on
    std::string error;   // the first error of the episode (error), the last one (recovered)
    std::string since;   // ISO-8601 time of the episode's first failure
    std::string at;      // ISO-8601 time of this run
    long failures = 0;   // failed runs in the episode so far
};

struct SendResult {
    bool ok = false;
    std::string error; // why it was not sent, for the log (secrets redacted)
};

// Sends notices. Every text leaving through it passes util::redact. Not thread safe.
class Notifier {
public:
    explicit Notifier(NotifierOptions options);

    // The configured channels, smtp first.
    std::vector<Channel> channels() const;

    // Sends `notice` through `channel`, with a few attempts on transient failures (connection
    // errors, SMTP 4xx, HTTP 408/429/5xx). ok once the SMTP server accepted the data or the URL
    // answered 2xx. Never throws.
    SendResult send(const Notice& notice, Channel channel) noexcept;

    // The texts sent, exposed for tests.
    static std::string subject(const Notice& notice);
    static std::string body(const Notice& notice);
    std::string mail_message(const Notice& notice) const; // RFC 5322, CRLF line ends
    static std::string json_body(const Notice& notice);

private:
    SendResult send_mail(const Notice& notice);
    SendResult post(const Notice& notice);
    std::string mail_from() const;

    NotifierOptions m_options;
};

// This machine's name (gethostname), "localhost" if it has none.
std::string host_name();

} // namespace crmsync::notify
