#include "cmd/cli.hpp"
#include "lib/http/curl_handles.hpp"

#include <sys/prctl.h>

int main(int argc, char** argv) {
    // No core dump and no ptrace by other users' processes: memory holds tokens and passwords.
    ::prctl(PR_SET_DUMPABLE, 0);
    crmsync::http::ensure_curl_global_init();
    return crmsync::cli::run(argc, argv);
}
