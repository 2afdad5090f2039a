#include "drivers/dialfire/webhook_source.hpp"

#include "drivers/dialfire/contact_fetchers.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/time.hpp"
#include "lib/util/url.hpp"

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

// A contact's transactions in fired order, each with its stable key: md5($id + fired), with
// "#n" for the n-th repeat of the same fired time.
std::vector<std::pair<std::string, const json*>> keyed_transactions(const json& contact,
                                                                    const std::string& id) {
    std::vector<const json*> transactions;
    const auto log_it = contact.find("$task_log");
    if (log_it == contact.end() || !log_it->is_array()) {
        return {};
    }
    for (const auto& entry : *log_it) {
        const auto txs = entry.is_object() ? entry.find("transactions") : entry.end();
        if (entry.is_object() && txs != entry.end() && txs->is_array()) {
            for (const auto& tx : *txs) {
                transactions.push_back(&tx);
            }
        }
    }
    // Deliveries of one contact go out in fired order.
    std::stable_sort(transactions.begin(), transactions.end(), [](const json* a, const json* b) {
        return a->value("fired", std::string{}) < b->value("fired", std::string{});
    });
    std::vector<std::pair<std::string, const json*>> keyed;
    std::map<std::string, int> seen;
    for (const json* tx : transactions) {
        const auto fired = tx->find("fired");
        if (fired == tx->end() || !fired->is_string()) {
            continue;
        }
        const std::string f = fired->get<std::string>();
        const int n = seen[f]++;
        keyed.emplace_back(util::md5_hex(id + f + (n == 0 ? "" : "#" + std::to_string(n))), tx);
    }
    return keyed;
}

class TransactionSource final : public pipeline::Source {
public:
    TransactionSource(const WebhookSourceOptions& options, pipeline::Sink& sink)
        : m_options(options),
          m_sink(sink), m_retry{options.retry, m_stats, Clock::real(), options.deadline, ""},
          m_api(options.api, m_retry) {}

    void open(const std::optional<std::string>& stored) override {
        std::optional<SystemTime> date_header;
        m_api.fields(&date_header);
        m_server_now = server_time(date_header);
        SystemTime from = m_server_now - m_options.lookback;
        if (m_options.since) {
            from = *m_options.since;
        } else if (stored) {
            if (const auto t = util::parse_iso8601(*stored)) {
                from = *t - m_options.lookback;
            }
        }
        log::info("webhook {} events from {} to {} (checkpoint {})", m_options.api.campaign,
                  util::format_iso8601(from), util::format_iso8601(m_server_now),
                  stored.value_or("none"));
        read_index(from);
        m_fetchers = std::make_unique<ContactFetchers>(m_options.api, m_options.workers, m_retry);
        m_fetchers->add_ids(m_order);
    }

    std::optional<pipeline::Page> next_page() override {
        if (m_done) {
            return std::nullopt;
        }
        if (auto batch = m_fetchers->next([] { return false; })) {
            pipeline::Page page;
            page.stream = "contacts";
            page.records = std::move(batch->contacts);
            page.context = candidates(page.records);
            return page;
        }
        // Everything of the window is in the outbox once this page commits.
        m_done = true;
        pipeline::Page last;
        last.checkpoint = util::format_iso8601(m_server_now);
        return last;
    }

    void report(pipeline::RunSummary& summary) const override {
        summary.counters.emplace_back("events", m_events);
        summary.retries += m_stats.retries.load();
    }

private:
    // The index names transactions; they are grouped by contact so each contact is fetched
    // once.
    void read_index(SystemTime from) {
        const std::string query =
            event_query(m_options, format_dialfire_time(from), format_dialfire_time(m_server_now));
        std::string cursor;
        do {
            const auto page = m_api.transactions(query, cursor);
            for (const auto& event : page.events) {
                ++m_events;
                std::string fired, contact;
                if (!parse_event(event, fired, contact)) {
                    log::warn("unreadable transaction index entry: {}", event.substr(0, 120));
                    continue;
                }
                auto [it, added] = m_fired_by_contact.try_emplace(contact);
                if (added) {
                    m_order.push_back(contact);
                }
                it->second.insert(fired);
            }
            cursor = page.cursor;
        } while (!cursor.empty());
    }

