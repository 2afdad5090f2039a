#include "lib/http/parallel_multi_client.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace crmsync::http {
namespace {

// How long a lane's thread waits in libcurl before it looks for new work or a stop; both also
// wake it at once (MultiClient::wakeup), so this only bounds a missed wakeup.
constexpr std::chrono::milliseconds k_lane_poll{100};

// The connections of each lane: `max_in_flight` (at least 1) split as evenly as may be over
// `lanes` lanes (at least 1, at most one per connection), the first lanes taking one more.
std::vector<std::size_t> lane_connections(std::size_t max_in_flight, std::size_t lanes) {
    const std::size_t total = std::max<std::size_t>(max_in_flight, 1);
    const std::size_t count = std::clamp<std::size_t>(lanes, 1, total);
    std::vector<std::size_t> connections(count, total / count);
    for (std::size_t i = 0; i < total % count; ++i) {
        ++connections[i];
    }
    return connections;
}

} // namespace

struct ParallelMultiClient::Finished {
    std::function<void(TransferResult&&)> done;
    TransferResult result;
};

// A MultiClient on a thread of its own. Requests come in through an inbox, finished transfers
// go back with their callbacks (not run here) and a wakeup of the caller's MultiClient.
class ParallelMultiClient::ThreadedLane {
public:
    ThreadedLane(std::size_t capacity, const HttpClientOptions& options, MultiClient& owner)
        : m_capacity(capacity), m_client(capacity, options), m_owner(owner),
          m_thread([this] { loop(); }) {}

    ~ThreadedLane() {
        {
            std::lock_guard lock(m_mutex);
            m_stopping = true;
        }
        m_work.notify_one();
        m_client.wakeup();
        m_thread.join();
    }

    ThreadedLane(const ThreadedLane&) = delete;
    ThreadedLane& operator=(const ThreadedLane&) = delete;

    // The members below are for the caller's thread only.
    std::size_t in_flight() const { return m_in_flight; }
    std::size_t free_connections() const { return m_capacity - m_in_flight; }

    void start(HttpRequest request, std::function<void(TransferResult&&)> done) {
        {
            std::lock_guard lock(m_mutex);
            rethrow_failure();
            m_inbox.push_back({std::move(request), std::move(done)});
        }
        ++m_in_flight;
        m_handed_work = true;
    }

    // Wakes the thread if start() handed it work since the last call: one wakeup for all the
    // requests started between two polls.
    void wake_if_handed_work() {
        if (m_handed_work) {
            m_handed_work = false;
            m_work.notify_one();
            m_client.wakeup();
        }
    }

    // Appends what the thread finished to `out`; throws what the thread failed with.
    void take_finished(std::vector<Finished>& out) {
        std::lock_guard lock(m_mutex);
        rethrow_failure();
        m_in_flight -= m_finished.size();
        for (auto& f : m_finished) {
            out.push_back(std::move(f));
        }
        m_finished.clear();
    }

private:
    struct Request {
        HttpRequest request;
        std::function<void(TransferResult&&)> done;
    };

    // Under m_mutex.
    void rethrow_failure() const {
        if (m_failure) {
            std::rethrow_exception(m_failure);
        }
    }

    void loop() {
        try {
            std::vector<Request> starting;
            while (true) {
                {
                    std::unique_lock lock(m_mutex);
                    m_work.wait(lock, [&] {
                        return m_stopping || !m_inbox.empty() || m_client.in_flight() > 0;
                    });
                    if (m_stopping) {
                        break;
                    }
                    starting.swap(m_inbox);
                }
                for (auto& r : starting) {
                    m_client.start(std::move(r.request), [this, done = std::move(r.done)](
                                                             TransferResult&& result) mutable {
                        m_just_finished.push_back({std::move(done), std::move(result)});
                    });
                }
                starting.clear();
                m_client.poll(k_lane_poll);
                if (!m_just_finished.empty()) {
                    {
                        std::lock_guard lock(m_mutex);
                        for (auto& f : m_just_finished) {
                            m_finished.push_back(std::move(f));
                        }
                    }
                    m_just_finished.clear();
                    m_owner.wakeup();
                }
            }
        } catch (...) {
            {
                std::lock_guard lock(m_mutex);
                m_failure = std::current_exception();
            }
            m_owner.wakeup();
        }
    }

