#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace fs = std::filesystem;
using pgrm::Config;
using pgrm::ExitCode;
using pgrm::parse_config;

namespace {

const char* const seed_node2 =
    "cluster=test\n"
    "node=2\n"
    "conninfo='host=node2 user=repmgr dbname=pgbench'\n";

// The message parse_config throws for text, checked to be a BadConfig error.
std::string error_of(const std::string& text, const std::string& path = "repmgr.conf") {
    try {
        parse_config(text, path);
    } catch (const pgrm::Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        return e.what();
    }
    FAIL("no error for: " << text);
    return {};
}

const std::string toml_seed = "cluster = \"test\"\nnode = 2\nconninfo = \"host=node2\"\n";

std::string with_seed(const std::string& extra) { return seed_node2 + extra; }

// A fresh directory under the system's temp dir, removed with everything in it.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() /
               ("pgrm-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name) << text;
        return path / name;
    }
};

struct CwdGuard {
    fs::path saved = fs::current_path();
    ~CwdGuard() { fs::current_path(saved); }
};

bool warned(const pgrm::log::WarningCapture& capture, const std::string& message) {
    const auto w = capture.warnings();
    return std::find(w.begin(), w.end(), message) != w.end();
}

}  // namespace

TEST_CASE("settings table lists every setting in order", "[config]") {
    const auto& table = pgrm::settings_table();
    std::vector<std::string> names;
    for (const auto& s : table) {
        names.push_back(s.name);
        CHECK_FALSE(s.doc.empty());
        CHECK(s.apply != nullptr);
    }
    CHECK(names == std::vector<std::string>{"cluster", "node", "conninfo", "node_name",
                                            "data_directory", "pg_bindir", "priority",
                                            "log_level", "log_file", "ssh_options", "service_start_command",
                                            "service_stop_command", "service_restart_command",
                                            "service_reload_command", "config_directory", "failover",
                                            "monitor_interval_secs", "reconnect_attempts",
                                            "reconnect_interval", "monitoring_history_days", "fence",
                                            "shutdown_check_timeout", "promote_command", "follow_command", "fence_command",
                                            "http_listen", "event_notification_command", "event_notifications",
                                            "dcs", "etcd_endpoints", "etcd_prefix", "etcd_lease_ttl", "etcd_cacert",
                                            "etcd_cert", "etcd_key", "etcd_user", "etcd_password",
                                            "etcd_failover_on_refusal"});
    CHECK(table[0].required);
    CHECK(table[1].required);
    CHECK(table[1].aliases == std::vector<std::string>{"node_id"});
    CHECK(table[2].required);
    CHECK_FALSE(table[3].required);
    CHECK(table[6].default_value == "100");
}

TEST_CASE("the seed's example files load unchanged", "[config]") {
    Config c = parse_config(seed_node2, "/var/lib/pgsql/repmgr/repmgr.conf");
    CHECK(c.path == "/var/lib/pgsql/repmgr/repmgr.conf");
    CHECK(c.cluster == "test");
    CHECK(c.node == 2);
    CHECK(c.conninfo == "host=node2 user=repmgr dbname=pgbench");
    CHECK(c.node_name == "node2");
    CHECK(c.priority == 100);
    CHECK(c.log_level == "notice");
    CHECK(c.data_directory.empty());
    CHECK(c.log_file.empty());

    c = parse_config("cluster=test\nnode=1\nconninfo='host=127.0.0.1 dbname=testdb'\n",
                     "/home/prime/repmgr/repmgr.conf");
    CHECK(c.node == 1);
    CHECK(c.conninfo == "host=127.0.0.1 dbname=testdb");
    CHECK(c.node_name == "node1");
}

TEST_CASE("the example repmgr.conf that packages ship loads, its commented settings too", "[config]") {
    std::string path = std::string(PGRM_SOURCE_DIR) + "/dist/repmgr.conf.example";
    Config c = pgrm::load_config(path);
    CHECK(c.cluster == "main");
    CHECK(c.node == 1);
    CHECK(c.data_directory == "/var/lib/postgresql/15/main");
    CHECK(c.failover == "manual");
    // Each "#key=value" line, uncommented, is a setting that takes its value.
    std::ifstream in(path);
    std::string text, line;
    int commented = 0;
    while (std::getline(in, line)) {
        if (line.size() > 1 && line[0] == '#' && line.find('=') != std::string::npos && line[1] != ' ') {
            line.erase(0, 1);
            ++commented;
        }
        text += line + "\n";
    }
    CHECK(commented == 8);
    Config all = parse_config(text, path);
    CHECK(all.failover == "automatic");
    CHECK(all.log_file == "/var/log/pgrm/repmgrd-15-main.log");
}

