#pragma once

#include "drivers/webhook/sender.hpp"

#include "lib/pipeline/sink.hpp"
#include "lib/state/state_store.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::drivers::webhook {

// One message for the receiver, made from one row.
struct Message {
    std::string key;       // the record's identity: the ledger keeps one content hash per key
    std::string group_key; // messages of one group go out in order_key order
    std::string order_key;
    // The body's members but "state" (added: "new" or "updated"): name -> the value as JSON
    // text, as sql::to_json_text writes it. Kept as text so that an unchanged record (most of
    // them) is never parsed or written again.
    std::map<std::string, std::string> fields;
    std::string content; // what decides "changed" (its md5 is kept in the ledger)
};

// The delivery body of `m` with "state": `state`: one JSON object with the members in name
// order, byte for byte what sql::to_json_text writes for the same object.
std::string message_body(const Message& m, const std::string& state);

// Turns a row into a message; nullopt leaves the row out.
using MessageFormat = std::function<std::optional<Message>(const sql::Table&, const sql::Row&)>;

// Every source's rows as messages: {"table": T, "key": K, "record": {column: value...},
// "state": "new"|"updated"}, keyed by table and key, grouped by table, content = the record.
std::optional<Message> row_message(const sql::Table& table, const sql::Row& row);

// The id of revision `revision` (LedgerEntry) of a record's content: "msg_" + md5 of job, key,
// revision and content md5. Every change of content gets a new id (A, B, A: three ids); the
// same content enqueued again (a rerun, a --lookback overlap) is unchanged and not enqueued.
std::string delivery_id(const std::string& job, const std::string& key, std::int64_t revision,
                        const std::string& content_md5);

// The HTTP Sink: rows become deliveries in the durable outbox of the state file, each with a
// stable id (delivery_id), kept in one transaction with the ledger and the checkpoint; finish()
// delivers what is pending (Standard Webhooks headers, retries, order per group;
// drivers/webhook/sender.hpp). The ledger decides new / updated / unchanged: an unchanged row is
// not sent again. Rejects are logged and counted (the state file keeps no reject table). The lock
// is the state file's job lock.
class OutboxSink final : public pipeline::Sink {
public:
    OutboxSink(state::StateStore& store, std::string job, SenderOptions sender,
               pipeline::RunSummary& summary, MessageFormat format = row_message);
    // The same, owning the state file.
    OutboxSink(std::unique_ptr<state::StateStore> store, std::string job, SenderOptions sender,
               pipeline::RunSummary& summary, MessageFormat format = row_message);

    state::StateStore& store() { return m_store; }
    bool lock() override;
    std::string description() const override;
    void prepare(const std::vector<const sql::Table*>& /*tables*/) override {}
    std::optional<std::string> load_checkpoint() override;

    void add(const sql::Table& table, sql::Row row) override;
    void reject(const std::string& table, const std::string& key, const std::string& reason,
                const std::string& raw) override;
    std::size_t buffered() const override { return m_buffer.size(); }
    void commit(const std::optional<std::string>& checkpoint, const std::string& progress) override;

    // The one column an outbox can answer: the ledger's md5 of the content last enqueued
    // (k_ledger_md5_column, asked alone), by message key (Message::key, not a row's key),
    // for the keys enqueued before; sources use it to find records delivered before. Any
    // other column gets an empty answer (nothing known), whatever the table.
    static constexpr const char* k_ledger_md5_column = "content_md5";
    std::map<std::string, std::vector<std::optional<std::string>>>
    lookup(const sql::Table& table, const std::vector<std::string>& columns,
           const std::vector<std::string>& keys) override;

    Finished finish(pipeline::RunSummary& summary) override;

private:
    std::unique_ptr<state::StateStore> m_owned;
    state::StateStore& m_store;
    std::string m_job;
    SenderOptions m_sender;
    pipeline::RunSummary& m_summary;
    MessageFormat m_format;
    std::vector<Message> m_buffer;
    long m_new = 0;
    long m_updated = 0;
    long m_unchanged = 0;
    std::mutex m_mutex; // lookups come from the fetch thread
};

} // namespace crmsync::drivers::webhook
