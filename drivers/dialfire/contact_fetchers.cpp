#include "drivers/dialfire/contact_fetchers.hpp"

namespace crmsync::drivers::dialfire {

ContactFetchers::ContactFetchers(const ApiConfig& api, std::size_t workers,
                                 http::RetryContext retry, bool keep_simdjson)
    : m_jobs(workers * 2), m_results(workers * 2) {
    m_running = workers;
    for (std::size_t i = 0; i < workers; ++i) {
        m_threads.emplace_back(
            [this, api, retry, keep_simdjson] { work(api, retry, keep_simdjson); });
    }
}

ContactFetchers::~ContactFetchers() {
    m_jobs.close();
    m_results.close();
    if (m_feeder.joinable()) {
        m_feeder.join();
    }
    for (auto& t : m_threads) {
        if (t.joinable()) {
            t.join();
        }
    }
}

void ContactFetchers::add_ids(const std::vector<std::string>& ids) {
    std::lock_guard lock(m_mutex);
    for (std::size_t start = 0; start < ids.size(); start += k_contacts_per_request) {
        const auto end = std::min(ids.size(), start + k_contacts_per_request);
        m_pending.emplace_back(ids.begin() + static_cast<long>(start),
                               ids.begin() + static_cast<long>(end));
    }
}

std::optional<FetchedBatch> ContactFetchers::next(const std::function<bool()>& list_more) {
    if (!m_feeder.joinable()) {
        m_feeder = std::thread([this, list_more] { feed(list_more); });
    }
    if (auto ready = m_results.pop()) {
        return ready;
    }
    if (auto failure = error()) {
        std::rethrow_exception(failure);
    }
    return std::nullopt;
}

void ContactFetchers::feed(const std::function<bool()>& list_more) {
    try {
        for (bool listing = true;;) {
            std::optional<std::vector<std::string>> ids;
            {
                std::lock_guard lock(m_mutex);
                if (m_error) {
                    break;
                }
                if (!m_pending.empty()) {
                    ids = std::move(m_pending.front());
                    m_pending.pop_front();
                }
            }
            if (ids) {
                // Blocks while the workers are busy; false once closed (an error or the end).
                if (!m_jobs.push(std::move(*ids))) {
                    break;
                }
                continue;
            }
            if (!listing) {
                break;
            }
            listing = list_more();
        }
    } catch (...) {
        fail(std::current_exception());
    }
    m_jobs.close();
}

void ContactFetchers::fail(std::exception_ptr failure) {
    {
        std::lock_guard lock(m_mutex);
        if (!m_error) {
            m_error = std::move(failure);
        }
    }
    m_jobs.close();
}

std::exception_ptr ContactFetchers::error() {
    std::lock_guard lock(m_mutex);
    return m_error;
}

void ContactFetchers::work(const ApiConfig& api, http::RetryContext retry, bool keep_simdjson) {
    try {
        ApiClient client(api, std::move(retry));
        while (auto ids = m_jobs.pop()) {
            auto fetched = client.fetch_contacts(*ids, keep_simdjson);
            FetchedBatch batch{std::move(fetched.contacts), std::move(fetched.kept),
                               std::move(fetched.rejects), fetched.missing};
            if (!m_results.push(std::move(batch))) {
                break;
            }
        }
    } catch (...) {
        fail(std::current_exception());
    }
    if (--m_running == 0) {
        m_results.close();
    }
}

} // namespace crmsync::drivers::dialfire
