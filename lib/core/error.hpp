#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync {

// What went wrong, in the terms a user acts on. The kind decides the exit code and the hint.
enum class ErrorKind {
    usage,       // a flag, URL or option is wrong; fix the command line
    config,      // configuration or environment is incomplete (missing token, unreadable file)
    connection,  // a server could not be reached or kept answering with transient errors
    auth,        // credentials were refused
    data,        // the source sent something we cannot interpret
    io,          // a local file or the target database failed
    locked,      // another run holds the job's lock
    interrupted, // a signal asked us to stop
    internal,    // a bug in crmsync
};

// The one exception type that crosses layer boundaries. Drivers translate their libraries'
// exceptions into it at their own boundary; callers add context on the way up.
class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, std::string message, std::string hint = {});

    ErrorKind kind() const noexcept { return m_kind; }
    const std::string& hint() const noexcept { return m_hint; }
    const std::vector<std::string>& context() const noexcept { return m_context; }

    // Adds "while ..." context, innermost first; returns *this so it can be rethrown.
    Error& add_context(std::string context);
    Error& set_hint(std::string hint);

    // "message (while a; while b)", without the "crmsync: error:" prefix.
    std::string describe() const;

private:
    ErrorKind m_kind;
    std::string m_hint;
    std::vector<std::string> m_context;
};

int exit_code_for(ErrorKind kind) noexcept;
std::string_view to_string(ErrorKind kind) noexcept;

} // namespace crmsync
