#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cmd/options.hpp"
#include "cmd/persona.hpp"
#include "core/command.hpp"

namespace pgrm {

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
