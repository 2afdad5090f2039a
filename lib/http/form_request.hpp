#pragma once

#include "lib/http/http_client.hpp"

#include <string>
#include <utility>
#include <vector>

namespace crmsync::http {

// A POST of application/x-www-form-urlencoded fields (names and values percent-encoded),
// asking for JSON back: the shape of every OAuth token endpoint. Secrets stay in the body,
// never in the URL.
HttpRequest form_post(const std::string& url,
                      const std::vector<std::pair<std::string, std::string>>& fields,
                      std::chrono::milliseconds timeout);

} // namespace crmsync::http
