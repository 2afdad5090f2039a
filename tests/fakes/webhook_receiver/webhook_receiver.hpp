#pragma once

// An in-process webhook endpoint for tests (reference dbsync2.md §4.5 for the payload crmsync
// posts; peers.md B.6 for webhook-id and signing): a real HTTP server on 127.0.0.1 that
// accepts POST on any path, records every request and can be told to fail, stall, reset the
// connection or go away entirely.
//
// How a request is answered, first match wins:
//   1. down: nothing listens on the port, so clients get "connection refused";
//   2. an injected Fault matching method and path (tests/fakes/common/fault.hpp): status (JSON
//   body,
//      Retry-After if set), reset (TCP RST, no bytes), malformed (200, not JSON); slow and
//      truncate modify the normal answer below. Faults are consumed in injection order;
//   3. a method other than POST: 405;
//   4. with a secret, anything but a valid Standard Webhooks signature: 401;
//   5. 200 with the body {}.
// The response delay (set_response_delay) and a slow fault's delay_ms are slept before the
// answer. Going down or stopping cuts such sleeps short and resets their connections.
//
// Every request (not /_fake/...) is recorded when it arrives, faulted and rejected ones too;
// its status is filled in when it is answered. The payload itself is not interpreted: the
// body is kept byte for byte, whatever the Content-Type (dbsync2 sends none).
//
// Thread safety: every public method may be called from any thread, but none from inside
// the receiver's own request handling.

#include "tests/fakes/common/fault.hpp"
#include "tests/fakes/webhook_receiver/webhook_signature.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmsync::fakes {

struct WebhookReceiverOptions {
    /// Standard Webhooks secret ("whsec_<base64>" or raw bytes); nullopt = not checked.
    std::optional<std::string> secret;
    /// Allowed distance of webhook-timestamp from the receiver's clock; 0 = not checked. The
    /// spec's reference libraries use 5 minutes.
    std::chrono::seconds timestamp_tolerance{300};
    /// The header that names a delivery for distinct_ids(), count_by_id() and
    /// acknowledged_ids(); compared case-insensitively.
    std::string id_header = "webhook-id";
    /// Parallel connections served; more wait in a queue (relevant with slow answers).
    std::size_t worker_threads = 8;
};

struct ReceivedWebhook {
    std::uint64_t seq = 0; ///< 1, 2, ... in order of arrival; never reused, not even by clear().
    std::string method;
    std::string path;  ///< Without the query.
    std::string query; ///< Raw text after '?', "" if none.
    /// Names lower-cased, sorted by name (httplib's order), the same name possibly repeated.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string id; ///< Value of the id header, "" if absent.
    SignatureCheck signature = SignatureCheck::not_checked;
    int status = 0;        ///< 0 while being handled, or when the connection was reset.
    bool finished = false; ///< Answered, or its connection was reset.
    std::optional<FaultKind> fault;
    std::chrono::system_clock::time_point received_at; ///< The receiver's clock.
    int remote_port = 0; ///< Client side: equal ports = one keep-alive connection.

    /// First value of the header (name in any case), nullopt if absent.
    [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
    /// Answered 2xx: the delivery counts as done for the sender.
    [[nodiscard]] bool acknowledged() const { return status >= 200 && status < 300; }
};

class WebhookReceiver {
public:
    /// Throws std::invalid_argument for a "whsec_" secret that is not base64.
    explicit WebhookReceiver(WebhookReceiverOptions options = {});
    ~WebhookReceiver();
    WebhookReceiver(const WebhookReceiver&) = delete;
    WebhookReceiver& operator=(const WebhookReceiver&) = delete;

    /// Binds 127.0.0.1:`port` (0 = any free port) and returns the bound port. Call once;
    /// throws std::runtime_error if binding fails.
    int start(int port = 0);
    /// Stops serving (also the control port) and joins the threads; idempotent.
    void stop();
    [[nodiscard]] int port() const;
    /// "http://127.0.0.1:PORT"; any path below it is a webhook endpoint.
    [[nodiscard]] std::string base_url() const;

    // ---- Behaviour ----------------------------------------------------------------------------
    /// Stops listening: new connections are refused, in-flight requests finish (slow ones are
    /// reset). A pending go_down_for() revival is cancelled.
    void go_down();
    /// Listens again on the same port. Throws std::runtime_error if the port was taken
    /// meanwhile. No effect when up.
    void come_up();
    /// go_down(), then come_up() after `duration` on a background thread; returns at once.
    void go_down_for(std::chrono::milliseconds duration);
    [[nodiscard]] bool is_up() const;
    /// Shorthands for inject(): the next `n` requests get `status` (e.g. 500, 410, 429 with
    /// Retry-After "2", "0" or an HTTP date), a TCP reset, or the normal answer after `delay`.
    void fail_next(int n, int status, std::optional<std::string> retry_after = std::nullopt);
    void reset_next(int n);
    void slow_next(int n, std::chrono::milliseconds delay);
    void inject(Fault fault);
    void clear_faults();
    /// Sum of the remaining counts of all injected faults.
    [[nodiscard]] std::size_t pending_faults() const;
    /// Sleep before every answer (to make clients time out); 0 = off.
    void set_response_delay(std::chrono::milliseconds delay);
    /// Back to plain "up": listening, no faults, no response delay. Records are kept.
    void restore();
    /// Replaces the secret; nullopt turns checking off. Throws as the constructor.
    void set_secret(std::optional<std::string> secret);

    // ---- Records ------------------------------------------------------------------------------
    /// The most recent requests (at most 100,000), oldest first.
    [[nodiscard]] std::vector<ReceivedWebhook> requests() const;
    [[nodiscard]] std::size_t request_count() const;
    /// Non-empty ids in order of first arrival.
    [[nodiscard]] std::vector<std::string> distinct_ids() const;
    /// Requests carrying this id, whatever they were answered.
    [[nodiscard]] std::size_t count_by_id(const std::string& id) const;
    /// Each id answered 2xx at least once -> how many times it was answered 2xx (more than
    /// once = the sender re-delivered something already acknowledged).
    [[nodiscard]] std::map<std::string, std::size_t> acknowledged_ids() const;
    /// Waits until at least `n` requests have been answered; false on timeout.
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Waits until at least `n` distinct ids have been acknowledged; false on timeout.
    bool wait_for_acknowledged(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Forgets every record (not faults, mode or delay).
    void clear();

    // ---- Clock --------------------------------------------------------------------------------
    /// The receiver's clock = system clock + offset; drives received_at and the timestamp check.
    void set_clock_offset(std::chrono::milliseconds offset);
    [[nodiscard]] std::chrono::system_clock::time_point now() const;

    // ---- Control (for the executable) ---------------------------------------------------------
    /// Serves the unauthenticated /_fake/... endpoints on a second port, which stays reachable
    /// while the receiver is down. Returns that port. Call at most once, after start().
    int start_control(int port = 0);
    /// Called (on a server thread) when POST /_fake/shutdown arrives; it must not call stop()
    /// itself, only signal the owner.
    void set_shutdown_handler(std::function<void()> handler);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace crmsync::fakes
