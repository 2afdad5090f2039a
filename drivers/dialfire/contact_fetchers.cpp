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

void ContactFetchers::add_ids(const std::vector<std::string>& ids) {
    for (std::size_t start = 0; start < ids.size(); start += k_contacts_per_request) {
        const auto end = std::min(ids.size(), start + k_contacts_per_request);
        m_pending.emplace_back(ids.begin() + static_cast<long>(start),
                               ids.begin() + static_cast<long>(end));
    }
}

std::optional<FetchedBatch> ContactFetchers::next(const std::function<bool()>& list_more) {
    for (;;) {
        if (auto ready = m_results.try_pop()) {
            return ready;
        }
        if (!m_pending.empty()) {
            if (m_jobs.try_push(m_pending.front())) {
                m_pending.pop_front();
                continue;
            }
            if (!error()) {
                // The workers are busy: wait for a result, which frees a place.
                if (auto ready = m_results.pop()) {
                    return ready;
                }
            }
            // The workers stopped on an error: nothing more is fetched.
            m_pending.clear();
            m_listing_done = true;
            continue;
        }
        if (!m_listing_done) {
            m_listing_done = error() != nullptr || !list_more();
            continue;
        }
        if (!m_jobs_closed) {
            m_jobs.close();
            m_jobs_closed = true;
        }
        if (auto ready = m_results.pop()) {
            return ready;
        }
        if (auto failure = error()) {
            std::rethrow_exception(failure);
        }
        return std::nullopt;
    }
}

std::exception_ptr ContactFetchers::error() {
    std::lock_guard lock(m_mutex);
    return m_error;
}

void ContactFetchers::work(const ApiConfig& api, http::RetryContext retry) {
    try {
        ApiClient client(api, std::move(retry));
        while (auto ids = m_jobs.pop()) {
            auto fetched = client.fetch_contacts(*ids);
            FetchedBatch batch{std::move(fetched.contacts), std::move(fetched.rejects),
                               fetched.missing};
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
