#include "cmd/dispatch.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cmd/plugins.hpp"
#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace pgrm {

namespace {

std::string self_exe() {
    std::error_code ec;
    auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : path.string();
}

// Finds and loads repmgr.conf: required with NeedsConfig, else used when present.
std::optional<Config> load_config_for(const Command& command, const GlobalOptions& options,
                                      const std::string& exe) {
    std::string binary_dir = std::filesystem::path(exe).parent_path().string();
    auto path = find_config_file(options.config_file, binary_dir);
    if (!path) {
        if (command.spec().preconditions & NeedsConfig)
            throw Error(ExitCode::BadConfig, "no configuration file found",
                        "looked for ./repmgr.conf, " + binary_dir + "/repmgr.conf and /etc/repmgr.conf",
                        "give one with -f /path/to/repmgr.conf");
        return std::nullopt;
    }
    log::debug("configuration file: " + *path);
    // Absolute, so the daemon can reload it and run commands with it from anywhere.
    return load_config(std::filesystem::absolute(*path).string());
}

void print_error(const Error& e, bool json, const std::string& command,
                 const std::optional<log::WarningCapture>& capture) {
    if (json) {
        render_error_json(command, e, capture ? capture->warnings() : std::vector<std::string>{},
                          std::cout);
        return;
    }
    std::cerr << "ERROR: " << redact_secrets(e.what()) << '\n';
    if (!e.detail().empty()) std::cerr << "DETAIL: " << redact_secrets(e.detail()) << '\n';
    if (!e.hint().empty()) std::cerr << "HINT: " << e.hint() << '\n';
}

}  // namespace

std::unique_ptr<CommandLine> parse_command_line(const std::vector<std::string>& argv) {
    auto line = std::make_unique<CommandLine>();
    line->persona = resolve_persona(argv);
    register_plugins(line->registry);
    line->cli = std::make_unique<Cli>(line->registry, line->persona);
    line->invocation = line->cli->parse(line->persona.args);
    return line;
}

int dispatch(const std::vector<std::string>& argv) {
    // Known before parsing, so even a parse error comes out as JSON.
    bool json = std::find(argv.begin(), argv.end(), "--json") != argv.end();
    std::string command_name;
    // This run's warnings, for its result; none for a command that runs until stopped.
    std::optional<log::WarningCapture> capture;
    capture.emplace();
    try {
        std::unique_ptr<CommandLine> line = parse_command_line(argv);
        const Invocation& inv = line->invocation;
        json = inv.options.json;
        command_name = inv.command_name;

        if (inv.action == Invocation::Action::Version) {
            std::cout << line->cli->version() << '\n';
            return 0;
        }
        if (inv.action == Invocation::Action::Help) {
            std::cout << line->cli->help(inv);
            return 0;
        }

        if (inv.command->spec().preconditions & LongRunning) capture.reset();
        if (inv.options.verbose) log::set_level(log::Level::Info);
        Context ctx;
        ctx.options = inv.options;
        ctx.self_exe = self_exe();
        ctx.command_name = command_name;
        ctx.config = load_config_for(*inv.command, inv.options, ctx.self_exe);
        if (ctx.config && !inv.options.verbose)
            log::set_level(*log::parse_level(ctx.config->log_level));
        if (ctx.config && inv.options.verbose)
            log::set_level(std::min(log::Level::Info, *log::parse_level(ctx.config->log_level)));

        Result result = inv.command->run(ctx);
        if (json)
            render_json(command_name, result,
                        capture ? capture->warnings() : std::vector<std::string>{}, std::cout);
        else
            render_text(result, std::cout);
        return static_cast<int>(result.exit_code);
    } catch (const Error& e) {
        print_error(e, json, command_name, capture);
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        // A bug or resource failure: still one clear line and a non-zero exit.
        print_error(Error(ExitCode::BadConfig, std::string("internal error: ") + e.what()), json,
                    command_name, capture);
        return static_cast<int>(ExitCode::BadConfig);
    }
}

}  // namespace pgrm
