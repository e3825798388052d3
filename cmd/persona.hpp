#pragma once

#include <string>
#include <vector>

#include "core/command.hpp"

namespace pgrm {

// Which tree a command line runs in, and the arguments left for that tree.
struct PersonaChoice {
    Persona persona = PersonaPgrm;
    std::string program;              // "repmgr", "repmgrd" or "pgrm": for usage and errors
    std::vector<std::string> args;    // the arguments after the program (and persona) name
};

// repmgr and repmgrd by basename(argv[0]) (versioned names like repmgr-15 too);
// "pgrm repmgr …" and "pgrm repmgrd …" by first argument; else pgrm's own tree.
// An unknown program name throws pgrm::Error(BadConfig).
PersonaChoice resolve_persona(const std::vector<std::string>& argv);

// The commands each persona's tree holds, by full name ("standby clone"; "daemon" for a
// group that is itself the command), in the order help lists them. repmgrd is exactly
// one command, the daemon: it has no subcommands to choose between.
const std::vector<std::string>& persona_commands(Persona persona);

// The persona's commands from the registry, in the table's order. Throws pgrm::Error
// when the two disagree: a listed command no plugin registers, or one registered for
// the persona that its list leaves out (it would be dropped, or run in place of another).
std::vector<Command*> commands_of(const Registry& registry, Persona persona);

}  // namespace pgrm
