#include <catch2/catch.hpp>

#include <algorithm>

#include "cmd/cli.hpp"
#include "cmd/persona.hpp"
#include "cmd/plugins.hpp"
#include "core/error.hpp"

using namespace pgrm;

namespace {

// A command that claims the repmgrd persona besides the daemon.
class SecondDaemonCommand : public Command {
public:
    Spec spec() const override {
        Spec s;
        s.group = "watch";
        s.summary = "a second daemon-side command";
        s.personas = PersonaRepmgrd;
        return s;
    }
    Result run(Context&) override { return {}; }
};

std::vector<std::string> full_names(const std::vector<Command*>& commands) {
    std::vector<std::string> out;
    for (const Command* c : commands) out.push_back(c->full_name());
    return out;
}

}  // namespace

TEST_CASE("persona comes from the program name", "[persona]") {
    auto c = resolve_persona({"/usr/bin/repmgr", "standby", "clone"});
    CHECK(c.persona == PersonaRepmgr);
    CHECK(c.program == "repmgr");
    CHECK(c.args == std::vector<std::string>{"standby", "clone"});

    CHECK(resolve_persona({"repmgrd", "-f", "x"}).persona == PersonaRepmgrd);
    CHECK(resolve_persona({"./build/cmd/pgrm"}).persona == PersonaPgrm);
}

TEST_CASE("versioned names select the same persona", "[persona]") {
    CHECK(resolve_persona({"/usr/lib/postgresql/15/bin/repmgr-15"}).persona == PersonaRepmgr);
    CHECK(resolve_persona({"repmgrd15"}).persona == PersonaRepmgrd);
    CHECK(resolve_persona({"pgrm-0.1"}).persona == PersonaPgrm);
}

TEST_CASE("pgrm repmgr and pgrm repmgrd select by first argument", "[persona]") {
    auto c = resolve_persona({"pgrm", "repmgr", "--help"});
    CHECK(c.persona == PersonaRepmgr);
    CHECK(c.program == "repmgr");
    CHECK(c.args == std::vector<std::string>{"--help"});

    auto d = resolve_persona({"pgrm", "repmgrd", "-f", "a.conf"});
    CHECK(d.persona == PersonaRepmgrd);
    CHECK(d.args == std::vector<std::string>{"-f", "a.conf"});

    auto n = resolve_persona({"pgrm", "standby", "clone"});
    CHECK(n.persona == PersonaPgrm);
    CHECK(n.args.size() == 2);
}

TEST_CASE("only the first argument selects a persona", "[persona]") {
    auto c = resolve_persona({"repmgr", "repmgrd"});
    CHECK(c.persona == PersonaRepmgr);
    CHECK(c.args == std::vector<std::string>{"repmgrd"});
}

TEST_CASE("an unknown program name is an error naming it", "[persona]") {
    try {
        resolve_persona({"/tmp/foo", "standby"});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        CHECK(std::string(e.what()).find("\"foo\"") != std::string::npos);
    }
    CHECK_THROWS_AS(resolve_persona({"repmgrx"}), Error);
}

TEST_CASE("each persona's command list and the registry agree", "[persona]") {
    Registry registry;
    register_plugins(registry);
    const std::vector<std::string> seed = {"master register", "standby register", "standby clone",
                                           "standby promote", "standby follow"};
    for (Persona p : {PersonaRepmgr, PersonaRepmgrd, PersonaPgrm}) {
        std::vector<std::string> listed = persona_commands(p);
        CHECK(full_names(commands_of(registry, p)) == listed);
        if (p == PersonaRepmgrd) continue;
        for (const auto& name : seed)
            CHECK(std::find(listed.begin(), listed.end(), name) != listed.end());
    }
    CHECK(persona_commands(PersonaRepmgrd) == std::vector<std::string>{"daemon"});
}

TEST_CASE("a second daemon-side command is refused, not silently ignored", "[persona]") {
    Registry registry;
    register_plugins(registry);
    registry.add(std::make_unique<SecondDaemonCommand>());
    try {
        Cli cli(registry, resolve_persona({"repmgrd"}));
        FAIL("repmgrd's tree was built with a command its list leaves out");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("\"watch\"") != std::string::npos);
    }
    // The other personas do not hold it and are unaffected.
    CHECK_NOTHROW(Cli(registry, resolve_persona({"repmgr"})));
}

TEST_CASE("a listed command that no plugin registers is an error naming it", "[persona]") {
    Registry registry;  // no plugins
    try {
        Cli cli(registry, resolve_persona({"repmgrd"}));
        FAIL("repmgrd's tree was built without its daemon");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("\"daemon\"") != std::string::npos);
    }
}
