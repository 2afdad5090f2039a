#include "cmd/cli.hpp"

#include "cmd/accounts.hpp"
#include "cmd/bulk_history.hpp"
#include "cmd/callcenter.hpp"
#include "cmd/config_file.hpp"
#include "cmd/contacts_sync.hpp"
#include "cmd/db_sync.hpp"
#include "cmd/doctor.hpp"
#include "cmd/leads.hpp"
#include "cmd/refresh_tokens.hpp"
#include "cmd/run_jobs.hpp"
#include "cmd/status.hpp"
#include "cmd/token.hpp"
#include "cmd/webhook.hpp"
#include "lib/core/error.hpp"
#include "lib/core/exit_codes.hpp"
#include "lib/core/log.hpp"
#include "lib/util/redact.hpp"

#include "crmsync_git_commit.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>

namespace crmsync::cli {
namespace {

// One row per subcommand: the registration table that --help tests iterate over.
struct Subcommand {
    const char* name;
    const char* description;
    std::function<std::function<int()>(CLI::App&)> setup; // declares flags, returns the runner
};

std::vector<Subcommand> subcommands() {
    return {
        {"db_sync", "Sync one Dialfire campaign into a SQL database, then exit",
         [](CLI::App& app) {
             auto options = std::make_shared<DbSyncOptions>();
             add_db_sync(app, *options);
             return std::function<int()>([options] { return run_db_sync(*options); });
         }},
        {"webhook", "Send each new or changed Dialfire transaction to a web service, then exit",
         [](CLI::App& app) {
             auto options = std::make_shared<WebhookOptions>();
             add_webhook(app, *options);
             return std::function<int()>([options] { return run_webhook(*options); });
         }},
        {"bulk-history", "Keep Bitrix24 deal stage history and stage list in SQL tables, then exit",
         [](CLI::App& app) {
             auto options = std::make_shared<BulkHistoryOptions>();
             add_bulk_history(app, *options);
             return std::function<int()>([options] { return run_bulk_history(*options); });
         }},
        {"callcenter", "Sync a call center's contacts, activities and agents into SQL or a webhook",
         [](CLI::App& app) {
             auto options = std::make_shared<CallcenterOptions>();
             add_callcenter(app, *options);
             return std::function<int()>([options] { return run_callcenter(*options); });
         }},
        {"leads", "Create each new lead of Callback24, Facebook or Gmail in Pipedrive, once",
         [](CLI::App& app) {
             auto options = std::make_shared<LeadsOptions>();
             add_leads(app, *options);
             return std::function<int()>([options] { return run_leads(*options); });
         }},
        {"contacts-sync", "Keep Google contacts and a Zoho Creator report in step, both ways",
         [](CLI::App& app) {
             auto options = std::make_shared<ContactsSyncOptions>();
             add_contacts_sync(app, *options);
             return std::function<int()>([options] { return run_contacts_sync(*options); });
         }},
        {"accounts", "Manage the OAuth accounts (Google, Zoho) kept in the state file",
         [](CLI::App& app) {
             auto options = std::make_shared<AccountsOptions>();
             add_accounts(app, *options);
             return std::function<int()>([options] { return run_accounts(*options); });
         }},
        {"refresh-tokens", "Refresh the access tokens of the OAuth accounts that expire soon",
         [](CLI::App& app) {
             auto options = std::make_shared<RefreshTokensOptions>();
             add_refresh_tokens(app, *options);
             return std::function<int()>([options] { return run_refresh_tokens(*options); });
         }},
        {"token", "Print a valid access token of one OAuth account, refreshing it if needed",
         [](CLI::App& app) {
             auto options = std::make_shared<TokenOptions>();
             add_token(app, *options);
             return std::function<int()>([options] { return run_token(*options); });
         }},
        {"status", "Show each job's checkpoint, progress and rejects in a target database",
         [](CLI::App& app) {
             auto options = std::make_shared<StatusOptions>();
             add_status(app, *options);
             return std::function<int()>([options] { return run_status(*options); });
         }},
        {"doctor",
         "Check what a first run of a command needs: crmsync doctor COMMAND [its options]",
         [](CLI::App& app) { return add_doctor(app); }},
        {"run", "Run many jobs from one TOML file (one cron line), at most --jobs at once",
         [](CLI::App& app) {
             auto options = std::make_shared<RunJobsOptions>();
             add_run_jobs(app, *options);
             return std::function<int()>(
                 [options] { return run_run_jobs(*options, command_catalog()); });
         }},
    };
}

void print_error(const Error& e) {
    std::cerr << "crmsync: error: " << util::redact(e.describe()) << "\n";
    if (!e.hint().empty()) {
        std::cerr << "crmsync: hint: " << util::redact(e.hint()) << "\n";
    }
    std::cerr.flush();
    log::error("{}", e.describe());
}

bool is_subcommand(const std::string& arg) {
    for (const auto& s : subcommands()) {
        if (arg == s.name) {
            return true;
        }
    }
    return false;
}

// "db_sync, webhook, ..." for messages.
std::string command_list() {
    std::string names;
    for (const auto& s : subcommands()) {
        names += (names.empty() ? "" : ", ") + std::string(s.name);
    }
    return names;
}

// The first word that is not an option must name a command. CLI11 alone would say "A
// subcommand is required" for `crmsync leads`, and print the top-level help with exit 0 for
// `crmsync leads --help`, so a script could not tell that the command does not exist.
void check_command_word(const std::vector<std::string>& args) {
    if (args.size() < 2 || args[1].empty() || args[1].front() == '-' || is_subcommand(args[1])) {
        return;
    }
    throw Error(ErrorKind::usage, "unknown command '" + util::redact(args[1]) + "'",
                "the commands are: " + command_list() + " (see 'crmsync --help')");
}

} // namespace

CommandCatalog command_catalog() {
    CommandCatalog catalog;
    catalog.exists = [](const std::string& command) {
        const auto all = subcommands();
        return std::any_of(all.begin(), all.end(),
                           [&](const auto& s) { return command == s.name; });
    };
    catalog.takes_flag = [](const std::string& command, const std::string& flag) {
        for (const auto& s : subcommands()) {
            if (command == s.name) {
                CLI::App app;
                s.setup(app);
                return app.get_option_no_throw("--" + flag) != nullptr;
            }
        }
        return false;
    };
    return catalog;
}

std::string version_text() {
    return std::string("crmsync ") + CRMSYNC_VERSION + " (commit " + CRMSYNC_GIT_COMMIT + ")";
}

std::vector<std::string> translate_dbsync2(const std::vector<std::string>& args,
                                           const char* env_mode) {
    if (args.size() > 1 && is_subcommand(args[1])) {
        return args;
    }
    std::vector<std::string> rest;
    std::string mode;
    bool found = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--a" && i + 1 < args.size()) {
            mode = args[++i];
            found = true;
        } else if (args[i].rfind("--a=", 0) == 0) {
            mode = args[i].substr(4);
            found = true;
        } else {
            rest.push_back(args[i]);
        }
    }
    if (!found && env_mode != nullptr && *env_mode != '\0' &&
        (args.size() < 2 || args[1].rfind("--", 0) == 0)) {
        mode = env_mode;
        found = true;
    }
    if (!found) {
        return args;
    }
    std::vector<std::string> out{args.empty() ? "crmsync" : args[0]};
    if (mode == "db_sync") {
        out.push_back("db_sync");
    } else if (mode == "db_init" || mode == "db_update") {
        out.insert(out.end(), {"db_sync", "--mode", mode == "db_init" ? "init" : "update"});
    } else if (mode == "webhook") {
        out.push_back("webhook");
    } else {
        throw Error(ErrorKind::usage, "invalid mode --a '" + mode + "'",
                    "use --a db_sync, db_init, db_update or webhook");
    }
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
}