    // {"<transaction key>": true} for each transaction of these contacts that the index named
    // in this window or that was delivered before: the ones the transform may send.
    json candidates(const std::vector<json>& contacts) {
        std::vector<std::pair<std::string, std::string>> keys; // key, fired
        for (const auto& contact : contacts) {
            const auto id_it = contact.is_object() ? contact.find("$id") : contact.end();
            if (!contact.is_object() || id_it == contact.end() || !id_it->is_string()) {
                continue;
            }
            const std::string id = id_it->get<std::string>();
            const auto window = m_fired_by_contact.find(id);
            for (const auto& [key, tx] : keyed_transactions(contact, id)) {
                const bool in_window = window != m_fired_by_contact.end() &&
                                       window->second.count(tx->value("fired", "")) > 0;
                keys.emplace_back(key, in_window ? "window" : "");
            }
        }
        std::vector<std::string> asked;
        for (const auto& [key, why] : keys) {
            if (why.empty()) {
                asked.push_back(key);
            }
        }
        const auto delivered = m_sink.lookup(transaction_deliveries(), {"content_md5"}, asked);
        json result = json::object();
        for (const auto& [key, why] : keys) {
            if (!why.empty() || delivered.count(key) > 0) {
                result[key] = true;
            }
        }
        return result;
    }

    const WebhookSourceOptions& m_options;
    pipeline::Sink& m_sink;
    http::RetryStats m_stats;
    http::RetryContext m_retry;
    ApiClient m_api;
    SystemTime m_server_now{};
    std::unordered_map<std::string, std::set<std::string>> m_fired_by_contact;
    std::vector<std::string> m_order;
    std::unique_ptr<ContactFetchers> m_fetchers;
    long m_events = 0;
    bool m_done = false;
};

} // namespace

const sql::Table& transaction_deliveries() {
    static const sql::Table table = [] {
        sql::Table t;
        t.name = "transactions";
        for (const char* name : {"key", "contact_id", "fired", "contact", "transaction"}) {
            t.columns.push_back({name, sql::ColumnType::text});
        }
        t.primary_key = "key";
        return t;
    }();
    return table;
}

pipeline::Ending enqueue_transactions(const WebhookSourceOptions& options, pipeline::Sink& sink,
                                      pipeline::RunSummary& summary) {
    TransactionSource source(options, sink);
    const auto transform = [&options](const pipeline::Page& page, pipeline::Emitter& out,
                                      pipeline::RunSummary& s) {
        for (const auto& contact : page.records) {
            const auto id_it = contact.is_object() ? contact.find("$id") : contact.end();
            if (!contact.is_object() || id_it == contact.end() || !id_it->is_string()) {
                log::warn("skipping a contact without $id from the API");
                continue;
            }
            const std::string id = id_it->get<std::string>();
            const std::string head_text = sql::to_json_text_without(contact, {"$task_log"});
            for (const auto& [key, tx] : keyed_transactions(contact, id)) {
                if (!page.context.contains(key)) {
                    continue;
                }
                if (!options.filter.accepts(*tx)) {
                    ++s.filtered;
                    continue;
                }
                out.add(transaction_deliveries(),
                        {key, id, tx->value("fired", ""), head_text, sql::to_json_text(*tx)});
            }
        }
    };
    pipeline::RunnerOptions runner;
    runner.label = "contacts";
    runner.pages_ahead = 2 * options.workers;
    runner.batch_rows = 1; // each batch of contacts is enqueued at once
    runner.deadline = options.deadline;
    runner.show_progress = options.show_progress;
    // The transform reads only its page and the filter: it runs on the fetch thread, turning
    // the next page into events while this one is compared with the ledger and enqueued.
    runner.transform_ahead = true;
    return pipeline::Runner(source, transform, sink, summary, runner).run();
}

} // namespace crmsync::drivers::dialfire
