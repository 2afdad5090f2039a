#pragma once

#include "drivers/dialfire/api_client.hpp"
#include "lib/http/retry_policy.hpp"
#include "lib/pipeline/bounded_queue.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace crmsync::drivers::dialfire {

struct FetchedBatch {
    std::vector<nlohmann::json> contacts;
    std::shared_ptr<const SimdjsonContacts> kept; // more contacts, in simdjson's document
    std::vector<RecordReject> rejects;
    std::size_t missing = 0; // ids asked for that the API did not return
};

// Threads that fetch contacts by id (E3, at most k_contacts_per_request per request) with
// bounded parallelism and hand the parsed contacts back through a bounded queue, so memory
// stays flat. A feeding thread hands the ids to them and lists more (E2) when it has handed out
// all it has, so listing and the md5 lookups overlap the fetching and the transform instead of
// stopping them once per listed page. The first error stops them; batches fetched before it are
// still returned.
class ContactFetchers {
public:
    // keep_simdjson: answers simdjson takes come as FetchedBatch::kept (read by db_sync's
    // transform), not as nlohmann's documents in FetchedBatch::contacts.
    ContactFetchers(const ApiConfig& api, std::size_t workers, http::RetryContext retry,
                    bool keep_simdjson = false);
    // Stops the feeding thread and the workers and waits for them (a request in flight ends
    // first); the `list_more` given to next() must stay callable until then.
    ~ContactFetchers();
    ContactFetchers(const ContactFetchers&) = delete;
    ContactFetchers& operator=(const ContactFetchers&) = delete;

    // Ids to fetch, in requests of at most k_contacts_per_request; never blocks. Called before
    // the first next() or by `list_more` (on the feeding thread).
    void add_ids(const std::vector<std::string>& ids);

    // The next fetched batch, from one consumer thread. The first call starts the feeding
    // thread, which calls `list_more` whenever every id added so far is handed out; it may
    // add_ids() and returns false once there is nothing more to list (its exception stops the
    // fetching like a worker's). nullopt at the end; throws the first error after the batches
    // fetched before it.
    std::optional<FetchedBatch> next(const std::function<bool()>& list_more);

private:
    void feed(const std::function<bool()>& list_more);
    void work(const ApiConfig& api, http::RetryContext retry, bool keep_simdjson);
    void fail(std::exception_ptr failure);
    std::exception_ptr error();

    pipeline::BoundedQueue<std::vector<std::string>> m_jobs;
    pipeline::BoundedQueue<FetchedBatch> m_results;
    std::mutex m_mutex; // guards m_pending and m_error
    std::deque<std::vector<std::string>> m_pending;
    std::exception_ptr m_error;
    std::atomic<std::size_t> m_running{0};
    std::vector<std::thread> m_threads;
    std::thread m_feeder;
};

} // namespace crmsync::drivers::dialfire
