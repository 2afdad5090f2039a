#pragma once

namespace crmsync::testing {

// Makes libcurl's multi interface fail, as it does when out of memory, without touching
// crmsync's code: unit_tests is linked with --wrap=curl_multi_perform, so every call crmsync
// makes goes through this fault first. At most one exists at a time.
class CurlMultiPerformFault {
public:
    enum class Where {
        every_thread,  // every caller
        other_threads, // every thread but the one that made the fault (a lane's thread)
    };

    explicit CurlMultiPerformFault(Where where);
    ~CurlMultiPerformFault(); // disarmed again
    CurlMultiPerformFault(const CurlMultiPerformFault&) = delete;
    CurlMultiPerformFault& operator=(const CurlMultiPerformFault&) = delete;

    // From now on the calls `where` says answer CURLM_OUT_OF_MEMORY. Any thread may arm it
    // (a test server's handler, say).
    void arm();
    // libcurl's own answers again.
    void disarm();
    // How many calls it failed so far.
    long failures() const;
};

} // namespace crmsync::testing
