#pragma once

#include <chrono>
#include <string>

namespace crmsync::pipeline {

// A single self-overwriting status line on stderr, shown only when stderr is a terminal (cron
// and CI logs stay clean) and redrawn at most four times a second.
class ProgressLine {
public:
    explicit ProgressLine(bool enabled);
    ~ProgressLine();

    void update(const std::string& text);
    void finish();

private:
    bool m_enabled;
    bool m_drawn = false;
    std::chrono::steady_clock::time_point m_last{};
};

} // namespace crmsync::pipeline
