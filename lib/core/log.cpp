#include "lib/core/log.hpp"

#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

namespace crmsync::log {
namespace {

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_logger;
Level g_level = Level::info;

spdlog::level::level_enum to_spdlog(Level level) {
    switch (level) {
    case Level::critical:
        return spdlog::level::critical;
    case Level::error:
        return spdlog::level::err;
    case Level::warning:
        return spdlog::level::warn;
    case Level::notice:
    case Level::info:
        return spdlog::level::info;
    case Level::debug:
        return spdlog::level::debug;
    }
    return spdlog::level::info;
}

} // namespace

void init(const LogOptions& options) {
    std::lock_guard lock(g_mutex);
    std::vector<spdlog::sink_ptr> sinks;
    if (!options.file.empty()) {
        // Created private before spdlog opens it: logs hold customer data.
        const int fd =
            ::open(options.file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
            throw Error(ErrorKind::io,
                        "cannot create log file " + options.file + ": " + std::strerror(errno),
                        "choose a writable directory with --log-dir");
        }
        ::fchmod(fd, 0600);
        ::close(fd);
        sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file));
    }
    if (options.to_stdout) {
        sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
    }
    g_logger = std::make_shared<spdlog::logger>("crmsync", sinks.begin(), sinks.end());
    g_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
    g_logger->set_level(to_spdlog(options.level));
    g_logger->flush_on(spdlog::level::info);
    g_level = options.level;
}

void shutdown() {
    std::lock_guard lock(g_mutex);
    if (g_logger) {
        g_logger->flush();
        g_logger.reset();
    }
}

void write(Level level, std::string_view message) {
    std::lock_guard lock(g_mutex);
    if (!g_logger || level > g_level) {
        return;
    }
    g_logger->log(to_spdlog(level), util::redact(message));
}

} // namespace crmsync::log
