#include "drivers/callcenter/sync.hpp"

#include "drivers/callcenter/transform.hpp"
#include "lib/core/error.hpp"
#include "lib/core/log.hpp"
#include "lib/rest/rest_source.hpp"
#include "lib/util/url.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace crmsync::drivers::callcenter {
namespace {

// The contract (an assumption about the vendor's routes) lives here and nowhere else: paths,
// parameters, envelope, paging, auth headers. Mapping the real API later changes only this.
struct Route {
    const char* stream;
    const char* path; // under /callcenters/{id}
};
constexpr Route k_routes[] = {
    {"contacts", "/contacts"},     {"contact_groups", "/contact-groups"},
    {"activities", "/activities"}, {"agents", "/agents"},
    {"roles", "/roles"},           {"sip_accounts", "/sip-accounts"},
};

rest::Stream make_stream(const SyncOptions& o, const Route& route) {
    rest::Stream s;
    s.name = route.stream;
    s.path = "/callcenters/" + util::percent_encode(o.call_center) + route.path;
    s.query = {{"includeDeleted", "true"}};
    s.records_pointer = "/result";
    s.paging = rest::keyset({{{"updatedFrom", "/updatedAt"}, {"afterId", "/_id"}},
                             {"limit", o.page_size},
                             "/paging/hasMore"});
    rest::ChangedSince changes;
    changes.field_pointer = "/updatedAt";
    changes.id_pointer = "/_id";
    changes.format = rest::TimeFormat::epoch_ms;
    changes.from_param = "updatedFrom";
    changes.to_param = "updatedTo";
    changes.after_id_param = "afterId";
    changes.lookback = o.lookback;
    changes.since = o.since;
    s.changed_since = changes;
    return s;
}

std::unique_ptr<rest::Auth> make_auth(const SyncOptions& o) {
    switch (o.auth) {
    case AuthMode::basic:
        return rest::basic_auth(o.user, o.secret);
    case AuthMode::apikey:
        return rest::api_key_header("x-apikey", o.secret);
    case AuthMode::bearer:
        return rest::bearer_token(o.secret);
    }
    return {};
}

// The REST source, plus what the transform needs from the target: for each page of groups,
// the members stored before (contact_groups.contact_list), so removed members get tombstones.
// A target that cannot tell (the outbox) gets none: only current members are posted.
class GroupAwareSource final : public pipeline::Source {
public:
    GroupAwareSource(std::unique_ptr<pipeline::Source> inner, pipeline::Sink& sink,
                     const CallcenterSchema& schema, const SyncOptions& options,
                     const http::RetryStats& stats)
        : m_inner(std::move(inner)), m_sink(sink), m_schema(schema), m_options(options),
          m_stats(stats) {}

    void open(const std::optional<std::string>& checkpoint) override {
        if (m_options.full_refresh && checkpoint) {
            log::info("callcenter {}: --full-refresh, reading every stream from the start",
                      m_options.call_center);
        }
        m_inner->open(m_options.full_refresh ? std::nullopt : checkpoint);
    }

    std::optional<pipeline::Page> next_page() override {
        auto page = m_inner->next_page();
        if (page && page->stream == "contact_groups" && !page->records.empty()) {
            add_previous_members(*page);
        }
        return page;
    }

    // The REST source leaves the retries to its caller, who owns the counters.
    void report(pipeline::RunSummary& summary) const override {
        m_inner->report(summary);
        summary.retries += m_stats.retries.load();
    }

private:
    void add_previous_members(pipeline::Page& page) {
        std::vector<std::string> keys;
        for (const auto& r : page.records) {
            if (r.is_object() && r.contains("_id") && r["_id"].is_string()) {
                keys.push_back(row_key(m_options.call_center, r["_id"].get<std::string>()));
            }
        }
        if (keys.empty()) {
            return;
        }
        const auto stored =
            m_sink.lookup(m_schema.spec("contact_groups").table, {"contact_list"}, keys);
        nlohmann::json previous = nlohmann::json::object();
        for (const auto& [key, values] : stored) {
            if (!values.empty() && values[0]) {
                previous[key] = nlohmann::json::parse(*values[0], nullptr, false);
            }
        }
        page.context["previous_members"] = std::move(previous);
    }

    std::unique_ptr<pipeline::Source> m_inner;
    pipeline::Sink& m_sink;
    const CallcenterSchema& m_schema;
    const SyncOptions& m_options;
    const http::RetryStats& m_stats;
};

} // namespace

http::HttpRequest probe_request(const SyncOptions& options) {
    http::HttpRequest request;
    request.url = options.base_url + "/callcenters/" + util::percent_encode(options.call_center) +
                  "/roles?limit=1";
    request.headers = {{"Accept", "application/json"}};
    make_auth(options)->apply(request);
    return request;
}

std::string to_string(AuthMode mode) {
    switch (mode) {
    case AuthMode::basic:
        return "basic";
    case AuthMode::apikey:
        return "apikey";
    case AuthMode::bearer:
        return "bearer";
    }
    return "?";
}

std::string job_key(const SyncOptions& options) {
    return "callcenter:" + options.call_center + ":" + options.table_prefix;
}

pipeline::Ending run_sync(const SyncOptions& options, pipeline::Sink& sink,
                          pipeline::RunSummary& summary) {
    const CallcenterSchema schema(options.table_prefix);
    sink.prepare(schema.tables());

    rest::RestSourceOptions rest_options;
    rest_options.base_url = options.base_url;
    rest_options.auth = make_auth(options);
    rest_options.verify_tls = options.verify_tls;
    for (const auto& route : k_routes) {
        if (options.streams.empty() || std::find(options.streams.begin(), options.streams.end(),
                                                 route.stream) != options.streams.end()) {
            rest_options.streams.push_back(make_stream(options, route));
        }
    }
    http::RetryStats stats;
    const http::RetryContext retry{options.retry, stats, Clock::real(), options.deadline, ""};
    GroupAwareSource source(rest::make_rest_source(std::move(rest_options), retry), sink, schema,
                            options, stats);

    const auto transform = [&](const pipeline::Page& page, pipeline::Emitter& out,
                               pipeline::RunSummary&) {
        static const nlohmann::json none = nlohmann::json::object();
        const auto& previous = page.context.is_object() && page.context.contains("previous_members")
                                   ? page.context["previous_members"]
                                   : none;
        for (const auto& record : page.records) {
            nlohmann::json members;
            if (page.stream == "contact_groups" && record.is_object() && record.contains("_id") &&
                record["_id"].is_string()) {
                const auto key = row_key(options.call_center, record["_id"].get<std::string>());
                if (previous.contains(key)) {
                    members = previous[key];
                }
            }
            transform_record(page.stream, record, options.call_center, schema, members, out);
        }
    };
    pipeline::RunnerOptions runner;
    runner.label = "records";
    runner.deadline = options.deadline;
    runner.show_progress = options.show_progress;
    try {
        return pipeline::Runner(source, transform, sink, summary, runner).run();
    } catch (Error& e) {
        if (e.kind() == ErrorKind::auth) {
            e.add_context("call center " + options.call_center + ", auth mode " +
                          to_string(options.auth));
        }
        throw;
    }
}

} // namespace crmsync::drivers::callcenter
