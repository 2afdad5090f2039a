#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/bounded_queue.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace crmsync::drivers::dialfire {

struct FetchedBatch {
    std::vector<nlohmann::json> contacts;
    std::vector<RecordReject> rejects;
    std::size_t missing = 0; // ids asked for that the API did not return
};

// Threads that fetch contacts by id (E3, at most k_contacts_per_request per request) with
// bounded parallelism and hand the parsed contacts back through a bounded queue, so memory
// stays flat. The first error stops them; batches fetched before it are still returned.
// Used from one thread: add_ids() and next().
class ContactFetchers {
public:
    ContactFetchers(const ApiConfig& api, std::size_t workers, http::RetryContext retry);
    ~ContactFetchers();
    ContactFetchers(const ContactFetchers&) = delete;
    ContactFetchers& operator=(const ContactFetchers&) = delete;

    // Ids to fetch, in requests of at most k_contacts_per_request; never blocks.
    void add_ids(const std::vector<std::string>& ids);

    // The next fetched batch. When every id added so far is handed out, calls `list_more`,
    // which may add_ids() and returns false once there is nothing more to list. Ids are
    // handed to the workers without blocking, so their results never pile up unread.
    // nullopt at the end; throws the first worker's error after the batches fetched before it.
    std::optional<FetchedBatch> next(const std::function<bool()>& list_more);

private:
    void work(const ApiConfig& api, http::RetryContext retry);
    std::exception_ptr error();

    pipeline::BoundedQueue<std::vector<std::string>> m_jobs;
    pipeline::BoundedQueue<FetchedBatch> m_results;
    std::deque<std::vector<std::string>> m_pending;
    bool m_listing_done = false;
    bool m_jobs_closed = false;
    std::mutex m_mutex;
    std::exception_ptr m_error;
    std::atomic<std::size_t> m_running{0};
    std::vector<std::thread> m_threads;
};

} // namespace crmsync::drivers::dialfire
