#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/rejoin.hpp"

using namespace pgrm;

namespace {

// pg_controldata -D (LC_ALL=C) of a PostgreSQL 15 data directory, the lines that matter.
const char* const kControlData =
    "pg_control version number:            1300\n"
    "Database system identifier:           7300000000000000001\n"
    "Database cluster state:               shut down\n"
    "wal_log_hints setting:                off\n"
    "Data page checksum version:           0\n";

ControlData control(const std::string& id, bool hints, bool checksums) {
    ControlData c;
    c.system_identifier = id;
    c.wal_log_hints = hints;
    c.data_checksums = checksums;
    return c;
}

bool has_step(const RejoinPlan& p, const std::string& text) {
    for (const auto& step : p.steps)
        if (step.find(text) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("pg_controldata's lines give the system identifier, hints and checksums", "[rejoin]") {
    ControlData c = parse_control_data(kControlData);
    REQUIRE(c.system_identifier);
    CHECK(*c.system_identifier == "7300000000000000001");
    CHECK_FALSE(c.wal_log_hints);
    CHECK_FALSE(c.data_checksums);

    std::string on = kControlData;
    on.replace(on.find("off"), 3, "on");
    on.replace(on.find("version:           0"), 20, "version:           1");
    c = parse_control_data(on);
    CHECK(c.wal_log_hints);
    CHECK(c.data_checksums);

    CHECK_FALSE(parse_control_data("").system_identifier);
    CHECK_FALSE(parse_control_data("pg_controldata: error: could not open file\n").system_identifier);
}

TEST_CASE("pg_rewind needs the same database system and hints or checksums", "[rejoin]") {
    const std::string source = "7300000000000000001";
    CHECK(judge_rewind(control(source, true, false), source).possible);
    CHECK(judge_rewind(control(source, false, true), source).possible);

    RewindCheck r = judge_rewind(control(source, false, false), source);
    CHECK_FALSE(r.possible);
    CHECK(r.why_not == "the target has neither wal_log_hints nor data checksums");

    r = judge_rewind(control("7300000000000000002", true, true), source);
    CHECK_FALSE(r.possible);
    CHECK(r.why_not == "the target is another database system (7300000000000000002)");

    r = judge_rewind(ControlData{}, source);
    CHECK_FALSE(r.possible);
    CHECK(r.why_not == "the target holds no readable PostgreSQL data directory");
}

TEST_CASE("a rewindable target is rewound after a checkpoint on the source", "[rejoin]") {
    RejoinPlan p = plan_rejoin({true, ""}, {false, "node1", "postgres"});
    CHECK(p.method == "pg_rewind");
    REQUIRE(p.steps.size() == 2);
    CHECK(p.steps[0].find("checkpoint the source") == 0);
    CHECK(p.steps[1].find("if that fails, copy changed files with rsync") != std::string::npos);
}

TEST_CASE("otherwise rsync copies the changed files under a backup, saying why", "[rejoin]") {
    RejoinPlan p = plan_rejoin({false, "the target is another database system (7)"},
                               {false, "node1", "postgres"});
    CHECK(p.method == "rsync");
    CHECK(p.steps.front() == "no pg_rewind: the target is another database system (7)");
    CHECK(has_step(p, "pg_backup_start"));
    CHECK(has_step(p, "copy only changed files with rsync from postgres@node1 over ssh"));
    CHECK(has_step(p, "copy the WAL written during the backup"));

    p = plan_rejoin({false, ""}, {true, "", ""});
    CHECK(p.steps.front() == "start a non-exclusive backup on the source (pg_backup_start)");
    CHECK(has_step(p, "from the local source directory"));
}

TEST_CASE("an rsync copy from another host needs its name", "[rejoin]") {
    CHECK_THROWS_AS(plan_rejoin({false, ""}, {false, "", ""}), Error);
    CHECK_NOTHROW(plan_rejoin({true, ""}, {false, "", ""}));  // pg_rewind connects by conninfo
    CHECK(rsync_steps({false, "node1", ""}, false)[1] == "copy the data directory with rsync from node1 over ssh");
}

TEST_CASE("rsync's ssh command carries ssh_options, quoted as rsync reads them", "[rejoin]") {
    CHECK(rsync_rsh("") == "ssh -o BatchMode=yes");
    CHECK(rsync_rsh("-p 2222 -i /home/pg/.ssh/repl") == "ssh -o BatchMode=yes -p 2222 -i /home/pg/.ssh/repl");
    CHECK(rsync_rsh("-i '/keys/my key'") == "ssh -o BatchMode=yes -i \"/keys/my key\"");
    CHECK(rsync_rsh("-o 'ProxyCommand=nc \"gw\" 22'") == "ssh -o BatchMode=yes -o 'ProxyCommand=nc \"gw\" 22'");
    CHECK_THROWS_AS(rsync_rsh("-o \"a 'b\\\" c\""), Error);
}
