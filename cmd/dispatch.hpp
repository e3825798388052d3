#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cmd/cli.hpp"
#include "cmd/persona.hpp"
#include "core/command.hpp"

namespace pgrm {

// argv parsed as dispatch() parses it, nothing run: the persona, its commands and the
// invocation (whose command points into registry). The fuzz target checks it.
struct CommandLine {
    Registry registry;
    PersonaChoice persona;
    std::unique_ptr<Cli> cli;
    Invocation invocation;
};

// Throws pgrm::Error(BadConfig) on an unknown persona or a bad argument.
std::unique_ptr<CommandLine> parse_command_line(const std::vector<std::string>& argv);

// The whole program below main: resolve the persona, parse, apply the command's
// preconditions, run it, render its result or error. Returns the exit code.
int dispatch(const std::vector<std::string>& argv);

}  // namespace pgrm
