#include "drivers/webhook/outbox_sink.hpp"

#include "lib/core/log.hpp"
#include "lib/sql/json_values.hpp"
#include "lib/state/outbox.hpp"
#include "lib/util/hash.hpp"
#include "lib/util/url.hpp"

#include <fmt/format.h>

#include <charconv>

namespace crmsync::drivers::webhook {
namespace {

// Delivered deliveries stay in the outbox this long (status shows them, a receiver's question
// "was X sent?" can be answered), then each run removes up to k_pruned_per_run of them.
constexpr std::chrono::hours k_delivered_kept{24 * 7};
constexpr std::size_t k_pruned_per_run = 50'000;

nlohmann::json value_json(const sql::Column& column, const std::string& text) {
    switch (column.type) {
    case sql::ColumnType::integer: {
        std::int64_t n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec == std::errc{} && end == text.data() + text.size()) {
            return n;
        }
        return text;
    }
    case sql::ColumnType::boolean:
        return text == "1" || text == "true";
    case sql::ColumnType::json: {
        auto parsed = nlohmann::json::parse(text, nullptr, false);
        return parsed.is_discarded() ? nlohmann::json(text) : parsed;
    }
    default:
        // Decimals stay text: a JSON double would round them.
        return text;
    }
}

} // namespace

std::string delivery_id(const std::string& job, const std::string& key, std::int64_t revision,
                        const std::string& content_md5) {
    return "msg_" +
           util::md5_hex(fmt::format("{}\x1f{}\x1f{}\x1f{}", job, key, revision, content_md5));
}

std::optional<Message> row_message(const sql::Table& table, const sql::Row& row) {
    const std::size_t key = table.position(table.key());
    if (key == std::string::npos || key >= row.size() || !row[key]) {
        return std::nullopt;
    }
    nlohmann::json record = nlohmann::json::object();
    for (std::size_t i = 0; i < table.columns.size() && i < row.size(); ++i) {
        const auto& column = table.columns[i];
        if (column.name == table.changed_at_column || column.identity) {
            continue;
        }
        record[column.name] = row[i] ? value_json(column, *row[i]) : nlohmann::json();
    }
    Message m;
    m.key = table.name + "\x1f" + *row[key];
    m.group_key = table.name + "\x1f" + *row[key];
    m.order_key = "";
    m.content = sql::to_json_text(record);
    m.fields = {{"table", sql::to_json_text(table.name)},
                {"key", sql::to_json_text(*row[key])},
                {"record", m.content}};
    return m;
}

std::string message_body(const Message& m, const std::string& state) {
    std::size_t size = 16 + state.size();
    for (const auto& [name, text] : m.fields) {
        size += name.size() + text.size() + 4;
    }
    std::string body;
    body.reserve(size);
    body += '{';
    bool state_written = false;
    const auto member = [&body](const std::string& name, const std::string& text) {
        if (body.size() > 1) {
            body += ',';
        }
        body += sql::to_json_text(name);
        body += ':';
        body += text;
    };
    // std::map keeps the names sorted, as nlohmann's objects are; "state" goes in its place.
    for (const auto& [name, text] : m.fields) {
        if (name == "state") {
            continue; // the event's state wins, as body["state"] = ... did
        }
        if (!state_written && name > "state") {
            member("state", sql::to_json_text(state));
            state_written = true;
        }
        member(name, text);
    }
    if (!state_written) {
        member("state", sql::to_json_text(state));
    }
    body += '}';
    return body;
}

OutboxSink::OutboxSink(state::StateStore& store, std::string job, SenderOptions sender,
                       pipeline::RunSummary& summary, MessageFormat format)
    : m_store(store), m_job(std::move(job)), m_sender(std::move(sender)), m_summary(summary),
      m_format(std::move(format)) {}

OutboxSink::OutboxSink(std::unique_ptr<state::StateStore> store, std::string job,
                       SenderOptions sender, pipeline::RunSummary& summary, MessageFormat format)
    : m_owned(std::move(store)), m_store(*m_owned), m_job(std::move(job)),
      m_sender(std::move(sender)), m_summary(summary), m_format(std::move(format)) {}

std::string OutboxSink::description() const { return util::redact_url(m_sender.url); }

bool OutboxSink::lock() { return m_store.try_lock_job(m_job); }

std::optional<std::string> OutboxSink::load_checkpoint() {
    std::lock_guard guard(m_mutex);
    return m_store.checkpoint(m_job);
}

