#pragma once

// The seed's shared options as one table, read by the parser (cli.cpp, which defines
// the table beside the binders) and by help (help.cpp), so neither includes the other.

#include <vector>

#include "core/command.hpp"

namespace CLI {
class App;
class Option;
}

namespace pgrm {

// One row of the seed's shared options: drives both the parser and the help text.
struct ParsedFlags {
    GlobalOptions options;
    bool help = false;
    bool version = false;
};
struct GlobalOptionSpec {
    const char* section;     // "General", "Connection", "Configuration"
    const char* names;       // CLI11 names: "-h,--host"
    const char* shown;       // as help shows it: "-h, --host=HOSTNAME"
    const char* help;
    unsigned personas;
    CLI::Option* (*bind)(CLI::App& app, const char* names, ParsedFlags& into);
};
const std::vector<GlobalOptionSpec>& global_option_specs();

}  // namespace pgrm
