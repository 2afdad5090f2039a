#include "lib/http/form_request.hpp"

#include "lib/util/url.hpp"

namespace crmsync::http {

HttpRequest form_post(const std::string& url,
                      const std::vector<std::pair<std::string, std::string>>& fields,
                      std::chrono::milliseconds timeout) {
    HttpRequest request;
    request.method = "POST";
    request.url = url;
    request.timeout = timeout;
    request.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                       {"Accept", "application/json"}};
    for (const auto& [name, value] : fields) {
        request.body += (request.body.empty() ? "" : "&") + util::percent_encode(name) + "=" +
                        util::percent_encode(value);
    }
    return request;
}

} // namespace crmsync::http
