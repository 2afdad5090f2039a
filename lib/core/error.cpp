#include "lib/core/error.hpp"

#include "lib/core/exit_codes.hpp"

namespace crmsync {

Error::Error(ErrorKind kind, std::string message, std::string hint)
    : std::runtime_error(std::move(message)), m_kind(kind), m_hint(std::move(hint)) {}

Error& Error::add_context(std::string context) {
    m_context.push_back(std::move(context));
    return *this;
}

Error& Error::set_hint(std::string hint) {
    m_hint = std::move(hint);
    return *this;
}

std::string Error::describe() const {
    std::string text = what();
    if (!m_context.empty()) {
        text += " (";
        for (std::size_t i = 0; i < m_context.size(); ++i) {
            if (i > 0) {
                text += "; ";
            }
            text += "while " + m_context[i];
        }
        text += ")";
    }
    return text;
}

int exit_code_for(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::usage:
    case ErrorKind::config:
        return k_exit_usage;
    case ErrorKind::locked:
        return k_exit_locked;
    case ErrorKind::interrupted:
        return k_exit_interrupted;
    case ErrorKind::connection:
    case ErrorKind::auth:
    case ErrorKind::data:
    case ErrorKind::io:
    case ErrorKind::internal:
        return k_exit_failed;
    }
    return k_exit_failed;
}

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::usage:
        return "usage";
    case ErrorKind::config:
        return "config";
    case ErrorKind::connection:
        return "connection";
    case ErrorKind::auth:
        return "auth";
    case ErrorKind::data:
        return "data";
    case ErrorKind::io:
        return "io";
    case ErrorKind::locked:
        return "locked";
    case ErrorKind::interrupted:
        return "interrupted";
    case ErrorKind::internal:
        return "internal";
    }
    return "internal";
}

} // namespace crmsync
