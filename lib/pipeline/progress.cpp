#include "lib/pipeline/progress.hpp"

#include <cstdio>
#include <unistd.h>

namespace crmsync::pipeline {

ProgressLine::ProgressLine(bool enabled) : m_enabled(enabled && ::isatty(STDERR_FILENO) == 1) {}

ProgressLine::~ProgressLine() { finish(); }

void ProgressLine::update(const std::string& text) {
    if (!m_enabled) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (m_drawn && now - m_last < std::chrono::milliseconds(250)) {
        return;
    }
    m_last = now;
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    std::fflush(stderr);
    m_drawn = true;
}

void ProgressLine::finish() {
    if (m_enabled && m_drawn) {
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
        m_drawn = false;
    }
}

} // namespace crmsync::pipeline
