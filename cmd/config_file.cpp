#include "cmd/config_file.hpp"

#include "lib/core/error.hpp"

#include <regex>

namespace crmsync::cli {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// scheme://user:password@host: the password part is not empty.
bool has_url_password(const std::string& value) {
    static const std::regex k_userinfo_password{R"(^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:[^/@]+@)"};
    return std::regex_search(value, k_userinfo_password);
}

class CommandConfig final : public CLI::ConfigTOML {
public:
    CommandConfig(std::string command, std::string file)
        : m_command(std::move(command)), m_file(std::move(file)) {}

    std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
        auto read = CLI::ConfigTOML::from_config(input);
        for (auto& item : read) {
            if (!item.parents.empty()) {
                throw Error(ErrorKind::usage,
                            "config file " + m_file + ": section [" + item.parents.front() +
                                "] is not allowed here",
                            "a --config file holds the flags of one command at its top level "
                            "(key = value); sections are for 'crmsync run' job files");
            }
            refuse_secret_in_file(m_file, item.name, item.inputs);
            item.parents = {m_command};
        }
        return read;
    }

private:
    std::string m_command;
    std::string m_file;
};

} // namespace

bool is_secret_flag(const std::string& name) {
    if (name == "ct") {
        return true;
    }
    if (ends_with(name, "-env") || ends_with(name, "-file") || ends_with(name, "-url")) {
        return false;
    }
    for (const char* word : {"token", "secret", "password", "api-key"}) {
        if (name.find(word) != std::string::npos) {
            return true;
        }
    }
    return false;
}

void refuse_secret_in_file(const std::string& file, const std::string& key,
                           const std::vector<std::string>& values) {
    if (is_secret_flag(key)) {
        throw Error(ErrorKind::usage, "config file " + file + ": '" + key + "' holds a secret",
                    "keep secrets out of config files: name the variable or file that holds it "
                    "(e.g. token-env = \"CRMSYNC_TOKEN\" or token-file = \"/etc/crmsync/token\")");
    }
    for (const auto& value : values) {
        if (has_url_password(value)) {
            throw Error(ErrorKind::usage,
                        "config file " + file + ": the URL of '" + key + "' holds a password",
                        "leave the password out of the URL and set CRMSYNC_DB_PASSWORD in the "
                        "job's environment");
        }
    }
}

std::optional<std::string> take_config_option(std::vector<std::string>& args) {
    std::optional<std::string> file;
    for (std::size_t i = 1; i < args.size();) {
        if (args[i] == "--config") {
            if (i + 1 >= args.size() || args[i + 1].empty()) {
                throw Error(ErrorKind::usage, "--config needs a file",
                            "crmsync COMMAND --config FILE");
            }
            file = args[i + 1];
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                       args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
        } else if (args[i].rfind("--config=", 0) == 0) {
            file = args[i].substr(9);
            if (file->empty()) {
                throw Error(ErrorKind::usage, "--config needs a file",
                            "crmsync COMMAND --config FILE");
            }
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            ++i;
        }
    }
    return file;
}

std::shared_ptr<CLI::Config> command_config_reader(std::string command, std::string file) {
    return std::make_shared<CommandConfig>(std::move(command), std::move(file));
}

std::vector<std::string> items_to_arguments(const std::vector<CLI::ConfigItem>& items) {
    std::vector<std::string> args;
    for (const auto& item : items) {
        for (const auto& value : item.inputs) {
            args.push_back("--" + item.name + "=" + value);
        }
    }
    return args;
}

} // namespace crmsync::cli
