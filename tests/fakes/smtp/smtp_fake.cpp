#include "tests/fakes/smtp/smtp_fake.hpp"

#include "tests/fakes/common/abortable_server.hpp"
#include "tests/fakes/common/base64.hpp"
#include "tests/fakes/common/control_routes.hpp"
#include "tests/fakes/common/fake_clock.hpp"
#include "tests/fakes/common/fake_time.hpp"
#include "tests/fakes/common/http_listener.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace crmsync::fakes {
namespace {

constexpr int k_listen_backlog = 64;
// Blocking waits are sliced so that stop() is noticed quickly.
constexpr int k_poll_slice_ms = 100;
constexpr std::size_t k_max_command_line = 4096;
constexpr std::size_t k_read_chunk = std::size_t{16} * 1024;
constexpr std::size_t k_control_threads = 2;

std::string upper(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view text) {
    const auto begin = text.find_first_not_of(" \t");
    if (begin == std::string_view::npos) {
        return {};
    }
    const auto end = text.find_last_not_of(" \t");
    return text.substr(begin, end - begin + 1);
}

bool send_all(int fd, std::string_view text) {
    while (!text.empty()) {
        // MSG_NOSIGNAL: a client that went away must not SIGPIPE the test process.
        const auto n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string_view stage_name(SmtpStage stage) {
    switch (stage) {
    case SmtpStage::connect:
        return "connect";
    case SmtpStage::mail_from:
        return "mail_from";
    case SmtpStage::rcpt_to:
        return "rcpt_to";
    case SmtpStage::data:
        return "data";
    }
    return "data";
}

SmtpStage stage_from_name(const std::string& name) {
    for (const auto stage :
         {SmtpStage::connect, SmtpStage::mail_from, SmtpStage::rcpt_to, SmtpStage::data}) {
        if (stage_name(stage) == name) {
            return stage;
        }
    }
    throw std::invalid_argument("unknown stage '" + name + "'");
}

// The argument of "MAIL FROM:<a> params" or "RCPT TO:<b> params" after the keyword: the
// address without <> and the parameters; nullopt for a syntax error.
struct PathArgument {
    std::string address;
    std::string params;
};

std::optional<PathArgument> parse_path(std::string_view arg, std::string_view keyword) {
    if (arg.size() < keyword.size() || upper(arg.substr(0, keyword.size())) != keyword) {
        return std::nullopt;
    }
    auto rest = trim(arg.substr(keyword.size()));
    PathArgument out;
    if (rest.starts_with('<')) {
        const auto close = rest.find('>');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        out.address = std::string(rest.substr(1, close - 1));
        out.params = std::string(trim(rest.substr(close + 1)));
    } else {
        const auto space = rest.find(' ');
        out.address = std::string(rest.substr(0, space));
        if (out.address.empty()) {
            return std::nullopt;
        }
        out.params = space == std::string_view::npos ? "" : std::string(trim(rest.substr(space)));
    }
    return out;
}

// Headers up to the first empty line, continuation lines joined with a space.
std::vector<std::pair<std::string, std::string>> parse_headers(std::string_view data) {
    std::vector<std::pair<std::string, std::string>> headers;
    while (!data.empty()) {
        const auto eol = data.find('\n');
        auto line = data.substr(0, eol);
        data = eol == std::string_view::npos ? std::string_view() : data.substr(eol + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            break;
        }
        if ((line.front() == ' ' || line.front() == '\t') && !headers.empty()) {
            headers.back().second += " " + std::string(trim(line));
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            continue;
        }
        headers.emplace_back(lower(trim(line.substr(0, colon))),
                             std::string(trim(line.substr(colon + 1))));
    }
    return headers;
}

// Reads CRLF (or bare LF) terminated lines from a socket, in slices so that stop is noticed.
class LineReader {
public:
    enum class Result { line, closed, too_long, idle };

    LineReader(int fd, const std::atomic<bool>& stopping, std::chrono::seconds idle)
        : m_fd(fd), m_stopping(stopping), m_idle(idle) {}

    /// The line without its terminator; `crlf` tells whether it ended in CRLF.
    Result next(std::string& line, bool& crlf, std::size_t max_length) {
        auto waited = std::chrono::milliseconds(0);
        for (;;) {
            if (const auto eol = m_buffer.find('\n', m_begin); eol != std::string::npos) {
                line.assign(m_buffer, m_begin, eol - m_begin);
                m_begin = eol + 1;
                crlf = line.ends_with('\r');
                if (crlf) {
                    line.pop_back();
                }
                return line.size() > max_length ? Result::too_long : Result::line;
            }
            if (m_buffer.size() - m_begin > max_length + 2) {
                return Result::too_long;
            }
            if (m_stopping || waited >= m_idle) {
                return m_stopping ? Result::closed : Result::idle;
            }
            pollfd pfd{m_fd, POLLIN, 0};
            const int rc = ::poll(&pfd, 1, k_poll_slice_ms);
            if (rc == 0 || (rc < 0 && errno == EINTR)) {
                waited += std::chrono::milliseconds(k_poll_slice_ms);
                continue;
            }
            if (rc < 0) {
                return Result::closed;
            }
            if (m_begin > 0) {
                m_buffer.erase(0, m_begin);
                m_begin = 0;
            }
            std::array<char, k_read_chunk> chunk{};
            const auto n = ::recv(m_fd, chunk.data(), chunk.size(), 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return Result::closed;
            }
            m_buffer.append(chunk.data(), static_cast<std::size_t>(n));
            waited = std::chrono::milliseconds(0);
        }
    }

private:
    int m_fd;
    const std::atomic<bool>& m_stopping;
    std::chrono::milliseconds m_idle;
    std::string m_buffer;
    std::size_t m_begin = 0;
};

} // namespace

std::optional<std::string> SmtpMessage::header(std::string_view name) const {
    const auto wanted = lower(name);
    for (const auto& [key, value] : parse_headers(data)) {
        if (key == wanted) {
            return value;
        }
    }
    return std::nullopt;
}

struct SmtpFake::Impl {
    explicit Impl(SmtpFakeOptions opts) : options(std::move(opts)) {}

    struct Connection {
        int fd = -1;
        std::thread thread;
        std::atomic<bool> done{false};
    };

    class Session;

    void accept_loop();
    void prune_connections();
    std::optional<SmtpRefusal> take_refusal(SmtpStage stage);
    void record(SmtpMessage message);
    void setup_control_routes(AbortableServer& server);

    SmtpFakeOptions options;

    int listen_fd = -1;
    int port = 0;
    bool started = false;
    std::atomic<bool> stopping{false};
    std::thread acceptor;

    std::mutex connections_mutex;
    std::list<std::unique_ptr<Connection>> connections;

    mutable std::mutex data_mutex;
    mutable std::condition_variable data_cv;
    std::vector<SmtpMessage> messages;
    std::deque<SmtpRefusal> refusals;
    SmtpStats stats;

    HttpListener control;
    ShutdownHook shutdown_hook;
};

// One SMTP connection: the RFC 5321 command loop.
class SmtpFake::Impl::Session {
public:
    Session(SmtpFake::Impl& impl, int fd)
        : m_impl(impl), m_fd(fd), m_reader(fd, impl.stopping, impl.options.idle_timeout) {}

    void run() {
        if (const auto refusal = m_impl.take_refusal(SmtpStage::connect)) {
            reply(refusal->code, refusal->text);
            return;
        }
        if (!reply(220, m_impl.options.hostname + " ESMTP crmsync fake")) {
            return;
        }
        std::string line;
        bool crlf = false;
        for (;;) {
            const auto result = m_reader.next(line, crlf, k_max_command_line);
            if (result == LineReader::Result::closed) {
                return;
            }
            if (result == LineReader::Result::idle) {
                reply(421, "4.4.2 " + m_impl.options.hostname + " idle timeout");
                return;
            }
            if (result == LineReader::Result::too_long) {
                reply(500, "5.5.2 Line too long");
                return;
            }
            if (!command(line)) {
                return;
            }
        }
    }

private:
    // False when the connection is to be closed.
    bool reply(int code, std::string_view text) {
        return send_all(m_fd, std::to_string(code) + " " + std::string(text) + "\r\n");
    }

    bool refuse(const SmtpRefusal& refusal) {
        // RFC 5321 §3.8: 421 means the server is closing the channel.
        return reply(refusal.code, refusal.text) && refusal.code != 421;
    }

    void reset_transaction() {
        m_in_transaction = false;
        m_mail_from.clear();
        m_recipients.clear();
    }

    bool command(std::string_view line) {
        const auto space = line.find(' ');
        const auto verb = upper(line.substr(0, space));
        const auto arg =
            space == std::string_view::npos ? std::string_view() : trim(line.substr(space));
        if (verb == "EHLO" || verb == "HELO") {
            return hello(verb, arg);
        }
        if (verb == "AUTH") {
            return auth(arg);
        }
        if (verb == "MAIL") {
            return mail(arg);
        }
        if (verb == "RCPT") {
            return rcpt(arg);
        }
        if (verb == "DATA") {
            return data(arg);
        }
        if (verb == "RSET") {
            reset_transaction();
            return reply(250, "2.0.0 OK");
        }
        if (verb == "NOOP") {
            return reply(250, "2.0.0 OK");
        }
        if (verb == "QUIT") {
            reply(221, "2.0.0 " + m_impl.options.hostname + " closing connection");
            return false;
        }
        if (verb == "VRFY") {
            return reply(252, "2.1.5 Cannot VRFY user, but will accept message");
        }
        if (verb == "HELP") {
            return reply(214, "2.0.0 EHLO HELO AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
        }
        if (verb == "STARTTLS") {
            return reply(454, "4.7.0 TLS not available");
        }
        return reply(500, "5.5.2 Command not recognized");
    }

    bool hello(const std::string& verb, std::string_view arg) {
        if (arg.empty()) {
            return reply(501, "5.5.4 Syntax: " + verb + " hostname");
        }
        m_helo = std::string(arg);
        reset_transaction();
        const auto& host = m_impl.options.hostname;
        if (verb == "HELO") {
            return reply(250, host);
        }
        std::string text = "250-" + host + " greets " + m_helo + "\r\n";
        text += "250-SIZE " + std::to_string(m_impl.options.max_message_bytes) + "\r\n";
        text += "250-8BITMIME\r\n";
        if (m_impl.options.credentials) {
            text += "250-AUTH PLAIN LOGIN\r\n";
        }
        text += "250 HELP\r\n";
        return send_all(m_fd, text);
    }

    // Reads one SASL response line: nullopt after the connection failed or the client
    // cancelled with "*" (both already handled).
    std::optional<std::string> sasl_response(std::string_view challenge, bool& keep_open) {
        keep_open = reply(334, challenge);
        if (!keep_open) {
            return std::nullopt;
        }
        std::string line;
        bool crlf = false;
        if (m_reader.next(line, crlf, k_max_command_line) != LineReader::Result::line) {
            keep_open = false;
            return std::nullopt;
        }
        if (line == "*") {
            keep_open = reply(501, "5.7.0 Authentication cancelled");
            return std::nullopt;
        }
        return line;
    }

    bool auth(std::string_view arg) {
        if (!m_impl.options.credentials) {
            return reply(503, "5.5.1 AUTH not enabled");
        }
        if (m_helo.empty()) {
            return reply(503, "5.5.1 EHLO first");
        }
        if (!m_auth_user.empty()) {
            return reply(503, "5.5.1 Already authenticated");
        }
        if (m_in_transaction) {
            return reply(503, "5.5.1 AUTH not allowed during a mail transaction");
        }
        const auto space = arg.find(' ');
        const auto mechanism = upper(arg.substr(0, space));
        std::optional<std::string> initial;
        if (space != std::string_view::npos) {
            initial = std::string(trim(arg.substr(space)));
        }
        bool keep_open = true;
        std::string user;
        std::string password;
        if (mechanism == "PLAIN") {
            auto response = initial ? initial : sasl_response("", keep_open);
            if (!response) {
                return keep_open;
            }
            // RFC 4616: authzid NUL authcid NUL passwd; "=" is an empty initial response.
            const auto decoded =
                *response == "=" ? std::optional<std::string>("") : base64_decode(*response);
            if (!decoded) {
                return reply(501, "5.5.2 Cannot decode response");
            }
            const auto first = decoded->find('\0');
            const auto second =
                first == std::string::npos ? std::string::npos : decoded->find('\0', first + 1);
            if (second == std::string::npos) {
                return auth_failed();
            }
            user = decoded->substr(first + 1, second - first - 1);
            password = decoded->substr(second + 1);
        } else if (mechanism == "LOGIN") {
            // The challenges are "Username:" and "Password:" in base64, as every server sends.
            auto user_text = initial ? initial : sasl_response("VXNlcm5hbWU6", keep_open);
            if (!user_text) {
                return keep_open;
            }
            auto password_text = sasl_response("UGFzc3dvcmQ6", keep_open);
            if (!password_text) {
                return keep_open;
            }
            const auto decoded_user = base64_decode(*user_text);
            const auto decoded_password = base64_decode(*password_text);
            if (!decoded_user || !decoded_password) {
                return reply(501, "5.5.2 Cannot decode response");
            }
            user = *decoded_user;
            password = *decoded_password;
        } else {
            return reply(504, "5.5.4 Unrecognized authentication type");
        }
        const auto& expected = *m_impl.options.credentials;
        if (user != expected.user || password != expected.password) {
            return auth_failed();
        }
        m_auth_user = user;
        return reply(235, "2.7.0 Authentication successful");
    }

    bool auth_failed() {
        {
            std::lock_guard lock(m_impl.data_mutex);
            ++m_impl.stats.auth_failures;
        }
        return reply(535, "5.7.8 Authentication credentials invalid");
    }

    bool mail(std::string_view arg) {
        if (m_helo.empty()) {
            return reply(503, "5.5.1 EHLO first");
        }
        if (m_in_transaction) {
            return reply(503, "5.5.1 Nested MAIL command");
        }
        if (m_impl.options.credentials && m_auth_user.empty()) {
            return reply(530, "5.7.0 Authentication required");
        }
        const auto path = parse_path(arg, "FROM:");
        if (!path) {
            return reply(501, "5.5.4 Syntax: MAIL FROM:<address>");
        }
        const auto params = upper(path->params);
        if (const auto size = params.find("SIZE="); size != std::string::npos) {
            const auto declared = std::strtoull(params.c_str() + size + 5, nullptr, 10);
            if (declared > m_impl.options.max_message_bytes) {
                return reply(552, "5.3.4 Message size exceeds fixed limit");
            }
        }
        if (const auto refusal = m_impl.take_refusal(SmtpStage::mail_from)) {
            return refuse(*refusal);
        }
        m_in_transaction = true;
        m_mail_from = path->address;
        return reply(250, "2.1.0 Sender OK");
    }

    bool rcpt(std::string_view arg) {
        if (!m_in_transaction) {
            return reply(503, "5.5.1 Need MAIL command");
        }
        const auto path = parse_path(arg, "TO:");
        if (!path || path->address.empty()) {
            return reply(501, "5.5.4 Syntax: RCPT TO:<address>");
        }
        if (const auto refusal = m_impl.take_refusal(SmtpStage::rcpt_to)) {
            return refuse(*refusal);
        }
        m_recipients.push_back(path->address);
        return reply(250, "2.1.5 Recipient OK");
    }

    bool data(std::string_view arg) {
        if (!arg.empty()) {
            return reply(501, "5.5.4 DATA takes no arguments");
        }
        if (!m_in_transaction) {
            return reply(503, "5.5.1 Need MAIL command");
        }
        if (m_recipients.empty()) {
            return reply(503, "5.5.1 Need RCPT command");
        }
        if (!reply(354, "End data with <CR><LF>.<CR><LF>")) {
            return false;
        }
        const auto limit = m_impl.options.max_message_bytes;
        std::string body;
        bool too_big = false;
        std::string line;
        bool crlf = false;
        for (;;) {
            const auto result = m_reader.next(line, crlf, limit + 2);
            if (result == LineReader::Result::too_long) {
                reply(552, "5.3.4 Message size exceeds fixed limit");
                return false;
            }
            if (result != LineReader::Result::line) {
                return false; // The transaction is abandoned with the connection.
            }
            if (line == ".") {
                break;
            }
            // RFC 5321 §4.5.2: a leading dot was doubled by the client.
            const auto text = std::string_view(line).substr(line.starts_with('.') ? 1 : 0);
            if (!too_big) {
                body.append(text).append(crlf ? "\r\n" : "\n");
                too_big = body.size() > limit;
            }
        }
        SmtpMessage message;
        message.mail_from = m_mail_from;
        message.recipients = m_recipients;
        reset_transaction();
        if (too_big) {
            return reply(552, "5.3.4 Message size exceeds fixed limit");
        }
        if (const auto refusal = m_impl.take_refusal(SmtpStage::data)) {
            return refuse(*refusal);
        }
        message.data = std::move(body);
        message.subject = message.header("subject").value_or("");
        message.auth_user = m_auth_user;
        message.helo = m_helo;
        message.received_at = std::chrono::system_clock::now();
        m_impl.record(std::move(message));
        return reply(250, "2.0.0 OK queued");
    }

    SmtpFake::Impl& m_impl;
    int m_fd;
    LineReader m_reader;
    std::string m_helo;
    std::string m_auth_user;
    bool m_in_transaction = false;
    std::string m_mail_from;
    std::vector<std::string> m_recipients;
};

namespace {

nlohmann::json to_json(const SmtpMessage& m) {
    return {{"mail_from", m.mail_from},
            {"recipients", m.recipients},
            {"subject", m.subject},
            {"data", m.data},
            {"auth_user", m.auth_user},
            {"helo", m.helo},
            {"received_at", format_iso_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              m.received_at.time_since_epoch())
                                              .count())}};
}

} // namespace

void SmtpFake::Impl::accept_loop() {
    while (!stopping) {
        pollfd pfd{listen_fd, POLLIN, 0};
        const int rc = ::poll(&pfd, 1, k_poll_slice_ms);
        prune_connections();
        if (rc <= 0) {
            continue;
        }
        const int fd = ::accept(listen_fd, nullptr, nullptr);
        if (fd < 0) {
            continue;
        }
        {
            std::lock_guard lock(data_mutex);
            ++stats.connections;
        }
        auto connection = std::make_unique<Connection>();
        connection->fd = fd;
        auto* raw = connection.get();
        std::lock_guard lock(connections_mutex);
        connections.push_back(std::move(connection));
        raw->thread = std::thread([this, raw] {
            Session(*this, raw->fd).run();
            raw->done = true;
        });
    }
}

// The owner closes a connection's socket only after joining its thread, so stop() can never
// shut down a descriptor number that was reused meanwhile.
void SmtpFake::Impl::prune_connections() {
    std::lock_guard lock(connections_mutex);
    for (auto it = connections.begin(); it != connections.end();) {
        if ((*it)->done) {
            (*it)->thread.join();
            ::close((*it)->fd);
            it = connections.erase(it);
        } else {
            ++it;
        }
    }
}

std::optional<SmtpRefusal> SmtpFake::Impl::take_refusal(SmtpStage stage) {
    std::lock_guard lock(data_mutex);
    for (auto it = refusals.begin(); it != refusals.end(); ++it) {
        if (it->stage != stage) {
            continue;
        }
        auto refusal = *it;
        if (--it->count <= 0) {
            refusals.erase(it);
        }
        ++stats.refused;
        return refusal;
    }
    return std::nullopt;
}

void SmtpFake::Impl::record(SmtpMessage message) {
    std::lock_guard lock(data_mutex);
    messages.push_back(std::move(message));
    ++stats.accepted;
    data_cv.notify_all();
}

void SmtpFake::Impl::setup_control_routes(AbortableServer& server) {
    ControlRoutes routes(server, [](std::string_view message) {
        return nlohmann::json{{"error", message}}.dump();
    });
    routes.get("/_fake/messages", [this](const httplib::Request&) {
        nlohmann::json out = nlohmann::json::array();
        std::lock_guard lock(data_mutex);
        for (const auto& m : messages) {
            out.push_back(to_json(m));
        }
        return out;
    });
    routes.del("/_fake/messages", [this](const httplib::Request&) {
        std::lock_guard lock(data_mutex);
        messages.clear();
        return nlohmann::json::object();
    });
    routes.post("/_fake/refuse", [this](const httplib::Request& req) {
        const auto json = nlohmann::json::parse(req.body);
        SmtpRefusal refusal;
        refusal.stage = stage_from_name(json.value("stage", std::string("data")));
        refusal.code = json.value("code", refusal.code);
        refusal.text = json.value("text", refusal.text);
        refusal.count = json.value("count", refusal.count);
        std::lock_guard lock(data_mutex);
        refusals.push_back(std::move(refusal));
        return nlohmann::json{{"pending", refusals.size()}};
    });
    routes.del("/_fake/refuse", [this](const httplib::Request&) {
        std::lock_guard lock(data_mutex);
        refusals.clear();
        return nlohmann::json::object();
    });
    routes.get("/_fake/stats", [this](const httplib::Request&) {
        std::lock_guard lock(data_mutex);
        return nlohmann::json{{"connections", stats.connections},
                              {"accepted", stats.accepted},
                              {"refused", stats.refused},
                              {"auth_failures", stats.auth_failures},
                              {"messages", messages.size()}};
    });
    routes.shutdown(shutdown_hook);
}

// ---- SmtpFake ---------------------------------------------------------------------------------

SmtpFake::SmtpFake(SmtpFakeOptions options) : m_impl(std::make_unique<Impl>(std::move(options))) {}

SmtpFake::~SmtpFake() { stop(); }

int SmtpFake::start(int port) {
    auto& impl = *m_impl;
    if (impl.started) {
        throw std::logic_error("SmtpFake::start called twice");
    }
    impl.started = true;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::runtime_error("SmtpFake: socket() failed");
    }
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    socklen_t length = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, k_listen_backlog) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
        ::close(fd);
        throw std::runtime_error("SmtpFake: cannot bind 127.0.0.1:" + std::to_string(port));
    }
    impl.listen_fd = fd;
    impl.port = ntohs(addr.sin_port);
    impl.acceptor = std::thread([&impl] { impl.accept_loop(); });
    return impl.port;
}

