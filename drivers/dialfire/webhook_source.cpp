#include "drivers/dialfire/webhook_source.hpp"

#include "drivers/dialfire/contact_fetchers.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/state/outbox.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

#include <SQLiteCpp/Transaction.h>

#include <map>
#include <set>
#include <unordered_map>

namespace crmsync::drivers::dialfire {
namespace {

using nlohmann::json;

// "<fired>NNNN|<md5>|<contactId>|<pointer>": the fired time ends at its 'Z'.
bool parse_event(const std::string& event, std::string& fired, std::string& contact) {
    const auto first = event.find('|');
    const auto second = event.find('|', first == std::string::npos ? first : first + 1);
    const auto third = event.find('|', second == std::string::npos ? second : second + 1);
    if (first == std::string::npos || second == std::string::npos) {
        return false;
    }
    fired = event.substr(0, first);
    const auto z = fired.find('Z');
    if (z != std::string::npos) {
        fired.resize(z + 1);
    }
    contact = event.substr(second + 1,
                           third == std::string::npos ? std::string::npos : third - second - 1);
    return !fired.empty() && !contact.empty();
}

std::string event_query(const WebhookSourceOptions& o, const std::string& from,
                        const std::string& to) {
    std::string q;
    if (!o.filter_mode.empty()) {
        q += "type=update&";
    }
    if (o.filter_mode == "hi_updates_only") {
        q += "hi=true&";
    }
    if (!o.task_prefixes.empty()) {
        q += "tasks=" + util::percent_encode(o.task_prefixes) + "&";
    }
    return q + "from=" + util::percent_encode(from) + "&to=" + util::percent_encode(to) +
           "&limit=" + std::to_string(k_list_page_size);
}

class Enqueuer {
public:
    Enqueuer(state::StateStore& store, const std::string& job, const TransactionFilter& filter,
             EnqueueStats& stats)
        : m_outbox(store), m_ledger(store), m_job(job), m_filter(filter), m_stats(stats) {}

