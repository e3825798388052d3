#include <catch2/catch.hpp>

#include "cmd/persona.hpp"
#include "core/error.hpp"

using namespace pgrm;

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