void SmtpFake::stop() {
    auto& impl = *m_impl;
    impl.stopping = true;
    if (impl.acceptor.joinable()) {
        impl.acceptor.join();
    }
    if (impl.listen_fd >= 0) {
        ::close(impl.listen_fd);
        impl.listen_fd = -1;
    }
    {
        std::lock_guard lock(impl.connections_mutex);
        for (const auto& c : impl.connections) {
            ::shutdown(c->fd, SHUT_RDWR); // Wakes a session blocked in poll or send.
        }
    }
    for (;;) {
        std::unique_ptr<Impl::Connection> connection;
        {
            std::lock_guard lock(impl.connections_mutex);
            if (impl.connections.empty()) {
                break;
            }
            connection = std::move(impl.connections.front());
            impl.connections.pop_front();
        }
        connection->thread.join();
        ::close(connection->fd);
    }
    impl.control.stop();
}

int SmtpFake::port() const { return m_impl->port; }

std::string SmtpFake::url() const { return "smtp://127.0.0.1:" + std::to_string(m_impl->port); }

std::vector<SmtpMessage> SmtpFake::messages() const {
    std::lock_guard lock(m_impl->data_mutex);
    return m_impl->messages;
}

std::size_t SmtpFake::message_count() const {
    std::lock_guard lock(m_impl->data_mutex);
    return m_impl->messages.size();
}

