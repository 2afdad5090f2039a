#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "lib/pipeline/bounded_queue.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace crmsync::drivers::dialfire {

struct FetchedBatch {
    std::vector<nlohmann::json> contacts;
};

// Threads that fetch contacts by id (E3, at most 20 per request) with bounded parallelism and
// hand the parsed contacts back through a bounded queue, so memory stays flat. The first error
// stops them; batches fetched before it are still returned. Submit and take from one thread.
class ContactFetchers {
public:
    ContactFetchers(const ApiConfig& api, std::size_t workers, http::RetryContext retry);
    ~ContactFetchers();
    ContactFetchers(const ContactFetchers&) = delete;
    ContactFetchers& operator=(const ContactFetchers&) = delete;

    // Blocks while the queue is full; false once the fetchers stopped on an error.
    bool submit(std::vector<std::string> ids);
    // A fetched batch if one is ready, without waiting.
    std::optional<FetchedBatch> try_result();
    // No more ids will come.
    void finish_submitting();
    // Waits for the next batch; nullopt when all workers are done.
    std::optional<FetchedBatch> next_result();
    // The first error a worker met, if any.
    std::exception_ptr error();

private:
    void work(const ApiConfig& api, http::RetryContext retry);

    pipeline::BoundedQueue<std::vector<std::string>> m_jobs;
    pipeline::BoundedQueue<FetchedBatch> m_results;
    std::mutex m_mutex;
    std::exception_ptr m_error;
    std::atomic<std::size_t> m_running{0};
    std::vector<std::thread> m_threads;
};

} // namespace crmsync::drivers::dialfire
