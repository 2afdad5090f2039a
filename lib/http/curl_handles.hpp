#pragma once

#include <curl/curl.h>

#include <memory>

namespace crmsync::http {

// RAII owners for libcurl's C handles.
struct CurlEasyDeleter {
    void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
struct CurlSlistDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
struct CurlMultiDeleter {
    void operator()(CURLM* handle) const noexcept { curl_multi_cleanup(handle); }
};

using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;

// Calls curl_global_init once for the process lifetime (main does it too; tests rely on this).
void ensure_curl_global_init();

} // namespace crmsync::http
