#include <catch2/catch.hpp>

#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/recovery.hpp"

using namespace pgrm;

TEST_CASE("conninfo parses with libpq and round-trips", "[conninfo]") {
    Conninfo c = parse_conninfo("host=node2 user=repmgr dbname=pgbench keepalives_idle=30");
    CHECK(c.get("host") == "node2");
    CHECK(c.get("keepalives_idle") == "30");
    CHECK_FALSE(c.get("port"));
    c.set_default("connect_timeout", "10");
    c.set_default("host", "other");
    CHECK(c.get("host") == "node2");
    Conninfo again = parse_conninfo(c.str());
    CHECK(again.get("connect_timeout") == "10");
    CHECK(again.get("dbname") == "pgbench");
}

TEST_CASE("values with spaces and quotes are quoted for libpq", "[conninfo]") {
    Conninfo c;
    c.set("application_name", "it's a node");
    c.set("host", "/var/run/postgresql");
    Conninfo back = parse_conninfo(c.str());
    CHECK(back.get("application_name") == "it's a node");
    CHECK(back.get("host") == "/var/run/postgresql");
}

TEST_CASE("values holding any blank libpq splits on are quoted", "[conninfo]") {
    // libpq ends an unquoted value at every isspace() byte, form feed and carriage return
    // too: written unquoted, "my\fdb" read back as dbname=my and a stray "db" (found by
    // test/fuzz/fuzz_conninfo; its input is corpus/conninfo/uri_form_feed).
    const std::pair<const char*, const char*> blanks[] = {
        {"%0C", "\f"}, {"%0D", "\r"}, {"%0B", "\v"}, {"%09", "\t"}, {"%0A", "\n"}, {"%20", " "}};
    for (const auto& [encoded, blank] : blanks) {
        Conninfo c = parse_conninfo(std::string("postgresql://node1/my") + encoded + "db");
        REQUIRE(c.get("dbname") == std::string("my") + blank + "db");
        Conninfo back;
        REQUIRE_NOTHROW(back = parse_conninfo(c.str()));
        CHECK(back.params == c.params);
    }
}

TEST_CASE("invalid conninfo is a configuration error", "[conninfo]") {
    CHECK_THROWS_AS(parse_conninfo("host"), Error);
    try {
        parse_conninfo("nosuchkey=1");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
    }
}

TEST_CASE("passwords are redacted everywhere", "[conninfo]") {
    Conninfo c = parse_conninfo("host=a password=s3cret user=u");
    CHECK(c.redacted().find("s3cret") == std::string::npos);
    CHECK(c.redacted().find("password=********") != std::string::npos);

    CHECK(redact_secrets("could not connect: host=a password=s3cret port=1") ==
          "could not connect: host=a password=******** port=1");
    CHECK(redact_secrets("password = 'it''s \\' secret' x").find("secret") == std::string::npos);
    CHECK(redact_secrets("postgresql://bob:s3cret@db/x") == "postgresql://bob:********@db/x");
    CHECK(redact_secrets("PGPASSWORD=s3cret pg_basebackup") == "PGPASSWORD=******** pg_basebackup");
    CHECK(redact_secrets("nothing to hide") == "nothing to hide");
}

TEST_CASE("redact_secrets: quoting, escapes, and long input", "[conninfo]") {
    CHECK(redact_secrets("password='a b' x") == "password=******** x");
    CHECK(redact_secrets("password='it''s' x") == "password=******** x");
    CHECK(redact_secrets("password='a\\'b' x") == "password=******** x");
    CHECK(redact_secrets("password=\"a b\" x") == "password=******** x");
    CHECK(redact_secrets("Password = s3cret, then") == "Password = ******** then");
    CHECK(redact_secrets("sslpassword=k3y host=a") == "sslpassword=******** host=a");
    CHECK(redact_secrets("\"host=a password=s3cret\" failed") == "\"host=a password=********\" failed");
    CHECK(redact_secrets("password=a password=b") == "password=******** password=********");
    // An unterminated quote hides the rest, not nothing.
    CHECK(redact_secrets("password='s3cret x y") == "password=********");
    CHECK(redact_secrets("PGPASSWORD=a\"b'c pg_dump") == "PGPASSWORD=******** pg_dump");
    CHECK(redact_secrets("PGPASSWORD='a b' pg_dump") == "PGPASSWORD=******** pg_dump");
    CHECK(redact_secrets("postgres://u:p@h/db and postgresql://v:q@h") ==
          "postgres://u:********@h/db and postgresql://v:********@h");
    CHECK(redact_secrets("postgresql://u@h/db") == "postgresql://u@h/db");
    CHECK(redact_secrets("postgresql://u:p") == "postgresql://u:p");
    CHECK(redact_secrets("password=") == "password=");
    CHECK(redact_secrets("passwor") == "passwor");

    // std::regex recursed per character and overflowed the stack on these.
    const std::string secret(200000, 'a');
    CHECK(redact_secrets("password='" + secret + "'") == "password=********");
    CHECK(redact_secrets("password=" + secret + " x") == "password=******** x");
    CHECK(redact_secrets("password='" + std::string(100000, '\'') + "'") == "password=********");
    const std::string plain(200000, 'p');
    CHECK(redact_secrets(plain) == plain);
}

