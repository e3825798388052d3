#include <catch2/catch.hpp>

#include "cmd/cli.hpp"
#include "cmd/plugins.hpp"
#include "core/error.hpp"

using namespace pgrm;

namespace {

struct Parsed {
    Invocation inv;
    std::string host, port, dbname, username, data_dir, remote_user, config_file;
};

// Parses a command line as typed in a shell (split on spaces) for a persona.
Invocation parse_line(const std::string& line, Registry& registry, std::unique_ptr<Cli>& keep) {
    std::vector<std::string> argv;
    size_t i = 0;
    while (i < line.size()) {
        size_t j = line.find(' ', i);
        if (j == std::string::npos) j = line.size();
        if (j > i) argv.push_back(line.substr(i, j - i));
        i = j + 1;
    }
    PersonaChoice persona = resolve_persona(argv);
    keep = std::make_unique<Cli>(registry, persona);
    return keep->parse(persona.args);
}

struct Fixture {
    Registry registry;
    std::unique_ptr<Cli> cli;
    Fixture() { register_plugins(registry); }
    Invocation parse(const std::string& line) { return parse_line(line, registry, cli); }
};

}  // namespace

TEST_CASE("the seed README's command lines parse to the intended command", "[cli]") {
    Fixture f;
    SECTION("clone with every option before the command") {
        auto inv = f.parse("repmgr -D /var/lib/pgsql/9.0 -d pgbench -p 5432 -U repmgr -R postgres --verbose standby clone node1");
        CHECK(inv.command_name == "standby clone");
        CHECK(inv.options.data_dir == "/var/lib/pgsql/9.0");
        CHECK(inv.options.dbname == "pgbench");
        CHECK(inv.options.port == "5432");
        CHECK(inv.options.username == "repmgr");
        CHECK(inv.options.remote_user == "postgres");
        CHECK(inv.options.verbose);
    }
    SECTION("clone with options after the command") {
        auto inv = f.parse("repmgr standby clone --force -h node2 -p 5432 -U postgres -R postgres --verbose");
        CHECK(inv.command_name == "standby clone");
        CHECK(inv.options.force);
        CHECK(inv.options.host == "node2");
        CHECK(inv.options.remote_user == "postgres");
    }
    SECTION("the seed's other lines") {
        CHECK(f.parse("repmgr -D /var/lib/pgsql/9.0 standby clone node1").command_name == "standby clone");
        CHECK(f.parse("repmgr -D /var/lib/pgsql/9.0 --force standby clone node1").options.force);
        auto reg = f.parse("repmgr -f /var/lib/pgsql/repmgr/repmgr.conf --verbose master register");
        CHECK(reg.command_name == "master register");
        CHECK(reg.options.config_file == "/var/lib/pgsql/repmgr/repmgr.conf");
        CHECK(f.parse("repmgr -f /var/lib/pgsql/repmgr/repmgr.conf --verbose standby register").command_name == "standby register");
        CHECK(f.parse("repmgr -f /var/lib/pgsql/repmgr/repmgr.conf standby promote").command_name == "standby promote");
        CHECK(f.parse("repmgr -f /var/lib/pgsql/repmgr/repmgr.conf standby follow").command_name == "standby follow");
        CHECK(f.parse("repmgr -D /var/lib/pgsql/9.0 standby clone node2").command_name == "standby clone");
        auto one_host = f.parse("repmgr -D $PGDATA -p 5433 -U prime -R prime --verbose standby clone localhost");
        CHECK(one_host.options.username == "prime");
        auto back = f.parse("repmgr -U standby -R prime -h 127.0.0.1 -p 5433 -d testdb --force --verbose standby clone");
        CHECK(back.options.host == "127.0.0.1");
        CHECK(back.options.dbname == "testdb");
        CHECK(f.parse("repmgr standby clone --force -h 127.0.0.1 -p 5434 -U prime -R standby --verbose").options.port == "5434");
        CHECK(f.parse("./repmgr standby clone node1").command_name == "standby clone");
        CHECK(f.parse("./repmgr -D /path/to/new/data/directory standby clone node1").options.data_dir == "/path/to/new/data/directory");
        CHECK(f.parse("repmgr -f /home/prime/repmgr/repmgr.conf standby promote").options.config_file == "/home/prime/repmgr/repmgr.conf");
    }
    SECTION("repmgrd's lines") {
        auto d = f.parse("repmgrd -f /var/lib/pgsql/repmgr/repmgr.conf --verbose");
        CHECK(d.command_name == "daemon");
        CHECK(d.options.config_file == "/var/lib/pgsql/repmgr/repmgr.conf");
        CHECK(d.options.verbose);
    }
}

TEST_CASE("-h is the host and --help is help", "[cli]") {
    Fixture f;
    auto inv = f.parse("repmgr -h node1 standby clone");
    CHECK(inv.action == Invocation::Action::Run);
    CHECK(inv.options.host == "node1");
    CHECK(f.parse("repmgr --help").action == Invocation::Action::Help);
    CHECK(f.parse("repmgr standby clone --help").action == Invocation::Action::Help);
    CHECK(f.parse("repmgr --version").action == Invocation::Action::Version);
}

TEST_CASE("a repeated option takes the last value", "[cli]") {
    Fixture f;
    auto inv = f.parse("repmgr -h a -p 1 standby clone -h b -p 2");
    CHECK(inv.options.host == "b");
    CHECK(inv.options.port == "2");
}

