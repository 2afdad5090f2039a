#pragma once

#include "lib/http/multi_client.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

namespace crmsync::http {

// Up to `max_in_flight` concurrent requests spread over `lanes` MultiClients, each with its
// own keep-alive connections. Lane 0 is driven by the caller's thread inside poll(); every
// other lane by a thread of its own, so that several cores run libcurl and the kernel's TCP
// path (nine tenths of a busy webhook sender's thread). To its caller it is a MultiClient:
// start() and poll() from one thread, and every callback runs on that thread, inside poll(),
// in the order the transfers finished within a lane. With one lane it starts no thread.
// Throws from start() or poll() what a lane's thread failed with (libcurl out of handles).
// Destroyed with transfers in flight, it abandons them: their callbacks never run.
class ParallelMultiClient {
public:
    ParallelMultiClient(std::size_t max_in_flight, std::size_t lanes,
                        HttpClientOptions options = {});
    ~ParallelMultiClient();
    ParallelMultiClient(const ParallelMultiClient&) = delete;
    ParallelMultiClient& operator=(const ParallelMultiClient&) = delete;

    bool has_capacity() const;
    std::size_t in_flight() const;
    std::size_t lanes() const { return 1 + m_threaded.size(); }

    // Starts `request` on the lane with the most free connections (check has_capacity()
    // first). A threaded lane takes it up at the next poll().
    void start(HttpRequest request, std::function<void(TransferResult&&)> done);
    // Moves the caller's lane along and runs the callbacks of every lane's finished transfers,
    // waiting at most `timeout` (less when one finishes anywhere). Returns at once with nothing
    // in flight.
    void poll(std::chrono::milliseconds timeout);

    // How many lanes to use for `max_in_flight` connections on `cores` cores: one per core,
    // each with at least k_min_connections_per_lane connections.
    static std::size_t lanes_for(std::size_t max_in_flight, std::size_t cores);
    static constexpr std::size_t k_min_connections_per_lane = 8;

private:
    class ThreadedLane;
    struct Finished;
    // `connections` per lane, lane 0 first (never empty).
    ParallelMultiClient(const std::vector<std::size_t>& connections,
                        const HttpClientOptions& options);
    // Runs the callbacks of what the threaded lanes finished; true if there were any.
    bool run_finished_elsewhere();

    std::size_t m_local_capacity;
    MultiClient m_local; // lane 0, on the caller's thread
    std::vector<std::unique_ptr<ThreadedLane>> m_threaded;
};

} // namespace crmsync::http
