#include "cmd/persona.hpp"

#include <algorithm>
#include <cctype>

#include "core/error.hpp"

namespace pgrm {

namespace {

// "repmgr", "repmgr-15", "repmgr15", "repmgr.bin" name repmgr; "repmgrd…" does not.
bool names(const std::string& base, const std::string& persona) {
    if (base.compare(0, persona.size(), persona) != 0) return false;
    if (base.size() == persona.size()) return true;
    char next = base[persona.size()];
    return !std::isalpha(static_cast<unsigned char>(next));
}

// The seed's commands, which repmgr and pgrm both hold, then the persona's others.
std::vector<std::string> seed_and(std::initializer_list<const char*> others) {
    std::vector<std::string> names = {"master register", "standby register", "standby clone",
                                      "standby promote", "standby follow"};
    names.insert(names.end(), others.begin(), others.end());
    return names;
}

const char* name_of(Persona persona) {
    return persona == PersonaRepmgr ? "repmgr" : persona == PersonaRepmgrd ? "repmgrd" : "pgrm";
}

}  // namespace

const std::vector<std::string>& persona_commands(Persona persona) {
    static const std::vector<std::string> repmgr =
        seed_and({"master unregister", "standby unregister", "standby switchover", "node rejoin", "node status",
                  "node check", "cluster show", "cluster event", "service status", "service pause",
                  "service unpause"});
    static const std::vector<std::string> repmgrd = {"daemon"};
    static const std::vector<std::string> pgrm =
        seed_and({"master unregister", "standby unregister", "standby switchover", "node rejoin", "node status",
                  "node check", "cluster show", "cluster event", "service status", "service pause", "service unpause",
                  "daemon", "demo", "demo status", "demo stop"});
    switch (persona) {
        case PersonaRepmgr: return repmgr;
        case PersonaRepmgrd: return repmgrd;
        case PersonaPgrm: break;
    }
    return pgrm;
}

std::vector<Command*> commands_of(const Registry& registry, Persona persona) {
    const std::vector<std::string>& names = persona_commands(persona);
    std::vector<Command*> out;
    for (const std::string& name : names) {
        Command* found = nullptr;
        for (const auto& c : registry.commands())
            if (c->full_name() == name && (c->spec().personas & persona)) found = c.get();
        if (!found)
            throw Error(ExitCode::BadConfig, std::string("internal error: ") + name_of(persona) +
                                                 " lists \"" + name + "\", which no plugin registers for it");
        out.push_back(found);
    }
    for (const auto& c : registry.commands())
        if ((c->spec().personas & persona) &&
            std::find(names.begin(), names.end(), c->full_name()) == names.end())
            throw Error(ExitCode::BadConfig, "internal error: \"" + c->full_name() + "\" is registered for " +
                                                 name_of(persona) + ", whose list leaves it out");
    return out;
}

PersonaChoice resolve_persona(const std::vector<std::string>& argv) {
    std::string program = argv.empty() ? "pgrm" : argv[0];
    std::string base = program.substr(program.find_last_of('/') + 1);
    std::vector<std::string> rest(argv.empty() ? argv.end() : argv.begin() + 1, argv.end());

    if (names(base, "repmgrd")) return {PersonaRepmgrd, "repmgrd", rest};
    if (names(base, "repmgr")) return {PersonaRepmgr, "repmgr", rest};
    if (!names(base, "pgrm"))
        throw Error(ExitCode::BadConfig, "unknown program name \"" + base + "\"",
                    "", "run this binary as pgrm, repmgr or repmgrd");

    if (!rest.empty() && (rest[0] == "repmgr" || rest[0] == "repmgrd")) {
        std::string persona = rest[0];
        rest.erase(rest.begin());
        return {persona == "repmgr" ? PersonaRepmgr : PersonaRepmgrd, persona, rest};
    }
    return {PersonaPgrm, "pgrm", rest};
}

}  // namespace pgrm
