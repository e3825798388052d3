#pragma once

#include <string>

#include "cmd/persona.hpp"
#include "core/command.hpp"

namespace CLI {
class App;
}

namespace pgrm {

// The persona's usage in the seed's layout: Usage lines, option sections, COMMANDS.
std::string persona_help(const Registry& registry, const PersonaChoice& persona,
                         const CLI::App& root);

// One command's usage: its line, its summary, its own options, then a pointer to the
// shared options.
std::string command_help(const PersonaChoice& persona, const Command& command,
                         const CLI::App& app);

}  // namespace pgrm
