#pragma once

// Process exit codes; cron wrappers and CI act on them (see README "Exit codes").
namespace crmsync {

inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_failed = 1;  // nothing past the last good checkpoint was claimed
inline constexpr int k_exit_usage = 2;   // bad flags, URL or configuration; no I/O was done
inline constexpr int k_exit_partial = 3; // done, but records were rejected or work was left
inline constexpr int k_exit_locked = 4;  // another run of the same job holds the lock
inline constexpr int k_exit_interrupted =
    130; // SIGINT/SIGTERM, after committing the batch in flight

} // namespace crmsync