TEST_CASE("comments, blank lines, spacing and CRLF are accepted", "[config]") {
    Config c = parse_config("# repmgr configuration\n"
                            "\n"
                            "   \t\n"
                            "  cluster = 'test'   # the cluster\n"
                            "node\t=\t3#no space needed\n"
                            "conninfo = 'host=a application_name=x#y'\r\n"
                            "# trailing comment without newline",
                            "repmgr.conf");
    CHECK(c.cluster == "test");
    CHECK(c.node == 3);
    CHECK(c.conninfo == "host=a application_name=x#y");
}

TEST_CASE("quoted values and their escapes", "[config]") {
    Config c = parse_config(with_seed("node_name='it''s here'\n"
                                      "data_directory='/srv/it\\'s'\n"
                                      "pg_bindir=\"/opt/\\\"pg\\\"\\\\bin\"\n"
                                      "log_file=''\n"),
                            "repmgr.conf");
    CHECK(c.node_name == "it's here");
    CHECK(c.data_directory == "/srv/it's");
    CHECK(c.pg_bindir == "/opt/\"pg\"\\bin");
    CHECK(c.log_file.empty());
}

TEST_CASE("node_id is an alias of node, and the last setting wins", "[config]") {
    Config c = parse_config("cluster=test\nnode_id=7\nconninfo='host=a'\n", "repmgr.conf");
    CHECK(c.node == 7);
    CHECK(c.node_name == "node7");

    c = parse_config(with_seed("node_id=4\nNODE=5\npriority=1\npriority=0\n"), "repmgr.conf");
    CHECK(c.node == 5);
    CHECK(c.priority == 0);
}

TEST_CASE("optional settings are read and log_level is normalized", "[config]") {
    Config c = parse_config(with_seed("node_name=alpha\n"
                                      "data_directory=/var/lib/pgsql/data\n"
                                      "pg_bindir=/usr/lib/postgresql/16/bin\n"
                                      "priority=42\n"
                                      "log_level=DEBUG\n"
                                      "log_file=/var/log/repmgr.log\n"),
                            "repmgr.conf");
    CHECK(c.node_name == "alpha");
    CHECK(c.data_directory == "/var/lib/pgsql/data");
    CHECK(c.pg_bindir == "/usr/lib/postgresql/16/bin");
    CHECK(c.priority == 42);
    CHECK(c.log_level == "debug");
    CHECK(c.log_file == "/var/log/repmgr.log");

    CHECK(parse_config(with_seed("log_level=Warning\n"), "r.conf").log_level == "warning");
}

TEST_CASE("TCP keepalives parameters pass inside conninfo", "[config]") {
    Config c = parse_config("cluster=test\nnode=1\n"
                            "conninfo='host=node1 keepalives=1 keepalives_idle=30 "
                            "keepalives_interval=10 keepalives_count=5'\n",
                            "repmgr.conf");
    CHECK(c.conninfo ==
          "host=node1 keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=5");
}

TEST_CASE("the same settings in TOML", "[config]") {
    const std::string toml = "# repmgr in TOML\n"
                             "cluster = \"test\"\n"
                             "node = 2\n"
                             "conninfo = 'host=node2 user=repmgr dbname=pgbench'\n"
                             "priority = 0\n"
                             "log_level = \"INFO\"\n";
    for (const std::string path : {"repmgr.toml", "repmgr.conf"}) {
        INFO(path);
        Config c = parse_config(toml, path);
        CHECK(c.path == path);
        CHECK(c.cluster == "test");
        CHECK(c.node == 2);
        CHECK(c.conninfo == "host=node2 user=repmgr dbname=pgbench");
        CHECK(c.node_name == "node2");
        CHECK(c.priority == 0);
        CHECK(c.log_level == "info");
    }
}

TEST_CASE("TOML values go through the same checks", "[config]") {
    Config c = parse_config("cluster = \"test\"\nnode = \"3\"\nconninfo = \"host=a\"\n"
                            "node_id = 9\n",
                            "r.toml");
    CHECK(c.node == 9);  // later in the file, as in the key=value format

    CHECK(error_of("cluster = \"test\"\nnode = 0\nconninfo = \"host=a\"\n", "r.toml") ==
          "r.toml:2: node: invalid value \"0\": must be an integer from 1 to 2147483647");
    CHECK(error_of("cluster = \"test\"\nnode = true\nconninfo = \"host=a\"\n", "r.toml") ==
          "r.toml:2: node: invalid value \"true\": must be an integer from 1 to 2147483647");
    CHECK(error_of("cluster = \"test\"\nnode = 2\nconninfo = \"host=a\"\npriority = 1.5\n",
                   "r.toml") ==
          "r.toml:4: priority: must be a string, an integer or a boolean, not a "
          "floating-point number");
    CHECK(error_of("cluster = \"test\"\nnode = [1, 2]\nconninfo = \"host=a\"\n", "r.toml") ==
          "r.toml:2: node: must be a string, an integer or a boolean, not an array");
}

