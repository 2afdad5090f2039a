#include "tests/unit/curl_multi_fault.hpp"

#include <curl/curl.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace {

std::atomic<bool> g_exists{false};
std::atomic<bool> g_armed{false};
std::atomic<bool> g_every_thread{false};
std::atomic<long> g_failures{0};
std::atomic<std::thread::id> g_maker; // the thread that made the fault

} // namespace

// The linker sends crmsync's calls of curl_multi_perform here (--wrap), and
// __real_curl_multi_perform to libcurl's.
extern "C" CURLMcode __real_curl_multi_perform(CURLM* multi, int* running);
extern "C" CURLMcode __wrap_curl_multi_perform(CURLM* multi, int* running) {
    if (g_armed.load() && (g_every_thread.load() || std::this_thread::get_id() != g_maker)) {
        ++g_failures;
        return CURLM_OUT_OF_MEMORY;
    }
    return __real_curl_multi_perform(multi, running);
}

namespace crmsync::testing {

CurlMultiPerformFault::CurlMultiPerformFault(Where where) {
    if (g_exists.load()) {
        throw std::logic_error("one CurlMultiPerformFault at a time");
    }
    g_maker = std::this_thread::get_id();
    g_every_thread = where == Where::every_thread;
    g_failures = 0;
    g_exists = true;
}

CurlMultiPerformFault::~CurlMultiPerformFault() {
    g_armed = false;
    g_exists = false;
}

void CurlMultiPerformFault::arm() { g_armed = true; }

void CurlMultiPerformFault::disarm() { g_armed = false; }

long CurlMultiPerformFault::failures() const { return g_failures.load(); }

} // namespace crmsync::testing
