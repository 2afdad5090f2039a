#include "lib/rest/rest_source.hpp"

#include "lib/core/error.hpp"
#include "lib/util/ascii.hpp"
#include "lib/util/utf8.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string_view>

namespace crmsync::rest {
namespace {

constexpr const char* k_damaged_hint =
    "the service or a proxy in between answers something else than JSON; the next run retries";

class RestSource final : public pipeline::Source {
public:
    RestSource(RestSourceOptions options, http::RetryContext retry)
        : m_options(std::move(options)), m_retry(std::move(retry)),
          m_http(http::HttpClientOptions{m_options.verify_tls}) {
        while (!m_options.base_url.empty() && m_options.base_url.back() == '/') {
            m_options.base_url.pop_back();
        }
        std::set<std::string> names;
        for (auto& stream : m_options.streams) {
            if (stream.name.empty() || !names.insert(stream.name).second) {
                throw Error(ErrorKind::internal,
                            "REST streams need distinct names: '" + stream.name + "'");
            }
            if (stream.checkpoint_every_page && !stream.changed_since) {
                throw Error(ErrorKind::internal, "stream " + stream.name +
                                                     " checkpoints every page but has no "
                                                     "change time to checkpoint");
            }
            if (!stream.paging) {
                stream.paging = single_page();
            }
        }
    }

    void open(const std::optional<std::string>& checkpoint) override {
        m_positions = nlohmann::json::object();
        if (checkpoint && !checkpoint->empty()) {
            const auto doc = nlohmann::json::parse(*checkpoint, nullptr, false);
            const auto streams = doc.is_object() ? doc.find("streams") : doc.end();
            if (doc.is_discarded() || !doc.is_object() || streams == doc.end() ||
                !streams->is_object()) {
                throw Error(ErrorKind::data, "the stored checkpoint is not one this source wrote",
                            "clear the job's checkpoint to read everything again");
            }
            m_positions = *streams;
        }
        m_run_start = m_retry.clock.wall_now();
        m_index = 0;
        m_started = false;
    }

    std::optional<pipeline::Page> next_page() override {
        while (m_index < m_options.streams.size()) {
            Stream& stream = m_options.streams[m_index];
            try {
                if (!m_started && !start(stream)) {
                    ++m_index;
                    continue;
                }
                return fetch_page(stream);
            } catch (Error& e) {
                e.add_context(fmt::format("while reading {}, page {}", stream.name, m_page + 1));
                throw;
            }
        }
        return std::nullopt;
    }

    void report(pipeline::RunSummary& summary) const override {
        if (m_unreadable_times > 0) {
            summary.counters.emplace_back("records without a change time", m_unreadable_times);
        }
    }

private:
    // Prepares a stream's first page; false when its window is empty (nothing to ask for).
    bool start(Stream& stream) {
        m_window.reset();
        m_page = 0;
        m_fetched = 0;
        if (stream.changed_since) {
            std::optional<Position> stored;
            const auto entry = m_positions.find(stream.name);
            if (entry != m_positions.end() && !entry->is_null()) {
                stored = Position::from_json(*entry);
                if (!stored) {
                    throw Error(ErrorKind::data,
                                "the stored checkpoint of " + stream.name + " is malformed",
                                "clear the job's checkpoint to read everything again");
                }
            }
            m_window.emplace(*stream.changed_since, stored, m_run_start);
            if (m_window->empty()) {
                return false;
            }
        }
        stream.paging->start();
        m_started = true;
        return true;
    }

    pipeline::Page fetch_page(Stream& stream) {
        PageRequest request;
        request.url = m_options.base_url + stream.path;
        request.query = stream.query;
        request.headers = m_options.headers;
        if (m_window) {
            m_window->add_params(request);
        }
        stream.paging->prepare(request);
        const std::string what =
            fmt::format("GET {}", stream.path.empty() ? std::string("/") : stream.path);

        http::HttpResponse response;
        nlohmann::json body = send(request, what, response);
        std::vector<nlohmann::json> records = take_records(stream, body, what);
        if (m_window) {
            for (const auto& record : records) {
                if (!m_window->see(record)) {
                    ++m_unreadable_times;
                }
            }
        }
        const bool more = stream.paging->advance(PageReply{response, body, records});

        ++m_page;
        m_fetched += static_cast<long>(records.size());
        pipeline::Page page;
        page.stream = stream.name;
        page.records = std::move(records);
        if (!stream.records_pointer.empty()) {
            page.context = std::move(body);
        }
        page.progress =
            nlohmann::json{{"stream", stream.name}, {"page", m_page}, {"records", m_fetched}}
                .dump();
        if (!more || stream.checkpoint_every_page) {
            if (m_window && m_window->reached()) {
                m_positions[stream.name] = m_window->reached()->to_json();
            }
            page.checkpoint = nlohmann::json{{"streams", m_positions}}.dump();
        }
        if (!more) {
            m_started = false;
            ++m_index;
        }
        return page;
    }

