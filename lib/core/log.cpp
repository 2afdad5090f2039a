#include "lib/core/log.hpp"

#include "lib/core/error.hpp"
#include "lib/util/redact.hpp"

#include <spdlog/sinks/base_sink.h>
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

// Log lines go to the descriptor opened once by init(): the file is never looked up by name
// again, so a symlink or rename planted later cannot redirect them.
class DescriptorSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit DescriptorSink(int fd) : m_fd(fd) {}
    ~DescriptorSink() override { ::close(m_fd); }
    DescriptorSink(const DescriptorSink&) = delete;
    DescriptorSink& operator=(const DescriptorSink&) = delete;

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        const char* data = formatted.data();
        std::size_t left = formatted.size();
        while (left > 0) {
            const ssize_t n = ::write(m_fd, data, left);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return; // a full disk must not stop the sync; the line is lost
            }
            data += n;
            left -= static_cast<std::size_t>(n);
        }
    }
    void flush_() override {}

private:
    int m_fd;
};

// Opens the log file for appending, refusing a symlink (O_NOFOLLOW) or anything but a
// regular file. Throws Error(io).
int open_log_file(const std::string& path) {
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ELOOP) {
        throw Error(ErrorKind::io, "the log file " + path + " is a symbolic link; not following it",
                    "remove the link, or choose another directory with --log-dir");
    }
    if (fd < 0) {
        throw Error(ErrorKind::io, "cannot create log file " + path + ": " + std::strerror(errno),
                    "choose a writable directory with --log-dir");
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(ErrorKind::io, "the log file " + path + " is not a regular file",
                    "choose another directory with --log-dir");
    }
    ::fchmod(fd, 0600); // logs hold customer data, whatever mode an old file had
    return fd;
}

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
        sinks.push_back(std::make_shared<DescriptorSink>(open_log_file(options.file)));
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