TEST_CASE("command words ignore case and master has the alias primary", "[cli]") {
    Fixture f;
    CHECK(f.parse("repmgr MASTER register").command_name == "master register");
    CHECK(f.parse("repmgr Standby CLONE x").command_name == "standby clone");
    CHECK(f.parse("repmgr primary register").command_name == "master register");
    CHECK(f.parse("pgrm primary register").command_name == "master register");
}

TEST_CASE("--config-file is accepted beside --config_file", "[cli]") {
    Fixture f;
    CHECK(f.parse("repmgr --config-file /a.conf master register").options.config_file == "/a.conf");
    CHECK(f.parse("repmgr --config_file=/b.conf master register").options.config_file == "/b.conf");
}

TEST_CASE("bad command lines are configuration errors (exit 1)", "[cli]") {
    Fixture f;
    for (const char* line : {"repmgr standby frobnicate", "repmgr nosuch", "repmgr", "repmgr standby",
                             "repmgr -w abc standby clone x", "repmgr -h", "repmgr --bogus master register",
                             "repmgr standby clone a b", "repmgr daemon", "repmgr daemon start", "repmgrd pause",
                             "repmgr service pause extra"}) {
        INFO(line);
        try {
            f.parse(line);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::BadConfig);
        }
    }
}

TEST_CASE("pgrm's native tree has the daemon as a command", "[cli]") {
    Fixture f;
    CHECK(f.parse("pgrm daemon -f x.conf").command_name == "daemon");
    CHECK(f.parse("pgrm standby clone n1").command_name == "standby clone");
    CHECK(f.parse("pgrm repmgr standby clone n1").command_name == "standby clone");
}

TEST_CASE("service pause, unpause and status; daemon is their alias; pgrm daemon alone is the daemon", "[cli]") {
    Fixture f;
    for (const char* verb : {"pause", "unpause", "status"}) {
        std::string name = std::string("service ") + verb;
        for (const char* program : {"repmgr", "pgrm", "pgrm repmgr"}) {
            INFO(program << " " << verb);
            CHECK(f.parse(std::string(program) + " service " + verb).command_name == name);
            CHECK(f.parse(std::string(program) + " daemon " + verb).command_name == name);
            CHECK(f.parse(std::string(program) + " -f x.conf DAEMON " + verb + " --verbose").command_name == name);
        }
    }
    CHECK(f.parse("repmgr daemon unpause --dry-run").command_name == "service unpause");
    CHECK(f.parse("pgrm daemon pause --dry-run").command_name == "service pause");
    CHECK(f.parse("pgrm daemon").command_name == "daemon");
    CHECK(f.parse("pgrm daemon -d --pid-file /run/r.pid").command_name == "daemon");
    CHECK(f.parse("repmgrd -f x.conf").command_name == "daemon");
    CHECK(f.parse("pgrm repmgrd --daemonize").command_name == "daemon");
}

namespace {

// The message of the configuration error the line gives.
std::string error_of(Fixture& f, const std::string& line) {
    try {
        f.parse(line);
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        return e.what();
    }
    FAIL("no error for: " << line);
    return {};
}

}  // namespace

TEST_CASE("an option name is not taken as the value of the option before it", "[cli]") {
    Fixture f;
    CHECK(error_of(f, "repmgr -f --json cluster show") == "missing value for \"-f\": \"--json\" is an option");
    CHECK(error_of(f, "repmgr cluster show --config_file --verbose") ==
          "missing value for \"--config_file\": \"--verbose\" is an option");
    CHECK(error_of(f, "repmgr standby clone -h -p 5432") == "missing value for \"-h\": \"-p\" is an option");
    CHECK(error_of(f, "repmgr standby clone -h node1 -U --force") ==
          "missing value for \"-U\": \"--force\" is an option");
    CHECK(error_of(f, "repmgr cluster event --event --json -f x") ==
          "missing value for \"--event\": \"--json\" is an option");
    // Written with =, it is meant; a value that only looks like an option is a value.
    CHECK(f.parse("repmgr --config_file=--json cluster show").options.config_file == "--json");
    CHECK(f.parse("repmgr -D -data standby clone n").options.data_dir == "-data");
    // pgrm daemon's -d is --daemonize, a flag: the word after it is no value.
    CHECK(f.parse("pgrm daemon -d -f x.conf").options.config_file == "x.conf");
}

TEST_CASE("ports and counts are range-checked with a readable message", "[cli]") {
    Fixture f;
    CHECK(error_of(f, "repmgr -p -1 cluster show") ==
          "--port: invalid value \"-1\": must be a port number from 1 to 65535");
    CHECK(error_of(f, "repmgr -p 65536 standby clone n") ==
          "--port: invalid value \"65536\": must be a port number from 1 to 65535");
    CHECK(error_of(f, "repmgr -p 54x standby clone n") ==
          "--port: invalid value \"54x\": must be a port number from 1 to 65535");
    CHECK(f.parse("repmgr -p 5432,5433 -h a,b standby clone").options.port == "5432,5433");
    // CLI::PositiveNumber printed a range up to DBL_MAX, 300 digits long.
    CHECK(error_of(f, "repmgr -w 0 standby clone n") ==
          "--wal-keep-segments: invalid value \"0\": must be an integer from 1 to 2147483647");
    CHECK(error_of(f, "repmgr -w 99999999999 standby clone n") ==
          "--wal-keep-segments: invalid value \"99999999999\": must be an integer from 1 to 2147483647");
    for (const char* line : {"repmgr cluster event --node 0", "repmgr cluster event --node -1",
                             "repmgr cluster event --node 99999999999", "repmgr standby unregister --node-id 0",
                             "repmgr master unregister --node-id -5", "repmgr standby promote --wait 0"}) {
        INFO(line);
        CHECK_FALSE(error_of(f, line).empty());
    }
}
