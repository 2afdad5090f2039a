// A disk whose flushes take longer, for db_sync_bench's CRMSYNC_BENCH_PG_SYNC_DELAY_US: preloaded
// into the bench's own PostgreSQL server (LD_PRELOAD), it waits SYNC_DELAY_US microseconds (set
// when the bench compiles it) before each fsync and fdatasync, as a WAL flush waits on a slower
// disk than this machine's. Nothing else changes.
#include <cerrno>
#include <dlfcn.h>
#include <time.h>

#ifndef SYNC_DELAY_US
#define SYNC_DELAY_US 2000
#endif

namespace {

void wait_like_a_slower_disk() {
    timespec delay{SYNC_DELAY_US / 1000000, (SYNC_DELAY_US % 1000000) * 1000L};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
    }
}

template <typename Call> Call real(const char* name) {
    return reinterpret_cast<Call>(dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" int fdatasync(int fd) {
    static const auto call = real<int (*)(int)>("fdatasync");
    wait_like_a_slower_disk();
    return call(fd);
}

extern "C" int fsync(int fd) {
    static const auto call = real<int (*)(int)>("fsync");
    wait_like_a_slower_disk();
    return call(fd);
}
