#pragma once

#include <string>
#include <vector>

namespace crmsync::cli {

// Parses the command line, runs the subcommand, prints "crmsync: error: ..." (the only place
// that does) and returns the process exit code. Never throws.
int run(int argc, char** argv);

// "crmsync 0.1.0 (commit 0123456789ab)": the release and the git commit it was built from
// ("-modified" when the tree had uncommitted changes, "unknown" without git).
std::string version_text();

struct CommandCatalog;
// The commands of the registration table and their flags (for jobs files and tests).
CommandCatalog command_catalog();

// dbsync2 command lines ("--a db_init --c X ...", or DBSYNC_A) rewritten to subcommand form
// ("db_sync --mode init --c X ..."); other command lines come back unchanged. Throws
// Error(usage) for an unknown --a mode.
std::vector<std::string> translate_dbsync2(const std::vector<std::string>& args,
                                           const char* env_mode);

} // namespace crmsync::cli
