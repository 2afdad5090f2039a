#pragma once

#include "lib/pipeline/summary.hpp"
#include "lib/sql/table.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::pipeline {

// What a Transform writes to: rows of the tables the source declared, and records it could
// not turn into rows (kept with their reason, never dropped silently).
class Emitter {
public:
    virtual ~Emitter() = default;
    // Buffers one row of `table` (values aligned with table.columns).
    virtual void add(const sql::Table& table, sql::Row row) = 0;
    // Records why a record was not stored. `key` may be empty (records without one are told
    // apart by `raw`); `raw` is kept for inspection.
    virtual void reject(const std::string& table, const std::string& key, const std::string& reason,
                        const std::string& raw) = 0;
};

// Where rows go: SQL tables (pipeline::TargetWriter) or a durable outbox of HTTP deliveries
// (drivers/webhook). Protocol: lock(), prepare(), load_checkpoint(), then add()/reject() and
// commit() any number of times, then finish(). Everything buffered becomes durable in one
// commit() together with the checkpoint given there; a kill before commit() returns loses
// only the buffer, which the next run fetches again. Not thread safe, except lookup().
// Throws crmsync::Error.
class Sink : public Emitter {
public:
    // Takes the job's lock for the life of the sink; false when another run holds it.
    virtual bool lock() = 0;
    // The target for messages ("PostgreSQL db on host:5432"); never holds a secret.
    virtual std::string description() const = 0;
    // Creates or completes the tables rows will be written to (and the sink's own).
    virtual void prepare(const std::vector<const sql::Table*>& tables) = 0;
    virtual std::optional<std::string> load_checkpoint() = 0;
    // The longest table or column name the target takes (sources size custom columns by it).
    virtual std::size_t max_identifier_bytes() const { return 128; }

    virtual std::size_t buffered() const = 0;
    // Makes the buffer durable. The stored checkpoint becomes `checkpoint` if given, else it
    // stays; `progress` (JSON text) is stored beside it.
    virtual void commit(const std::optional<std::string>& checkpoint,
                        const std::string& progress) = 0;
    // As commit(), but the target may answer before the commit is on its disk (see
    // sql::CommitWait::deferred): a crash of the database server right after it can lose the
    // buffer, always together with its checkpoint, so the next run fetches it again. The next
    // commit() makes it durable too. For the batches of a run, which ends with a commit(); the
    // default is commit().
    virtual void commit_deferred(const std::optional<std::string>& checkpoint,
                                 const std::string& progress) {
        commit(checkpoint, progress);
    }

    // Stored values of `columns` for the rows of `table` whose key is in `keys`, by key.
    // Optional: the default knows nothing, so a source that asks fetches everything again
    // (safe, only slower). Thread safe: sources call it from the fetch thread.
    virtual std::map<std::string, std::vector<std::optional<std::string>>>
    lookup(const sql::Table& /*table*/, const std::vector<std::string>& /*columns*/,
           const std::vector<std::string>& /*keys*/) {
        return {};
    }

    // Whether `table` holds any row; nullopt when the sink cannot tell (the default). A source
    // may skip lookup() for a run that starts on an empty table: there is nothing to find.
    // Thread safe, like lookup().
    virtual std::optional<bool> holds_rows(const sql::Table& /*table*/) { return std::nullopt; }

    // What finish() leaves for the job's ending.
    struct Finished {
        bool complete = true;     // false: work was left for the next run (the run is partial)
        std::string notice_error; // not empty: the run counts as an error episode (notices)
        bool no_notice = false;   // nothing was due: the run says nothing about the job's health
    };
    // Work that follows the last commit: an outbox delivers what is pending. Called after a
    // run that ended normally, early (time budget) or by a failing source, never after an
    // interruption. Adds its counters to `summary`.
    virtual Finished finish(RunSummary& /*summary*/) { return {}; }
};

} // namespace crmsync::pipeline
