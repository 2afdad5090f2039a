#include "drivers/dialfire/contact_fetchers.hpp"

namespace crmsync::drivers::dialfire {

ContactFetchers::ContactFetchers(const ApiConfig& api, std::size_t workers,
                                 http::RetryContext retry)
    : m_jobs(workers * 2), m_results(workers * 2) {
    m_running = workers;
    for (std::size_t i = 0; i < workers; ++i) {
        m_threads.emplace_back([this, api, retry] { work(api, retry); });
    }
}

ContactFetchers::~ContactFetchers() {
    m_jobs.close();
    m_results.close();
    for (auto& t : m_threads) {
        if (t.joinable()) {
            t.join();
        }
    }
}

bool ContactFetchers::submit(std::vector<std::string> ids) { return m_jobs.push(std::move(ids)); }

std::optional<FetchedBatch> ContactFetchers::try_result() { return m_results.try_pop(); }

void ContactFetchers::finish_submitting() { m_jobs.close(); }

std::optional<FetchedBatch> ContactFetchers::next_result() { return m_results.pop(); }

std::exception_ptr ContactFetchers::error() {
    std::lock_guard lock(m_mutex);
    return m_error;
}

void ContactFetchers::work(const ApiConfig& api, http::RetryContext retry) {
    try {
        ApiClient client(api, std::move(retry));
        while (auto ids = m_jobs.pop()) {
            FetchedBatch batch{client.fetch_contacts(*ids)};
            if (!m_results.push(std::move(batch))) {
                break;
            }
        }
    } catch (...) {
        std::lock_guard lock(m_mutex);
        if (!m_error) {
            m_error = std::current_exception();
        }
        m_jobs.close();
    }
    if (--m_running == 0) {
        m_results.close();
    }
}

} // namespace crmsync::drivers::dialfire