TEST_CASE("TOML errors name file, line and key", "[config]") {
    SECTION("syntax error") {
        std::string msg = error_of("cluster = \"test\"\nnode = \n", "r.toml");
        CHECK_THAT(msg, Catch::StartsWith("r.toml:2: error while parsing key-value pair: "));
    }
    SECTION("a table, detected by its header") {
        CHECK(error_of("# settings\n\n[repmgr]\ncluster = \"test\"\n", "repmgr.conf") ==
              "repmgr.conf:3: repmgr: must be a string, an integer or a boolean, not a table");
    }
    SECTION("an inline table") {
        CHECK(error_of(toml_seed + "log_file = { path = \"x\" }\n", "r.toml") ==
              "r.toml:4: log_file: must be a string, an integer or a boolean, not a table");
    }
    SECTION("missing required setting") {
        CHECK(error_of("cluster = \"test\"\nnode = 1\n", "r.toml") ==
              "r.toml: missing required setting \"conninfo\"");
    }
}

TEST_CASE("an unquoted value runs to the end of the line, as repmgr 1.0 read it", "[config]") {
    Config c = parse_config("cluster=test\nnode=1  # first\nconninfo=host=a user=b   # c\n",
                            "repmgr.conf");
    CHECK(c.node == 1);
    CHECK(c.conninfo == "host=a user=b");
}

TEST_CASE("malformed lines are syntax errors", "[config]") {
    CHECK(error_of(with_seed("priority\n")) ==
          "repmgr.conf:4: syntax error: expected \"=\" after \"priority\"");
    CHECK(error_of("cluster=test\n= 3\n") ==
          "repmgr.conf:2: syntax error: missing setting name before \"=\"");
    CHECK(error_of("cluster=test\nnode 2\n") ==
          "repmgr.conf:2: syntax error: expected \"=\" after \"node\"");
    CHECK(error_of("cluster='test' x\n") ==
          "repmgr.conf:1: syntax error: unexpected \"x\" after the value of \"cluster\"; "
          "quote values that contain spaces");
    CHECK(error_of("cluster=test\nnode=1\nconninfo='host=a\n") ==
          "repmgr.conf:3: syntax error: unterminated quoted value");
    CHECK(error_of("cluster=\"test\\\"\n") ==
          "repmgr.conf:1: syntax error: unterminated quoted value");
}

