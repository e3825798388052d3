#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cmd/persona.hpp"
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

// What the command line asked for.
struct Invocation {
    enum class Action { Run, Help, Version } action = Action::Run;
    Command* command = nullptr;      // the command to run (or whose help to show)
    std::string command_name;        // "standby clone"
    GlobalOptions options;
};

// The command-line tree of one persona, built from the registry. It owns the CLI11
// app, which holds references into the commands' option members: keep it alive
// until the command has run.
class Cli {
public:
    Cli(const Registry& registry, const PersonaChoice& persona);
    ~Cli();

    // Throws pgrm::Error(BadConfig) on any parse error, naming the bad argument.
    Invocation parse(const std::vector<std::string>& args);

    std::string help(const Invocation& invocation) const;
    std::string version() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pgrm