    // Each candidate transaction of the contact: one named by the index in this window, or
    // one delivered before (its content may have changed, e.g. connection data added later).
    void contact(const json& contact, const std::set<std::string>& fired_in_window) {
        const auto id_it = contact.find("$id");
        if (!contact.is_object() || id_it == contact.end() || !id_it->is_string()) {
            log::warn("skipping a contact without $id from the API");
            return;
        }
        const std::string id = id_it->get<std::string>();
        json head = contact;
        head.erase("$task_log");
        const auto log_it = contact.find("$task_log");
        if (log_it == contact.end() || !log_it->is_array()) {
            return;
        }
        std::vector<const json*> transactions;
        for (const auto& entry : *log_it) {
            const auto txs = entry.is_object() ? entry.find("transactions") : entry.end();
            if (entry.is_object() && txs != entry.end() && txs->is_array()) {
                for (const auto& tx : *txs) {
                    transactions.push_back(&tx);
                }
            }
        }
        // Deliveries of one contact go out in fired order.
        std::stable_sort(
            transactions.begin(), transactions.end(), [](const json* a, const json* b) {
                return a->value("fired", std::string{}) < b->value("fired", std::string{});
            });
        std::map<std::string, int> seen;
        for (const json* tx : transactions) {
            const auto fired = tx->find("fired");
            if (fired == tx->end() || !fired->is_string()) {
                continue;
            }
            const std::string f = fired->get<std::string>();
            const int n = seen[f]++;
            const std::string key = util::md5_hex(id + f + (n == 0 ? "" : "#" + std::to_string(n)));
            const auto delivered_md5 = m_ledger.content_md5(m_job, key);
            if (fired_in_window.count(f) == 0 && !delivered_md5) {
                continue;
            }
            if (!m_filter.accepts(*tx)) {
                ++m_stats.filtered;
                continue;
            }
            const std::string content = sql::to_json_text(*tx);
            const std::string md5 = util::md5_hex(content);
            if (delivered_md5 == md5) {
                ++m_stats.unchanged;
                continue;
            }
            const std::string event = delivered_md5 ? "updated" : "new";
            json body = {{"contact", head}, {"transaction", *tx}, {"state", event}};
            state::Delivery d;
            d.id = "msg_" + util::md5_hex(m_job + "\x1f" + key + "\x1f" + md5);
            d.job = m_job;
            d.group_key = id;
            d.order_key = f;
            d.event = event;
            d.body = sql::to_json_text(body);
            m_outbox.enqueue(d);
            m_ledger.record(m_job, key, md5, d.id);
            ++(delivered_md5 ? m_stats.queued_updated : m_stats.queued_new);
        }
    }

private:
    state::Outbox m_outbox;
    state::Ledger m_ledger;
    const std::string& m_job;
    const TransactionFilter& m_filter;
    EnqueueStats& m_stats;
};

} // namespace

EnqueueStats enqueue_transactions(const WebhookSourceOptions& o, state::StateStore& store,
                                  const std::string& job) {
    EnqueueStats stats;
    http::RetryStats retry_stats;
    const http::RetryContext retry{o.retry, retry_stats, Clock::real(), o.deadline, ""};
    ApiClient api(o.api, retry);
    std::optional<SystemTime> server_now;
    api.fields(&server_now);
    if (!server_now) {
        server_now = Clock::real().wall_now();
        log::warn("the API sent no Date header; using the local clock for the checkpoint");
    }
    const auto stored = store.checkpoint(job);
    SystemTime from = *server_now - o.lookback;
    if (o.since) {
        from = *o.since;
    } else if (stored) {
        if (const auto t = util::parse_iso8601(*stored)) {
            from = *t - o.lookback;
        }
    }
    log::info("webhook {} events from {} to {} (checkpoint {})", o.api.campaign,
              util::format_iso8601(from), util::format_iso8601(*server_now),
              stored.value_or("none"));

    // The index names transactions; group them by contact so each contact is fetched once.
    std::unordered_map<std::string, std::set<std::string>> fired_by_contact;
    std::vector<std::string> order;
    const std::string query =
        event_query(o, util::format_dialfire_time(from), util::format_dialfire_time(*server_now));
    std::string cursor;
    do {
        const auto page = api.transactions(query, cursor);
        for (const auto& event : page.events) {
            ++stats.events;
            std::string fired, contact;
            if (!parse_event(event, fired, contact)) {
                log::warn("unreadable transaction index entry: {}", event.substr(0, 120));
                continue;
            }
            auto [it, added] = fired_by_contact.try_emplace(contact);
            if (added) {
                order.push_back(contact);
            }
            it->second.insert(fired);
        }
        cursor = page.cursor;
    } while (!cursor.empty());

    Enqueuer enqueuer(store, job, o.filter, stats);
    ContactFetchers fetchers(o.api, o.workers, retry);
    const auto consume = [&](FetchedBatch& batch) {
        SQLite::Transaction transaction(store.db());
        for (const auto& contact : batch.contacts) {
            ++stats.contacts;
            const auto id = contact.is_object() ? contact.value("$id", std::string{}) : "";
            const auto it = fired_by_contact.find(id);
            enqueuer.contact(contact,
                             it == fired_by_contact.end() ? std::set<std::string>{} : it->second);
        }
        transaction.commit();
    };
    bool failed = false;
    for (std::size_t start = 0; start < order.size() && !failed; start += k_contacts_per_request) {
        while (auto ready = fetchers.try_result()) {
            consume(*ready);
        }
        const auto end = std::min(order.size(), start + k_contacts_per_request);
        failed = !fetchers.submit(
            {order.begin() + static_cast<long>(start), order.begin() + static_cast<long>(end)});
    }
    fetchers.finish_submitting();
    while (auto ready = fetchers.next_result()) {
        consume(*ready);
    }
    stats.retries = retry_stats.retries.load();
    if (auto error = fetchers.error()) {
        std::rethrow_exception(error);
    }
    // Everything of the window is in the outbox: the checkpoint may pass it.
    SQLite::Transaction transaction(store.db());
    store.set_checkpoint(job, util::format_iso8601(*server_now));
    transaction.commit();
    return stats;
}

} // namespace crmsync::drivers::dialfire