bool SmtpFake::wait_for_messages(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(m_impl->data_mutex);
    return m_impl->data_cv.wait_for(lock, timeout, [&] { return m_impl->messages.size() >= n; });
}

void SmtpFake::clear() {
    std::lock_guard lock(m_impl->data_mutex);
    m_impl->messages.clear();
}

void SmtpFake::refuse_next(SmtpRefusal refusal) {
    if (refusal.count <= 0) {
        return;
    }
    std::lock_guard lock(m_impl->data_mutex);
    m_impl->refusals.push_back(std::move(refusal));
}

void SmtpFake::clear_refusals() {
    std::lock_guard lock(m_impl->data_mutex);
    m_impl->refusals.clear();
}

std::size_t SmtpFake::pending_refusals() const {
    std::lock_guard lock(m_impl->data_mutex);
    std::size_t pending = 0;
    for (const auto& r : m_impl->refusals) {
        pending += static_cast<std::size_t>(std::max(r.count, 0));
    }
    return pending;
}

SmtpStats SmtpFake::stats() const {
    std::lock_guard lock(m_impl->data_mutex);
    return m_impl->stats;
}

int SmtpFake::start_control(int port) {
    auto& impl = *m_impl;
    return impl.control.start(
        port, [&impl](AbortableServer& server) { impl.setup_control_routes(server); },
        k_control_threads);
}

void SmtpFake::set_shutdown_handler(std::function<void()> handler) {
    m_impl->shutdown_hook.set(std::move(handler));
}

} // namespace crmsync::fakes
