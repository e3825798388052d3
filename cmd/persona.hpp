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

}  // namespace pgrm
