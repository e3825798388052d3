#include "core/command.hpp"

#include <CLI/CLI.hpp>

namespace pgrm {

Command* Registry::find(const std::string& group, const std::string& name) const {
    for (const auto& c : commands_) {
        auto s = c->spec();
        if (s.group == group && s.name == name) return c.get();
    }
    return nullptr;
}

void NotImplemented::declare(CLI::App& app) {
    if (spec_.args == "[node]") app.add_option("node", positional_, "the node to act on");
}

Result NotImplemented::run(Context& ctx) {
    throw Error(ExitCode::BadConfig, "\"" + ctx.command_name + "\" is not implemented yet");
}

}  // namespace pgrm
