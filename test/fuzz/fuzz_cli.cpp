// The command line as dispatch() parses it (cmd/dispatch.cpp: persona resolution and CLI11
// parsing), without running the command. One argument per line, the first being argv[0]
// ("repmgr", "repmgrd", "pgrm", or anything).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cmd/dispatch.hpp"
#include "core/error.hpp"

using namespace pgrm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> argv;
    while (!text.empty()) {
        const std::size_t nl = std::min(text.find('\n'), text.size());
        // argv cannot hold a NUL byte.
        std::string arg(text.substr(0, nl));
        argv.push_back(arg.substr(0, arg.find('\0')));
        text.remove_prefix(std::min(nl + 1, text.size()));
    }
    if (argv.empty()) return 0;
    try {
        std::unique_ptr<CommandLine> line = parse_command_line(argv);
        const Invocation& inv = line->invocation;
        if (inv.action == Invocation::Action::Help) line->cli->help(inv);
        if (inv.action == Invocation::Action::Version) line->cli->version();
        // What dispatch() relies on: a command to run unless help or the version was asked.
        if (inv.action == Invocation::Action::Run && !inv.command) __builtin_trap();
    } catch (const Error&) {
    }
    return 0;
}
