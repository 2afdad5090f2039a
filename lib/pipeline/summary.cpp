#include "lib/pipeline/summary.hpp"

#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace crmsync::pipeline {

std::string_view to_string(RunStatus status) noexcept {
    switch (status) {
    case RunStatus::ok:
        return "ok";
    case RunStatus::partial:
        return "partial";
    case RunStatus::failed:
        return "failed";
    case RunStatus::interrupted:
        return "interrupted";
    case RunStatus::locked:
        return "locked";
    }
    return "failed";
}

std::string RunSummary::to_line() const {
    std::string line = fmt::format("{} {} {} in {:.1f}s:", command, job, to_string(status),
                                   static_cast<double>(duration.count()) / 1000.0);
    for (const auto& [table, c] : tables) {
        line += fmt::format(" {} +{} ~{} ={};", table, c.inserted, c.updated, c.unchanged);
    }
    for (const auto& [name, value] : counters) {
        line += fmt::format(" {} {},", name, value);
    }
    line += fmt::format(" fetched {}, skipped {}, filtered {}, rejected {}, retries {}", fetched,
                        skipped, filtered, rejected, retries);
    if (in_progress > 0) {
        line += fmt::format(", in progress {}", in_progress);
    }
    if (!checkpoint.empty()) {
        line += ", checkpoint " + checkpoint;
    }
    return util::redact(line);
}

std::string RunSummary::to_json() const {
    nlohmann::json j;
    j["command"] = command;
    j["job"] = job;
    j["status"] = std::string(to_string(status));
    j["tables"] = nlohmann::json::object();
    for (const auto& [table, c] : tables) {
        j["tables"][table] = {
            {"inserted", c.inserted}, {"updated", c.updated}, {"unchanged", c.unchanged}};
    }
    for (const auto& [name, value] : counters) {
        j[name] = value;
    }
    j["fetched"] = fetched;
    j["skipped"] = skipped;
    j["filtered"] = filtered;
    j["rejected"] = rejected;
    j["in_progress"] = in_progress;
    j["retries"] = retries;
    j["duration_ms"] = duration.count();
    j["checkpoint"] = checkpoint;
    if (!error.empty()) {
        j["error"] = error;
    }
    return util::redact(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
}

void write_summary_file(const RunSummary& summary, const std::string& path) {
    const auto fail = [&](const char* doing) {
        return Error(ErrorKind::io, std::string("cannot write summary ") + path + " (" + doing +
                                        "): " + std::strerror(errno));
    };
    // A unique temporary name beside the file: two runs writing the same summary, or a
    // leftover from a killed run, never meet; rename() makes the new content appear whole.
    const auto slash = path.rfind('/');
    std::string temp = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
                       ".crmsync-summary-XXXXXX";
    const int fd = ::mkostemp(temp.data(), O_CLOEXEC); // created 0600
    if (fd < 0) {
        throw fail("create a temporary file");
    }
    // An existing summary keeps its mode (someone chose it); a new one stays 0600.
    struct stat existing {};
    if (::stat(path.c_str(), &existing) == 0) {
        ::fchmod(fd, existing.st_mode & 07777);
    }
    const std::string text = summary.to_json() + "\n";
    std::size_t written = 0;
    while (written < text.size()) {
        const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const Error error = fail("write");
            ::close(fd);
            ::unlink(temp.c_str());
            throw error;
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        const Error error = fail("fsync");
        ::close(fd);
        ::unlink(temp.c_str());
        throw error;
    }
    ::close(fd);
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
        const Error error = fail("rename");
        ::unlink(temp.c_str());
        throw error;
    }
}

} // namespace crmsync::pipeline
