#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace crmsync::log {

// Levels follow dbsync2's --l: 0 critical .. 5 debug.
enum class Level { critical = 0, error = 1, warning = 2, notice = 3, info = 4, debug = 5 };

struct LogOptions {
    std::string file; // empty: no log file
    Level level = Level::info;
    bool to_stdout = false; // dbsync2's --v
};

// Opens the log file (created 0600, appended to, kept open by descriptor; a symlink or a
// non-regular file is refused with Error(io)). Every line passes through util::redact, so
// a registered secret never reaches it. Safe to call once; before it, log lines are dropped
// (errors still reach the user through the one `crmsync: error:` line of cli::run).
void init(const LogOptions& options);
void shutdown();

void write(Level level, std::string_view message);

template <typename... Args> void info(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args> void warn(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::warning, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args> void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args> void debug(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}

} // namespace crmsync::log