void OutboxSink::add(const sql::Table& table, sql::Row row) {
    if (auto message = m_format(table, row)) {
        m_buffer.push_back(std::move(*message));
    }
}

void OutboxSink::reject(const std::string& table, const std::string& key, const std::string& reason,
                        const std::string& /*raw*/) {
    ++m_summary.rejected;
    log::warn("rejected {} {}: {}", table, key.empty() ? "(no key)" : key, reason);
}

void OutboxSink::commit(const std::optional<std::string>& checkpoint,
                        const std::string& /*progress*/) {
    std::lock_guard guard(m_mutex);
    state::Outbox outbox(m_store, m_sender.clock);
    state::Ledger ledger(m_store);
    long added_new = 0;
    long added_updated = 0;
    long unchanged = 0;
    state::Transaction transaction(m_store);
    for (const auto& message : m_buffer) {
        const std::string md5 = util::md5_hex(message.content);
        const auto before = ledger.entry(m_job, message.key);
        if (before && before->content_md5 == md5) {
            ++unchanged;
            continue;
        }
        const std::int64_t revision = before ? before->revision + 1 : 1;
        const std::string event = before ? "updated" : "new";
        state::Delivery d;
        d.id = delivery_id(m_job, message.key, revision, md5);
        d.job = m_job;
        d.group_key = message.group_key;
        d.order_key = message.order_key;
        d.event = event;
        d.body = message_body(message, event);
        outbox.enqueue(d);
        ledger.record(m_job, message.key, md5, revision, d.id);
        ++(before ? added_updated : added_new);
    }
    if (checkpoint) {
        m_store.set_checkpoint(m_job, *checkpoint);
    }
    transaction.commit();
    m_buffer.clear();
    m_new += added_new;
    m_updated += added_updated;
    m_unchanged += unchanged;
    if (checkpoint) {
        m_summary.checkpoint = *checkpoint;
    }
}

std::map<std::string, std::vector<std::optional<std::string>>>
OutboxSink::lookup(const sql::Table& /*table*/, const std::vector<std::string>& columns,
                   const std::vector<std::string>& keys) {
    std::map<std::string, std::vector<std::optional<std::string>>> found;
    // The outbox keeps no rows, only the ledger: any other column would be answered with a
    // value of another meaning, so it is not answered at all (the Sink default: the source
    // fetches again).
    if (columns.size() != 1 || columns[0] != k_ledger_md5_column) {
        return found;
    }
    std::lock_guard guard(m_mutex);
    state::Ledger ledger(m_store);
    for (const auto& key : keys) {
        if (auto md5 = ledger.content_md5(m_job, key)) {
            found.emplace(key, std::vector<std::optional<std::string>>{std::move(md5)});
        }
    }
    return found;
}

pipeline::Sink::Finished OutboxSink::finish(pipeline::RunSummary& summary) {
    const auto sent = deliver_pending(m_store, m_job, m_sender);
    state::Outbox outbox(m_store, m_sender.clock);
    if (const long pruned = outbox.prune_delivered(m_job, k_delivered_kept, k_pruned_per_run);
        pruned > 0) {
        log::info("removed {} deliveries delivered more than {} days ago from the outbox", pruned,
                  k_delivered_kept.count() / 24);
    }
    const auto counts = outbox.counts(m_job);
    summary.retries += sent.retried;
    summary.counters.emplace_back("new", m_new);
    summary.counters.emplace_back("updated", m_updated);
    summary.counters.emplace_back("unchanged", m_unchanged);
    summary.counters.emplace_back("delivered", sent.delivered);
    summary.counters.emplace_back("pending", counts.pending);
    summary.counters.emplace_back("dead", counts.dead);
    if (const auto stored = m_store.checkpoint(m_job)) {
        summary.checkpoint = *stored;
    }
    Finished finished;
    finished.complete = counts.pending == 0 && counts.dead == 0;
    // The receiver refusing every delivery is an error episode; a run that had nothing due
    // (deliveries waiting for their backoff) says nothing either way.
    if (sent.delivered == 0 && sent.retried + sent.died > 0) {
        finished.notice_error =
            fmt::format("the receiver took none of {} deliveries tried ({} pending, {} dead); "
                        "see the log for its answers",
                        sent.attempts, counts.pending, counts.dead);
    } else if (sent.delivered == 0 && counts.pending > 0) {
        finished.no_notice = true;
    }
    return finished;
}

} // namespace crmsync::drivers::webhook