TEST_CASE("primary_conninfo never carries the password or the database", "[conninfo]") {
    Conninfo source = parse_conninfo("host=node1 port=5433 user=repmgr password=x dbname=pgbench");
    Conninfo pc = parse_conninfo(primary_conninfo_for(source, "node2"));
    CHECK(pc.get("host") == "node1");
    CHECK(pc.get("port") == "5433");
    CHECK(pc.get("user") == "repmgr");
    CHECK(pc.get("application_name") == "node2");
    CHECK_FALSE(pc.get("password"));
    CHECK_FALSE(pc.get("dbname"));
}

TEST_CASE("postgresql.auto.conf lines are replaced, kept, or removed", "[conninfo]") {
    std::string text = "# Do not edit this file manually!\nwork_mem = '4MB'\nprimary_conninfo = 'host=old'\n";
    std::string out = set_conf_line(text, "primary_conninfo", "host=new user='x'");
    CHECK(out == "# Do not edit this file manually!\nwork_mem = '4MB'\n"
                 "primary_conninfo = 'host=new user=''x'''\n");
    CHECK(set_conf_line(out, "primary_conninfo", std::nullopt) ==
          "# Do not edit this file manually!\nwork_mem = '4MB'\n");
}

TEST_CASE("ports are checked when a conninfo is parsed, not when it is used", "[conninfo]") {
    CHECK(port_problem("5432").empty());
    CHECK(port_problem("1").empty());
    CHECK(port_problem("65535").empty());
    CHECK(port_problem("").empty());
    CHECK(port_problem("5432,,5433").empty());
    CHECK(port_problem("5432,").empty());
    for (const char* bad : {"0", "-1", "65536", "99999999999", "54x", " 5432", "+5432", "5432,x"}) {
        INFO(bad);
        CHECK(port_problem(bad) == "must be a port number from 1 to 65535");
    }
    CHECK(parse_conninfo("host=a,b port=5432,5433").get("port") == "5432,5433");
    try {
        parse_conninfo("host=a port=-1");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        CHECK(std::string(e.what()) == "invalid conninfo: invalid port \"-1\": must be a port number from 1 to 65535");
    }
}

TEST_CASE("secrets are taken out of a conninfo to store it", "[conninfo]") {
    Conninfo c = parse_conninfo("host=node1 user=repmgr password='it\\'s' sslpassword=key dbname=x");
    CHECK(c.has_secrets());
    Conninfo bare = c.without_secrets();
    CHECK_FALSE(bare.has_secrets());
    CHECK(bare.params.size() == 3);
    CHECK(bare.get("host") == "node1");
    CHECK(bare.get("dbname") == "x");
    CHECK(bare.str().find("it") == std::string::npos);
    CHECK(c.redacted().find("key") == std::string::npos);
    // A URI's password too; without one, nothing is a secret.
    Conninfo uri = parse_conninfo("postgresql://repmgr:hunter2@node1:5433/pgbench");
    CHECK(uri.has_secrets());
    CHECK(uri.without_secrets().str().find("hunter2") == std::string::npos);
    CHECK(uri.without_secrets().get("port") == "5433");
    CHECK_FALSE(parse_conninfo("host=node1 dbname=password").has_secrets());
}