int run(int argc, char** argv) {
    try {
        std::vector<std::string> args(argv, argv + argc);
        args = translate_dbsync2(args, std::getenv("DBSYNC_A"));
        check_command_word(args);
        const auto config_file = take_config_option(args);
        const std::string command_word =
            args.size() > 1 && args[1].front() != '-' ? args[1] : "COMMAND";

        CLI::App app{"crmsync: sync contact-center and CRM data into SQL databases and web "
                     "services. Every run picks up where the last one stopped.",
                     "crmsync"};
        app.set_version_flag("--version", version_text());
        app.require_subcommand(1);
        if (config_file) {
            // CLI11 reads config files for the top-level app (subcommand options in a section
            // named after the command), so the option moves there and the reader adds the
            // section.
            if (args.size() < 2 || args[1].front() == '-' || args[1] == "run") {
                throw Error(ErrorKind::usage, "--config goes with a command",
                            "crmsync COMMAND --config FILE ('crmsync run' takes a jobs file)");
            }
            app.set_config("--config");
            std::vector<std::string> command_path{args[1]};
            if (args[1] == "doctor" && args.size() > 2) {
                command_path.push_back(
                    args[2]); // doctor takes the options of the command it checks
            }
            app.config_formatter(command_config_reader(command_path, *config_file));
            app.allow_config_extras(CLI::config_extras_mode::error);
            args.insert(args.begin() + 1, {"--config", *config_file});
        }
        std::function<int()> runner;
        for (const auto& s : subcommands()) {
            auto* sub = app.add_subcommand(s.name, s.description);
            // A flag given twice takes its last value, so wrappers can override defaults.
            sub->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
            auto run_it = s.setup(*sub);
            if (std::string(s.name) != "run") {
                // Taken out of the arguments before parsing (above); declared for --help.
                sub->add_option("--config", "TOML file of this command's flags (key = value, long "
                                            "names without --); the command line wins over it, "
                                            "it wins over the environment");
            }
            sub->callback([&runner, run_it] { runner = run_it; });
        }
        std::vector<char*> raw;
        raw.reserve(args.size());
        for (auto& a : args) {
            raw.push_back(a.data());
        }
        try {
            app.parse(static_cast<int>(raw.size()), raw.data());
        } catch (const CLI::CallForHelp& e) {
            return app.exit(e);
        } catch (const CLI::CallForAllHelp& e) {
            return app.exit(e);
        } catch (const CLI::CallForVersion& e) {
            return app.exit(e);
        } catch (const CLI::ConfigError& e) {
            // CLI11 says "INI was not able to parse db_sync.bogus" for an unknown key.
            std::string what = e.what();
            const std::string unparsed = "was not able to parse " + command_word + ".";
            if (const auto at = what.find(unparsed); at != std::string::npos) {
                what =
                    "'" + what.substr(at + unparsed.size()) + "' is not a flag of " + command_word;
            }
            throw Error(ErrorKind::usage, "config file " + config_file.value_or("") + ": " + what,
                        "keys are the command's long flag names without '--' (see 'crmsync " +
                            command_word + " --help')");
        } catch (const CLI::FileError& e) {
            throw Error(ErrorKind::usage,
                        config_file ? "cannot read config file " + *config_file : e.what(),
                        "check the path given to --config");
        } catch (const CLI::ParseError& e) {
            throw Error(ErrorKind::usage, e.what(),
                        "run 'crmsync --help' or 'crmsync COMMAND --help'");
        }
        const int code = runner ? runner() : k_exit_usage;
        log::shutdown();
        return code;
    } catch (const Error& e) {
        print_error(e);
        log::shutdown();
        return exit_code_for(e.kind());
    } catch (const std::exception& e) {
        print_error(Error(ErrorKind::internal, std::string("unexpected failure: ") + e.what(),
                          "this is a bug in crmsync; please report it with the log file"));
        log::shutdown();
        return k_exit_failed;
    }
}

} // namespace crmsync::cli
