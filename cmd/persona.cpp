#include "cmd/persona.hpp"

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

}  // namespace

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
