#include "cmd/cli.hpp"
#include "lib/http/curl_handles.hpp"

int main(int argc, char** argv) {
    crmsync::http::ensure_curl_global_init();
    return crmsync::cli::run(argc, argv);
}