TEST_CASE("bad values name file, line and key", "[config]") {
    const std::string int_reason = ": must be an integer from 1 to 2147483647";
    CHECK(error_of("cluster=test\nnode=abc\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node: invalid value \"abc\"" + int_reason);
    CHECK(error_of("cluster=test\nnode=0\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node: invalid value \"0\"" + int_reason);
    CHECK(error_of("cluster=test\nnode=-1\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node: invalid value \"-1\"" + int_reason);
    CHECK(error_of("cluster=test\nnode_id=2147483648\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node_id: invalid value \"2147483648\"" + int_reason);
    CHECK(error_of("cluster=test\nnode=2x\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node: invalid value \"2x\"" + int_reason);
    CHECK(error_of("cluster=test\nnode=\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node: invalid value \"\"" + int_reason);
    CHECK(error_of(with_seed("priority=-1\n")) ==
          "repmgr.conf:4: priority: invalid value \"-1\": must be an integer from 0 to "
          "2147483647");

    CHECK(error_of("cluster=a-b\n", "/etc/repmgr.conf") ==
          "/etc/repmgr.conf:1: cluster: invalid value \"a-b\": must contain only letters, "
          "digits and underscores");
    CHECK(error_of("cluster=''\n") == "repmgr.conf:1: cluster: must not be empty");
    CHECK(error_of("cluster=" + std::string(57, 'x') + "\n") ==
          "repmgr.conf:1: cluster: must be at most 56 characters long");
    CHECK(parse_config("cluster=" + std::string(56, 'x') + "\nnode=1\nconninfo=host=a\n", "r")
              .cluster.size() == 56);
    CHECK(parse_config("cluster=Test_2\nnode=1\nconninfo=host=a\n", "r").cluster == "Test_2");

    CHECK(error_of("cluster=test\nnode=1\nconninfo='host'\n") ==
          "repmgr.conf:3: conninfo: missing \"=\" after \"host\" in connection info string");
    CHECK(error_of("cluster=test\nnode=1\nconninfo='host=a nosuch=1'\n") ==
          "repmgr.conf:3: conninfo: invalid connection option \"nosuch\"");
    CHECK(error_of("cluster=test\nnode=1\nconninfo=''\n") ==
          "repmgr.conf:3: conninfo: must not be empty");

    CHECK(error_of(with_seed("log_level=loud\n")) ==
          "repmgr.conf:4: log_level: invalid value \"loud\": must be one of debug, info, "
          "notice, warning, error");
}

TEST_CASE("a missing required setting is reported, the first in table order", "[config]") {
    CHECK(error_of("") == "repmgr.conf: missing required setting \"cluster\"");
    CHECK(error_of("conninfo='host=a'\nnode=1\n") ==
          "repmgr.conf: missing required setting \"cluster\"");
    CHECK(error_of("cluster=test\nconninfo='host=a'\n") ==
          "repmgr.conf: missing required setting \"node\"");
    CHECK(error_of("cluster=test\nnode=1\n", "/x/r.conf") ==
          "/x/r.conf: missing required setting \"conninfo\"");
}

TEST_CASE("an unknown setting is a warning, not an error", "[config]") {
    const auto saved = pgrm::log::level();
    pgrm::log::set_level(pgrm::log::Level::Error);  // keep the test output quiet
    pgrm::log::WarningCapture capture;
    Config c = parse_config(with_seed("failover_mode=automatic\n"), "repmgr.conf");
    pgrm::log::set_level(saved);
    CHECK(c.node == 2);
    CHECK(warned(capture, "repmgr.conf:4: unknown setting \"failover_mode\" ignored"));

    pgrm::log::set_level(pgrm::log::Level::Error);
    c = parse_config(toml_seed + "Reconnect_Tries = 6\n", "r.toml");
    pgrm::log::set_level(saved);
    CHECK(warned(capture, "r.toml:4: unknown setting \"Reconnect_Tries\" ignored"));
}

TEST_CASE("load_config reads a file, or says why it cannot", "[config]") {
    TempDir dir;
    const fs::path conf = dir.write("repmgr.conf", seed_node2);
    Config c = pgrm::load_config(conf.string());
    CHECK(c.path == conf.string());
    CHECK(c.node == 2);

    const fs::path toml = dir.write("repmgr.toml", "cluster = \"test\"\nnode = 3\n"
                                                   "conninfo = \"host=node3\"\n");
    CHECK(pgrm::load_config(toml.string()).node == 3);

    const std::string missing = (dir.path / "nope.conf").string();
    try {
        pgrm::load_config(missing);
        FAIL("no error for a missing file");
    } catch (const pgrm::Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        CHECK(std::string(e.what()) == "could not open configuration file \"" + missing +
                                           "\": No such file or directory");
    }

    try {
        pgrm::load_config(dir.path.string());
        FAIL("no error for a directory");
    } catch (const pgrm::Error& e) {
        CHECK(std::string(e.what()) == "could not open configuration file \"" +
                                           dir.path.string() + "\": Is a directory");
    }

    const fs::path bad = dir.write("bad.conf", "cluster=test\nnode=abc\n");
    try {
        pgrm::load_config(bad.string());
        FAIL("no error for a bad file");
    } catch (const pgrm::Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        CHECK_THAT(std::string(e.what()), Catch::StartsWith(bad.string() + ":2: node: "));
    }
}

TEST_CASE("find_config_file searches -f, ./, the binary's directory, /etc", "[config]") {
    TempDir cwd;
    TempDir bin;
    CwdGuard guard;
    fs::current_path(cwd.path);

    CHECK(pgrm::find_config_file("/no/such/repmgr.conf", bin.path.string()) ==
          "/no/such/repmgr.conf");

    const bool etc_exists = fs::exists("/etc/repmgr.conf");
    const auto none = pgrm::find_config_file("", bin.path.string());
    if (etc_exists)
        CHECK(none == "/etc/repmgr.conf");
    else
        CHECK_FALSE(none.has_value());

    bin.write("repmgr.conf", seed_node2);
    CHECK(pgrm::find_config_file("", bin.path.string()) ==
          (bin.path / "repmgr.conf").string());

    cwd.write("repmgr.conf", seed_node2);
    CHECK(pgrm::find_config_file("", bin.path.string()) == "./repmgr.conf");
    CHECK(pgrm::find_config_file("other.conf", bin.path.string()) == "other.conf");
}

TEST_CASE("repmgrd settings have defaults and are checked", "[config]") {
    Config d = parse_config(seed_node2, "repmgr.conf");
    CHECK(d.failover == "manual");
    CHECK(d.monitor_interval_secs == 2);
    CHECK(d.reconnect_attempts == 6);
    CHECK(d.reconnect_interval == 10);
    CHECK(d.fence == "readonly");
    CHECK(d.shutdown_check_timeout == 60);
    Config a = parse_config(with_seed("failover=automatic\nreconnect_interval=1\nshutdown_check_timeout=5\n"
                                      "promote_command='/usr/local/bin/promote \"node 2\"'\n"),
                            "repmgr.conf");
    CHECK(a.failover == "automatic");
    CHECK(a.reconnect_interval == 1);
    CHECK(a.shutdown_check_timeout == 5);
    CHECK(a.promote_command == "/usr/local/bin/promote \"node 2\"");
    CHECK(error_of(with_seed("failover=sometimes\n")) ==
          "repmgr.conf:4: failover: invalid value \"sometimes\": must be automatic or manual");
    CHECK(error_of(with_seed("monitor_interval_secs=0\n")).find("repmgr.conf:4: monitor_interval_secs:") == 0);
    CHECK(error_of(with_seed("shutdown_check_timeout=0\n")).find("repmgr.conf:4: shutdown_check_timeout:") == 0);
}

TEST_CASE("http_listen is host:port or [IPv6 address]:port, checked when loading", "[config]") {
    CHECK(parse_config(seed_node2, "repmgr.conf").http_listen.empty());  // no endpoint
    CHECK(parse_config(with_seed("http_listen=127.0.0.1:8008\n"), "repmgr.conf").http_listen == "127.0.0.1:8008");
    CHECK(parse_config(with_seed("http_listen=''\n"), "repmgr.conf").http_listen.empty());
    auto at = pgrm::parse_listen_address("[::1]:8008");
    CHECK(at.host == "::1");
    CHECK(at.port == 8008);
    at = pgrm::parse_listen_address("db-1.example.com:65535");
    CHECK(at.host == "db-1.example.com");
    CHECK(at.port == 65535);
    CHECK(pgrm::parse_listen_address("0.0.0.0:1").host == "0.0.0.0");
    CHECK(pgrm::parse_listen_address("[::]:80").host == "::");
    CHECK(pgrm::parse_listen_address("[fe80::1%eth0]:80").host == "fe80::1%eth0");
    CHECK(error_of(with_seed("http_listen=8008\n")) ==
          "repmgr.conf:4: http_listen: invalid value \"8008\": must be host:port");
    CHECK(error_of(with_seed("http_listen=::1:8008\n")) ==
          "repmgr.conf:4: http_listen: invalid value \"::1:8008\": write an IPv6 address in brackets: [address]:port");
    for (auto bad : {":8008", "host:", "host:0", "host:65536", "host:80x", "host:-1", "[::1]8008", "[::1", "[]:80",
                     "[127.0.0.1]:80", "a b:80", "host/x:80"}) {
        INFO(bad);
        CHECK_THROWS_AS(pgrm::parse_listen_address(bad), std::invalid_argument);
        CHECK(error_of(with_seed(std::string("http_listen='") + bad + "'\n")).find("repmgr.conf:4: http_listen: invalid value") == 0);
    }
}

TEST_CASE("a command setting that cannot be split is refused when loading", "[config]") {
    CHECK(error_of(with_seed("fence_command='/bin/fence \"node 2'\n")).find("repmgr.conf:4: fence_command:") == 0);
    CHECK(error_of(with_seed("ssh_options='-i \"/keys/a'\n")).find("repmgr.conf:4: ssh_options:") == 0);
    CHECK(error_of(with_seed("service_start_command='pg_ctlcluster \"15 main start'\n"))
              .find("repmgr.conf:4: service_start_command:") == 0);
}

TEST_CASE("a TOML typo is an error, never an assertion", "[config]") {
    // toml++ asserted here, and the assertion ended the program (repmgrd on SIGHUP too).
    CHECK_THAT(error_of("[=\n", "x.conf"),
               Catch::StartsWith("x.conf:1: error while parsing key: expected bare key"));
    CHECK_THAT(error_of("[=\n", "x.toml"), Catch::StartsWith("x.toml:1: "));
}

TEST_CASE("non-ASCII outside TOML strings and comments is refused before toml++ sees it", "[config]") {
    const std::string refused = ": syntax error: a non-ASCII character outside a quoted string or a comment";
    CHECK(error_of(toml_seed + "failover=\xC3\xA9\n", "r.toml") == "r.toml:4" + refused);
    CHECK(error_of(toml_seed + "failover = automatic\xC2\xA0\n", "r.toml") == "r.toml:4" + refused);
    CHECK(error_of(toml_seed + "\xC3\xA9 = 1\n", "r.toml") == "r.toml:4" + refused);
    CHECK(error_of(toml_seed + "priority = 1 \"\xC3\xA9\"\n", "r.toml") == "r.toml:4" + refused);
    // Inside an array toml++ reads a value's characters ahead of any quote: refused there.
    CHECK(error_of(toml_seed + "x = [\nb=\"\xC3\xA9\"\n]\n", "r.toml") == "r.toml:5" + refused);
    // After a backslash in a multi-line string toml++ asks whether it is a blank.
    CHECK(error_of(toml_seed + "node_name = \"\"\"a\\\n  \xC3\xA9\"\"\"\n", "r.toml") ==
          "r.toml:5" + refused);

    // Where toml++ is sure to be inside a string or a comment, any UTF-8 is fine.
    Config c = parse_config("# n\xC5\x93ud \xC3\xA9\n" + toml_seed +
                                "node_name = \"caf\xC3\xA9\"  # \xE2\x80\x83\n",
                            "r.toml");
    CHECK(c.node_name == "caf\xC3\xA9");
    CHECK(parse_config(toml_seed + "node_name = 'caf\xC3\xA9'\n", "r.toml").node_name == "caf\xC3\xA9");
    CHECK(parse_config(toml_seed + "node_name = '''\nn\xC5\x93ud'''\n", "r.toml").node_name ==
          "n\xC5\x93ud");
    CHECK(parse_config(toml_seed + "node_name = \"\"\"caf\xC3\xA9\"\"\"\n", "r.toml").node_name ==
          "caf\xC3\xA9");
}

TEST_CASE("node_name must be UTF-8: the metadata stores it as text", "[config]") {
    CHECK(error_of(with_seed("node_name=caf\xE9\n")) == "repmgr.conf:4: node_name: must be valid UTF-8");
    CHECK(error_of(with_seed("node_name=\xC0\xAF\n")) == "repmgr.conf:4: node_name: must be valid UTF-8");
    CHECK(error_of(with_seed("node_name=\xED\xA0\x80\n")) == "repmgr.conf:4: node_name: must be valid UTF-8");
    CHECK(parse_config(with_seed("node_name=n\xC5\x93ud-\xF0\x9F\x98\x80\n"), "r.conf").node_name ==
          "n\xC5\x93ud-\xF0\x9F\x98\x80");
}

TEST_CASE("mangled files give a configuration error and nothing else", "[config]") {
    // A fuzzer found aborts and undefined behaviour in toml++ this way; these edits keep
    // hitting its edge cases (run under -fsanitize=address,undefined to see the latter).
    const std::vector<std::string> pieces = {
        "cluster", "node", "failover", "=", " = ", " ", "\t", "\n", "\r\n", "#", "\"", "'", "\"\"\"",
        "'''", "\\", "\\\n", "[", "]", "[[", "{", "}", ",", ".", "1", "true", "inf", "1979-05-27",
        "T07:32:00", "1.5e3", "0x1F", "_", "\xC3\xA9", "\xC2\xA0", "\xE2\x80\x83", "\xE3\x80\x80",
        "\xEF\xBB\xBF", "\xFF", "\xC3", "\xF0\x9F\x98\x80", "\xED\xA0\x80", "\x01", "\xE2\x80\xA8",
        "\\u00e9", std::string(1, '\0')};
    const std::vector<std::string> seeds = {toml_seed, "a = [\n\"x\",\n]\n", "[t]\nb = 1\n",
                                            "s = \"\"\"\nabc\\\n  def\"\"\"\n", seed_node2};
    std::mt19937 rng(9);
    const auto saved = pgrm::log::level();
    pgrm::log::set_level(pgrm::log::Level::Error);
    int errors = 0;
    for (int k = 0; k < 20000; ++k) {
        std::string text = seeds[rng() % seeds.size()];
        for (unsigned e = 0, edits = 1 + rng() % 6; e < edits; ++e) {
            const std::size_t at = rng() % (text.size() + 1);
            if (rng() % 3 == 0 && at < text.size()) text.erase(at, 1 + rng() % 3);
            else text.insert(at, pieces[rng() % pieces.size()]);
        }
        const std::string path = k % 2 ? "f.toml" : "f.conf";
        try {
            parse_config(text, path);
        } catch (const pgrm::Error& e) {
            ++errors;
            CHECK(e.code() == ExitCode::BadConfig);
        } catch (const std::exception& e) {
            FAIL("not a configuration error: " << e.what() << "\n" << text);
        }
    }
    pgrm::log::set_level(saved);
    CHECK(errors > 10000);
}

TEST_CASE("a NUL byte is an error, not the silent end of a value", "[config]") {
    using namespace std::string_literals;
    CHECK(error_of(with_seed("node_name=ab\0cd\n"s)) == "repmgr.conf:4: syntax error: a NUL byte");
    CHECK(error_of("cluster=test\0\nnode=1\n"s) == "repmgr.conf:1: syntax error: a NUL byte");
    CHECK(error_of(toml_seed + "node_name = \"ab\0cd\"\n"s, "r.toml") == "r.toml:4: syntax error: a NUL byte");
}

TEST_CASE("a setting given twice is allowed, with a warning", "[config]") {
    const auto saved = pgrm::log::level();
    pgrm::log::set_level(pgrm::log::Level::Error);
    pgrm::log::WarningCapture capture;
    Config c = parse_config(with_seed("priority=5\nnode_id=7\npriority=6\n"), "repmgr.conf");
    Config t = parse_config(toml_seed + "node_id = 8\n", "r.toml");
    pgrm::log::set_level(saved);
    CHECK(c.node == 7);
    CHECK(c.priority == 6);
    CHECK(t.node == 8);
    CHECK(capture.warnings() ==
          std::vector<std::string>{
              "repmgr.conf:5: \"node_id\" sets \"node\" again (first set on line 2); this value wins",
              "repmgr.conf:6: \"priority\" sets \"priority\" again (first set on line 4); this value wins",
              "r.toml:4: \"node_id\" sets \"node\" again (first set on line 2); this value wins"});
}

TEST_CASE("a conninfo's port is checked when the file is read", "[config]") {
    CHECK(error_of("cluster=test\nnode=1\nconninfo='host=a port=-1'\n") ==
          "repmgr.conf:3: conninfo: invalid port \"-1\": must be a port number from 1 to 65535");
    CHECK(error_of("cluster=test\nnode=1\nconninfo='postgresql://a:70000/db'\n") ==
          "repmgr.conf:3: conninfo: invalid port \"70000\": must be a port number from 1 to 65535");
    CHECK(error_of("cluster=test\nnode=99999999999\nconninfo='host=a'\n") ==
          "repmgr.conf:2: node: invalid value \"99999999999\": must be an integer from 1 to 2147483647");
}

TEST_CASE("daemon timings that could not be timed are refused at load", "[config]") {
    // At most a day: far from overflowing anything derived from them.
    CHECK_NOTHROW(parse_config(with_seed("monitor_interval_secs=1\nreconnect_attempts=1\nreconnect_interval=86399\n"),
                               "repmgr.conf"));
    CHECK(error_of(with_seed("monitor_interval_secs=2\nreconnect_attempts=1\nreconnect_interval=86399\n")) ==
          "repmgr.conf: reconnect_attempts * reconnect_interval + monitor_interval_secs is 86401 s, more than 86400 s "
          "(a day): repmgrd could not time a failover");
    CHECK(error_of(with_seed("reconnect_attempts=2147483647\nreconnect_interval=2147483647\n")) ==
          "repmgr.conf: reconnect_attempts * reconnect_interval + monitor_interval_secs is 4611686014132420611 s, more "
          "than 86400 s (a day): repmgrd could not time a failover");
}

TEST_CASE("dcs is none unless set; etcd's settings are read in both formats", "[config]") {
    Config plain = parse_config(seed_node2, "repmgr.conf");
    CHECK(plain.dcs == "none");
    CHECK(plain.etcd_endpoints.empty());
    CHECK(plain.etcd_prefix == "/pgrm/test/");  // per cluster, even unused
    CHECK(plain.etcd_lease_ttl == 0);
    CHECK_FALSE(plain.etcd_failover_on_refusal);

    const std::string etcd =
        "dcs=etcd\n"
        "etcd_endpoints='http://127.0.0.1:2379, https://etcd2.example:2379,http://[::1]:2381/'\n"
        "etcd_prefix=/db/main/\n"
        "etcd_lease_ttl=30\n"
        "etcd_cacert=/etc/pgrm/ca.pem\n"
        "etcd_cert=/etc/pgrm/client.pem\n"
        "etcd_key=/etc/pgrm/client.key\n"
        "etcd_user=pgrm\n"
        "etcd_password='s3cret pass'\n"
        "etcd_failover_on_refusal=on\n";
    Config c = parse_config(with_seed(etcd), "repmgr.conf");
    CHECK(c.etcd_failover_on_refusal);
    CHECK(c.dcs == "etcd");
    CHECK(c.etcd_endpoints ==
          std::vector<std::string>{"http://127.0.0.1:2379", "https://etcd2.example:2379", "http://[::1]:2381/"});
    CHECK(c.etcd_prefix == "/db/main/");
    CHECK(c.etcd_lease_ttl == 30);
    CHECK(c.etcd_cacert == "/etc/pgrm/ca.pem");
    CHECK(c.etcd_user == "pgrm");
    CHECK(c.etcd_password == "s3cret pass");

    Config t = parse_config(toml_seed +
                                "dcs = \"etcd\"\netcd_endpoints = \"http://127.0.0.1:2379,http://127.0.0.1:2479\"\n"
                                "etcd_lease_ttl = 30\netcd_failover_on_refusal = true\n",
                            "repmgr.toml");
    CHECK(t.dcs == "etcd");
    CHECK(t.etcd_failover_on_refusal);
    for (const char* off : {"off", "false", "no", "0", "OFF"})
        CHECK_FALSE(parse_config(with_seed(std::string("dcs=etcd\netcd_endpoints=http://a:1\netcd_failover_on_refusal=") +
                                           off + "\n"),
                                 "repmgr.conf")
                        .etcd_failover_on_refusal);
    CHECK(t.etcd_endpoints.size() == 2);
    CHECK(t.etcd_lease_ttl == 30);
}

TEST_CASE("etcd endpoints are http(s)://host:port", "[config]") {
    auto e = pgrm::parse_etcd_endpoint("https://[fe80::1%eth0]:2379");
    CHECK(e.tls);
    CHECK(e.host == "fe80::1%eth0");
    CHECK(e.port == 2379);
    e = pgrm::parse_etcd_endpoint("http://etcd-1.local:2379");
    CHECK_FALSE(e.tls);
    CHECK(e.host == "etcd-1.local");
    for (const char* bad : {"", "127.0.0.1:2379", "grpc://h:2379", "http://h", "http://h:0", "http://h:65536",
                            "http://:2379", "http://h:2379/v3", "http://::1:2379", "http://h:23x9"}) {
        INFO(bad);
        CHECK_THROWS_AS(pgrm::parse_etcd_endpoint(bad), std::invalid_argument);
    }
}

TEST_CASE("bad etcd settings are one-line configuration errors", "[config]") {
    CHECK(error_of(with_seed("dcs=zookeeper\n")) ==
          "repmgr.conf:4: dcs: invalid value \"zookeeper\": must be none or etcd");
    CHECK(error_of(with_seed("dcs=etcd\n")) == "repmgr.conf: dcs = etcd needs \"etcd_endpoints\"");
    CHECK(error_of(with_seed("etcd_endpoints=http://a:1,,http://b:2\n")) ==
          "repmgr.conf:4: etcd_endpoints: invalid endpoint \"\": must be http://host:port or https://host:port");
    CHECK(error_of(with_seed("etcd_endpoints=a:2379\n")) ==
          "repmgr.conf:4: etcd_endpoints: invalid endpoint \"a:2379\": must be http://host:port or https://host:port");
    CHECK(error_of(with_seed("etcd_prefix=pgrm\n")) ==
          "repmgr.conf:4: etcd_prefix: invalid value \"pgrm\": must start and end with \"/\"");
    CHECK(error_of(with_seed("etcd_lease_ttl=1\n")).starts_with("repmgr.conf:4: etcd_lease_ttl: invalid value \"1\""));
    CHECK(error_of(with_seed("etcd_cert=/c.pem\n")) == "repmgr.conf: \"etcd_cert\" is set but \"etcd_key\" is not");
    CHECK(error_of(with_seed("etcd_key=/c.key\n")) == "repmgr.conf: \"etcd_key\" is set but \"etcd_cert\" is not");
    CHECK(error_of(with_seed("etcd_password=x\n")) == "repmgr.conf: \"etcd_password\" is set but \"etcd_user\" is not");
    CHECK(error_of(with_seed("etcd_failover_on_refusal=maybe\n")) ==
          "repmgr.conf:4: etcd_failover_on_refusal: invalid value \"maybe\": must be on or off (true or false)");
    // Without etcd there is no lease to end: the setting would promise what it cannot do.
    CHECK(error_of(with_seed("etcd_failover_on_refusal=on\n")) ==
          "repmgr.conf: etcd_failover_on_refusal is on but dcs is not etcd");
    CHECK(error_of(toml_seed + "etcd_failover_on_refusal = \"sometimes\"\n", "repmgr.toml")
              .ends_with("etcd_failover_on_refusal: invalid value \"sometimes\": must be on or off (true or false)"));
    CHECK(error_of(with_seed("dcs=etcd\netcd_endpoints=http://a:1\netcd_cacert=/ca.pem\n")) ==
          "repmgr.conf: etcd_cacert and etcd_cert are for https endpoints, and every one of etcd_endpoints is http");
}

TEST_CASE("the etcd password never appears in an error", "[config]") {
    const std::string secret = "hunter2-secret";
    for (const std::string& tail : {"etcd_password=" + secret + "\n",
                                    "etcd_user=u\netcd_password=" + secret + "\ndcs=etcd\n",
                                    "etcd_user=u\netcd_password=" + secret + "\netcd_prefix=bad\n"}) {
        INFO(tail);
        CHECK(error_of(with_seed(tail)).find(secret) == std::string::npos);
    }
}
