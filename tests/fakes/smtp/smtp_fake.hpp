#pragma once

// A minimal SMTP server (RFC 5321) on 127.0.0.1 for tests of mail notifications: enough for
// libcurl's SMTP client. Plain TCP, no TLS (STARTTLS gets 454), one thread per connection.
//
// Dialogue:
//   220 greeting; EHLO (advertises SIZE, 8BITMIME, and AUTH PLAIN LOGIN when credentials are
//   set) or HELO; AUTH PLAIN and AUTH LOGIN, each with or without an initial response, checked
//   against the credentials (235, or 535 5.7.8); MAIL FROM:<a> [params]; RCPT TO:<b>, repeated;
//   DATA -> 354, lines up to "." with dot-unstuffing -> 250; RSET, NOOP, VRFY (252), HELP,
//   QUIT (221). Commands out of order get 503, bad arguments 501, unknown commands 500.
//   With credentials, MAIL before a successful AUTH gets 530 5.7.0.
// A message is recorded when its data is accepted. A refusal (refuse_next) replaces the
// normal reply at its stage; a 421 reply also closes the connection, as RFC 5321 §3.8 says.
//
// Thread safety: every public method may be called from any thread while the server runs.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::fakes {

struct SmtpCredentials {
    std::string user;
    std::string password;
};

struct SmtpFakeOptions {
    std::string hostname = "localhost"; ///< Named in the greeting and the EHLO reply.
    /// Set: AUTH is advertised and required before MAIL. Unset: AUTH is refused with 503.
    std::optional<SmtpCredentials> credentials;
    /// Advertised as SIZE; a larger message gets 552.
    std::size_t max_message_bytes = std::size_t{10} * 1024 * 1024;
    std::chrono::seconds idle_timeout{60}; ///< Silence before 421 and disconnect.
};

struct SmtpMessage {
    std::string mail_from;               ///< Envelope sender without <>; "" for <>.
    std::vector<std::string> recipients; ///< Envelope recipients without <>, in order.
    /// The data as the client meant it: dot-unstuffed, line ends as sent (CRLF from libcurl),
    /// without the terminating ".".
    std::string data;
    std::string subject;   ///< The unfolded Subject header, not MIME-decoded; "" if none.
    std::string auth_user; ///< The authenticated user, "" without AUTH.
    std::string helo;      ///< The EHLO or HELO argument.
    std::chrono::system_clock::time_point received_at;

    /// First header of the message with this name (any case), unfolded and trimmed.
    [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

enum class SmtpStage {
    connect,   ///< Instead of the 220 greeting; the connection is then closed.
    mail_from, ///< Instead of the 250 to MAIL FROM.
    rcpt_to,   ///< Instead of the 250 to one RCPT TO.
    data,      ///< Instead of the 250 after the data: the message is not recorded.
};

struct SmtpRefusal {
    int code = 554;
    std::string text = "5.7.1 Message refused by the fake";
    SmtpStage stage = SmtpStage::data;
    int count = 1; ///< Replies replaced: one per message, connection or recipient.
};

struct SmtpStats {
    std::size_t connections = 0;
    std::size_t accepted = 0; ///< Messages recorded.
    std::size_t refused = 0;  ///< Replies replaced by a refusal.
    std::size_t auth_failures = 0;
};

class SmtpFake {
public:
    explicit SmtpFake(SmtpFakeOptions options = {});
    ~SmtpFake();
    SmtpFake(const SmtpFake&) = delete;
    SmtpFake& operator=(const SmtpFake&) = delete;

    /// Binds 127.0.0.1:`port` (0 = any free port) and returns the bound port. Call once;
    /// throws std::runtime_error if binding fails.
    int start(int port = 0);
    /// Closes the listener and every connection, joins all threads; idempotent.
    void stop();
    [[nodiscard]] int port() const;
    /// "smtp://127.0.0.1:PORT", for CURLOPT_URL.
    [[nodiscard]] std::string url() const;

    /// Accepted messages, oldest first.
    [[nodiscard]] std::vector<SmtpMessage> messages() const;
    [[nodiscard]] std::size_t message_count() const;
    /// Waits until at least `n` messages have been accepted; false on timeout.
    bool wait_for_messages(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Forgets the messages (not the statistics).
    void clear();

    /// Refusals are consumed in the order given, each by the first reply of its stage.
    void refuse_next(SmtpRefusal refusal);
    void clear_refusals();
    [[nodiscard]] std::size_t pending_refusals() const;
    [[nodiscard]] SmtpStats stats() const;

    /// Serves /_fake/... control endpoints over HTTP on a second port (for the executable):
    /// GET /_fake/messages, DELETE /_fake/messages, POST /_fake/refuse {"stage","code","text",
    /// "count"}, DELETE /_fake/refuse, GET /_fake/stats, POST /_fake/shutdown. Returns the
    /// port. Call at most once, after start().
    int start_control(int port = 0);
    /// Called (on a server thread) when POST /_fake/shutdown arrives; it must not call stop()
    /// itself, only signal the owner.
    void set_shutdown_handler(std::function<void()> handler);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
