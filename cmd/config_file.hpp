#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crmsync::cli {

// Whether a flag of this name carries a secret itself (`ct`, `token`, `*-secret`, ...), as
// opposed to the name of the variable or file that holds one (`token-env`, `secret-file`).
bool is_secret_flag(const std::string& name);

// Throws Error(usage) naming `file` and the key when a value read from a file is a secret: a
// secret flag, or a URL with a password in it. Files are often shared, copied and committed;
// secrets belong in the environment or in files of their own.
void refuse_secret_in_file(const std::string& file, const std::string& key,
                           const std::vector<std::string>& values);

// Removes "--config FILE" (or "--config=FILE") from `args` and returns FILE, if present.
// Throws Error(usage) when the option has no value.
std::optional<std::string> take_config_option(std::vector<std::string>& args);

// CLI11 reader for `crmsync COMMAND --config FILE`: a TOML file whose top-level keys are
// COMMAND's long flag names without "--" (`campaign = "ABC"`, `fp = ["fc_", "qc_"]`,
// `verbose = true`). Values given on the command line win over the file, the file wins over
// the environment. Sections, secrets and unknown keys are errors (Error(usage)).
std::shared_ptr<CLI::Config> command_config_reader(std::string command, std::string file);

// "--key=value" arguments for the items of one TOML section (arrays repeat the flag), for
// `crmsync run` which starts each job as a command line.
std::vector<std::string> items_to_arguments(const std::vector<CLI::ConfigItem>& items);

} // namespace crmsync::cli