    const std::size_t m_capacity;
    // Caller's thread only.
    std::size_t m_in_flight = 0; // started and not yet taken back finished
    bool m_handed_work = false;
    // The lane's thread only (the callbacks run inside its poll()).
    MultiClient m_client;
    std::vector<Finished> m_just_finished;
    MultiClient& m_owner; // woken when something finished (wakeup() is thread-safe)
    // Shared, under m_mutex.
    std::mutex m_mutex;
    std::condition_variable m_work;
    std::vector<Request> m_inbox;
    std::vector<Finished> m_finished;
    std::exception_ptr m_failure;
    bool m_stopping = false;
    std::thread m_thread; // last: started once the members above exist
};

std::size_t ParallelMultiClient::lanes_for(std::size_t max_in_flight, std::size_t cores) {
    return std::clamp<std::size_t>(max_in_flight / k_min_connections_per_lane, 1,
                                   std::max<std::size_t>(cores, 1));
}

ParallelMultiClient::ParallelMultiClient(std::size_t max_in_flight, std::size_t lanes,
                                         HttpClientOptions options)
    : ParallelMultiClient(lane_connections(max_in_flight, lanes), options) {}

ParallelMultiClient::ParallelMultiClient(const std::vector<std::size_t>& connections,
                                         const HttpClientOptions& options)
    : m_local_capacity(connections.front()), m_local(m_local_capacity, options) {
    for (std::size_t i = 1; i < connections.size(); ++i) {
        m_threaded.push_back(std::make_unique<ThreadedLane>(connections[i], options, m_local));
    }
}

ParallelMultiClient::~ParallelMultiClient() = default;

bool ParallelMultiClient::has_capacity() const {
    return m_local.has_capacity() ||
           std::any_of(m_threaded.begin(), m_threaded.end(),
                       [](const auto& lane) { return lane->free_connections() > 0; });
}

std::size_t ParallelMultiClient::in_flight() const {
    std::size_t n = m_local.in_flight();
    for (const auto& lane : m_threaded) {
        n += lane->in_flight();
    }
    return n;
}

void ParallelMultiClient::start(HttpRequest request, std::function<void(TransferResult&&)> done) {
    ThreadedLane* roomiest = nullptr;
    std::size_t most_free = m_local_capacity - m_local.in_flight();
    for (const auto& lane : m_threaded) {
        if (lane->free_connections() > most_free) {
            most_free = lane->free_connections();
            roomiest = lane.get();
        }
    }
    if (roomiest == nullptr) {
        m_local.start(std::move(request), std::move(done));
    } else {
        roomiest->start(std::move(request), std::move(done));
    }
}

bool ParallelMultiClient::run_finished_elsewhere() {
    std::vector<Finished> finished;
    for (auto& lane : m_threaded) {
        lane->take_finished(finished);
    }
    for (auto& f : finished) {
        f.done(std::move(f.result));
    }
    return !finished.empty();
}

void ParallelMultiClient::poll(std::chrono::milliseconds timeout) {
    for (auto& lane : m_threaded) {
        lane->wake_if_handed_work();
    }
    if (run_finished_elsewhere()) {
        // Callbacks ran: return to the caller, which may have more to start, but move the
        // caller's own lane along first so that a busy lane elsewhere cannot starve it.
        m_local.poll(std::chrono::milliseconds(0));
        return;
    }
    if (m_local.in_flight() > 0) {
        m_local.poll(timeout);
    } else if (in_flight() > 0) {
        m_local.wait(timeout);
    }
    run_finished_elsewhere();
}

} // namespace crmsync::http