    // One GET, retried per the RetryContext; a refused credential is renewed once.
    nlohmann::json send(const PageRequest& page_request, const std::string& what,
                        http::HttpResponse& response) {
        http::RetryContext context = m_retry;
        context.what = what;
        for (bool renewed = false;; renewed = true) {
            http::HttpRequest request;
            request.url = page_request.final_url();
            request.timeout = m_options.request_timeout;
            request.headers = page_request.headers;
            if (!has_header(request, "accept")) {
                request.headers.emplace_back("Accept", "application/json");
            }
            if (m_options.auth) {
                m_options.auth->apply(request);
            }
            nlohmann::json parsed;
            int damaged = 0;
            // A 2xx whose body does not parse (cut off, a proxy's HTML page) is retried like a 5xx.
            const auto check = [&](const http::HttpResponse& answer) {
                std::string text = answer.body;
                util::repair_utf8(text);
                parsed = nlohmann::json::parse(text, nullptr, false);
                if (parsed.is_discarded()) {
                    ++damaged;
                    return false;
                }
                return true;
            };
            try {
                response = http::send_with_retry(m_http, request, context, check);
                return parsed;
            } catch (Error& e) {
                if (e.kind() == ErrorKind::auth) {
                    if (!renewed && m_options.auth && m_options.auth->renew()) {
                        continue;
                    }
                    e.set_hint(m_options.auth ? m_options.auth->hint()
                                              : "the service wants credentials");
                    throw;
                }
                if (e.kind() == ErrorKind::connection && damaged > 0) {
                    throw Error(ErrorKind::data,
                                fmt::format("{} answered {} time(s) with a body that is not JSON "
                                            "({})",
                                            what, damaged, e.what()),
                                k_damaged_hint);
                }
                throw;
            }
        }
    }

    static bool has_header(const http::HttpRequest& request, std::string_view lower_name) {
        for (const auto& header : request.headers) {
            if (util::ascii_iequals(header.first, lower_name)) {
                return true;
            }
        }
        return false;
    }

    // Moves the records out of the body (leaving null in their place).
    static std::vector<nlohmann::json> take_records(const Stream& stream, nlohmann::json& body,
                                                    const std::string& what) {
        nlohmann::json* array = &body;
        if (!stream.records_pointer.empty()) {
            nlohmann::json::json_pointer pointer;
            try {
                pointer = nlohmann::json::json_pointer(stream.records_pointer);
            } catch (const nlohmann::json::exception&) {
                throw Error(ErrorKind::internal,
                            "malformed records pointer " + stream.records_pointer);
            }
            if (!body.contains(pointer) || body.at(pointer).is_null()) {
                if (stream.absent_records_are_none) {
                    return {};
                }
                throw Error(
                    ErrorKind::data,
                    fmt::format("{} answered without records at {}", what, stream.records_pointer),
                    "the API may have changed; run with --l 5 and report the log");
            }
            array = &body.at(pointer);
        }
        if (!array->is_array()) {
            throw Error(
                ErrorKind::data,
                fmt::format("{} answered {} where an array of records belongs ({})", what,
                            array->type_name(),
                            stream.records_pointer.empty() ? "the body" : stream.records_pointer),
                "the API may have changed; run with --l 5 and report the log");
        }
        std::vector<nlohmann::json> records;
        records.reserve(array->size());
        for (auto& record : *array) {
            records.push_back(std::move(record));
        }
        *array = nullptr;
        return records;
    }

    RestSourceOptions m_options;
    http::RetryContext m_retry;
    http::HttpClient m_http;
    nlohmann::json m_positions = nlohmann::json::object();
    SystemTime m_run_start{};
    std::size_t m_index = 0;
    bool m_started = false;
    std::optional<ChangeWindow> m_window;
    long m_page = 0;
    long m_fetched = 0;
    long m_unreadable_times = 0;
};

} // namespace

std::unique_ptr<pipeline::Source> make_rest_source(RestSourceOptions options,
                                                   http::RetryContext retry) {
    return std::make_unique<RestSource>(std::move(options), std::move(retry));
}

} // namespace crmsync::rest
