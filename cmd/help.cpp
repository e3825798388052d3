#include "cmd/help.hpp"

#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cmd/options.hpp"

namespace pgrm {

namespace {

constexpr size_t kOptionColumn = 29;  // where descriptions start, as in the seed

std::string pad(const std::string& text, size_t width) {
    return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

bool is_global(const CLI::Option* opt) {
    for (const auto& spec : global_option_specs()) {
        std::string names = spec.names;
        for (const auto& l : opt->get_lnames())
            if (names.find("--" + l) != std::string::npos) return true;
    }
    return false;
}

// "-m, --method=METHOD" for a command's own option, "node" for a positional.
std::string shown_name(const CLI::Option* opt) {
    if (opt->get_lnames().empty() && opt->get_snames().empty()) return "[" + opt->get_name() + "]";
    std::string text;
    for (const auto& s : opt->get_snames()) text += "-" + s + ", ";
    if (!opt->get_lnames().empty()) text += "--" + opt->get_lnames().front();
    else if (text.size() >= 2) text.resize(text.size() - 2);
    if (opt->get_expected_max() != 0 && opt->get_type_size_max() != 0) {
        std::string meta = opt->get_lnames().empty() ? "VALUE" : opt->get_lnames().front();
        for (char& c : meta) c = c == '-' ? '_' : static_cast<char>(std::toupper(c));
        text += "=" + meta;
    }
    return text;
}

// A command's own options; on repmgrd's root the shared ones are listed apart.
void own_options(std::ostringstream& out, const CLI::App& app) {
    bool root = app.get_parent() == nullptr;
    for (const CLI::Option* opt : app.get_options()) {
        if (root && is_global(opt)) continue;
        out << "  " << pad(shown_name(opt), kOptionColumn - 2) << opt->get_description() << '\n';
    }
}

std::string usage_word(const Command::Spec& spec) {
    return spec.name.empty() ? spec.group : spec.group + " " + spec.name;
}

}  // namespace

std::string persona_help(const Registry& registry, const PersonaChoice& persona,
                         const CLI::App& root) {
    std::ostringstream out;
    const std::string& prog = persona.program;
    bool daemon = persona.persona == PersonaRepmgrd;
    out << prog << ": "
        << (daemon ? "Replicator manager daemon"
                   : persona.persona == PersonaPgrm ? "PostgreSQL replication manager"
                                                    : "Replicator manager")
        << "\nUsage:\n";

    // Usage lines: one per group, its commands in registration order.
    std::vector<std::string> order;
    std::map<std::string, std::vector<std::string>> names;
    for (const Command* c : commands_of(registry, persona.persona)) {
        auto s = c->spec();
        if (!names.count(s.group)) order.push_back(s.group);
        if (!s.name.empty()) names[s.group].push_back(s.name);
        else names[s.group];
    }
    if (daemon) {
        out << " " << prog << " [OPTIONS]\n";
    } else {
        size_t width = 0;
        for (const auto& g : order) width = std::max(width, g.size());
        for (const auto& g : order) {
            std::string list;
            for (const auto& n : names[g]) list += (list.empty() ? "" : "|") + n;
            out << " " << prog << " [OPTIONS] " << pad(g, width + 1)
                << (list.empty() ? "" : "{" + list + "}") << '\n';
        }
    }

    // Option sections in the seed's order; repmgrd has one "Options:" list.
    for (const char* section : {"General", "Connection", "Configuration"}) {
        bool any = false;
        for (const auto& spec : global_option_specs()) {
            if (!(spec.personas & persona.persona)) continue;
            if (!daemon && std::string(spec.section) != section) continue;
            if (daemon && std::string(section) != "General") continue;
            if (!any) out << '\n' << (daemon ? "Options" : std::string(section) + " options") << ":\n";
            any = true;
            out << "  " << pad(spec.shown, kOptionColumn - 2) << spec.help << '\n';
        }
        if (daemon && std::string(section) == "General") own_options(out, root);
    }

    if (daemon) {
        out << "\n" << prog << " monitors a cluster of servers.\n";
    } else {
        out << "\n" << prog
            << " performs some tasks like clone a node, promote it or making follow another "
               "node and then exits.\nCOMMANDS:\n";
        std::vector<std::pair<std::string, std::string>> rows;
        size_t width = 0;
        for (const Command* c : commands_of(registry, persona.persona)) {
            auto s = c->spec();
            std::string left = usage_word(s) + (s.args.empty() ? "" : " " + s.args);
            width = std::max(width, left.size());
            rows.emplace_back(left, s.summary);
        }
        for (const auto& [left, summary] : rows)
            out << " " << pad(left, width + 2) << "- " << summary << '\n';
    }
    out << "\nThe --verbose option can be useful in troubleshooting issues with the program.\n";
    return out.str();
}

std::string command_help(const PersonaChoice& persona, const Command& command,
                         const CLI::App& app) {
    auto spec = command.spec();
    std::ostringstream out;
    out << "Usage:\n " << persona.program << " [OPTIONS] " << usage_word(spec)
        << (spec.args.empty() ? "" : " " + spec.args) << "\n\n"
        << spec.summary << '\n';
    std::ostringstream own;
    own_options(own, app);
    if (!own.str().empty()) out << "\nCommand options:\n" << own.str();
    out << "\nShared options are listed by \"" << persona.program << " --help\".\n";
    return out.str();
}

}  // namespace pgrm
