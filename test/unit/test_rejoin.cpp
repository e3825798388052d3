#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/recovery.hpp"
#include "core/rejoin.hpp"

using namespace pgrm;

namespace {

// pg_controldata -D (LC_ALL=C) of a PostgreSQL 15 data directory, the lines that matter.
const char* const kControlData =
    "pg_control version number:            1300\n"
    "Database system identifier:           7300000000000000001\n"
    "Database cluster state:               shut down\n"
    "Latest checkpoint location:           0/3000028\n"
    "wal_log_hints setting:                off\n"
    "Data page checksum version:           0\n";

ControlData control(const std::string& id, bool hints, bool checksums) {
    ControlData c;
    c.system_identifier = id;
    c.wal_log_hints = hints;
    c.data_checksums = checksums;
    return c;
}

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spill(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::trunc) << text; }

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
    REQUIRE(p.steps.size() == 3);
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

TEST_CASE("either way the plan keeps the target's own configuration files", "[rejoin]") {
    for (bool rewind : {true, false}) {
        RejoinPlan p = plan_rejoin({rewind, ""}, {true, "", ""});
        CHECK(p.steps.back() ==
              "keep the target's own configuration files (postgresql.conf, postgresql.auto.conf, "
              "pg_hba.conf, pg_ident.conf, postmaster.opts)");
    }
}

TEST_CASE("an rsync delta leaves the target's configuration files alone; a fresh copy brings them", "[rejoin]") {
    auto has = [](const std::vector<std::string>& v, const std::string& s) {
        return std::find(v.begin(), v.end(), s) != v.end();
    };
    std::vector<std::string> delta = rsync_excludes(true), fresh = rsync_excludes(false);
    for (const std::string& name : node_config_files()) {
        CHECK(has(delta, "/" + name));  // anchored: a file of that name deeper down is copied
        CHECK_FALSE(has(fresh, "/" + name));
    }
    for (const char* always : {"postmaster.pid", "pg_wal/*", "standby.signal", "backup_label"}) {
        CHECK(has(delta, always));
        CHECK(has(fresh, always));
    }
}

TEST_CASE("kept configuration files come back as they were; ones the target lacked go", "[rejoin]") {
    char tmpl[] = "/tmp/pgrm-unit-rejoin-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    fs::path dir = tmpl;
    spill(dir / "postgresql.conf", "port = 5433\n");
    spill(dir / "pg_hba.conf", "host all all 192.0.2.1/32 trust\n");
    spill(dir / "postgresql.auto.conf", "cluster_name = 'node1'\n");
    ::chmod((dir / "pg_hba.conf").c_str(), 0640);
    spill(dir / "postmaster.opts", "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/d\" \"-p\" \"5433\"\n");
    // no pg_ident.conf: this target keeps it elsewhere

    std::vector<KeptFile> kept = keep_config_files(dir.string());
    REQUIRE(kept.size() == node_config_files().size());

    // What a rewind from the source leaves behind.
    spill(dir / "postgresql.conf", "port = 5432\n");
    spill(dir / "pg_hba.conf", "host all all 0.0.0.0/0 trust\n");
    spill(dir / "postgresql.auto.conf", "primary_conninfo = 'host=node0'\n");
    spill(dir / "pg_ident.conf", "source's map\n");
    ::chmod((dir / "pg_hba.conf").c_str(), 0600);
    fs::remove(dir / "postmaster.opts");  // pg_rewind of PostgreSQL 14 and later deletes it

    restore_config_files(dir.string(), kept);
    CHECK(slurp(dir / "postgresql.conf") == "port = 5433\n");
    CHECK(slurp(dir / "pg_hba.conf") == "host all all 192.0.2.1/32 trust\n");
    CHECK(slurp(dir / "postgresql.auto.conf") == "cluster_name = 'node1'\n");
    CHECK_FALSE(fs::exists(dir / "pg_ident.conf"));
    CHECK(slurp(dir / "postmaster.opts") == "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/d\" \"-p\" \"5433\"\n");
    CHECK((fs::status(dir / "pg_hba.conf").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    CHECK_FALSE(fs::exists(dir / "postgresql.conf.pgrm-tmp"));

    // A configuration "file" that is a directory cannot be kept: refused before anything changes.
    fs::create_directory(dir / "pg_ident.conf");
    CHECK_THROWS_AS(keep_config_files(dir.string()), Error);
    fs::remove_all(dir);
}

TEST_CASE("the cluster state tells a clean shutdown from a crash", "[rejoin]") {
    std::string text = kControlData;
    CHECK(parse_control_data(text).state == "shut down");
    CHECK(parse_control_data(text).checkpoint_lsn == "0/3000028");  // where a switchover's shutdown ended
    CHECK(parse_control_data(text).shut_down_cleanly());
    for (const char* state : {"shut down in recovery"})
        CHECK(parse_control_data(std::string(text).replace(text.find("shut down"), 9, state)).shut_down_cleanly());
    for (const char* state : {"in production", "in archive recovery", "in crash recovery", "shutting down"})
        CHECK_FALSE(parse_control_data(std::string(text).replace(text.find("shut down"), 9, state)).shut_down_cleanly());
}

TEST_CASE("a crash is finished before pg_rewind: by pg_rewind itself, or for a standby by a start and stop",
          "[rejoin]") {
    const std::string source = "7300000000000000001";
    ControlData c = control(source, true, false);
    c.state = "shut down";
    CHECK(judge_rewind(c, source).before == RewindCheck::Before::Nothing);
    CHECK(judge_rewind(c, source, true).before == RewindCheck::Before::Nothing);
    c.state = "in production";
    CHECK(judge_rewind(c, source).before == RewindCheck::Before::SingleUserRecovery);
    c.state = "in archive recovery";
    CHECK(judge_rewind(c, source, true).before == RewindCheck::Before::StartAndStopAsStandby);
    // No pg_rewind, nothing to prepare: rsync's backup_label starts recovery afresh.
    c.wal_log_hints = false;
    CHECK(judge_rewind(c, source, true).before == RewindCheck::Before::Nothing);

    RejoinPlan p = plan_rejoin(judge_rewind(control(source, true, false), source), {true, "", ""});
    CHECK(p.steps[1].find("in single-user mode") != std::string::npos);  // control() has no state: a crash
}

TEST_CASE("the standby settings change primary_conninfo and the signal files, and lift the fence", "[rejoin]") {
    char tmpl[] = "/tmp/pgrm-unit-standby-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    fs::path dir = tmpl;
    spill(dir / "postgresql.auto.conf",
          "# Do not edit this file manually!\n"
          "cluster_name = 'node1'\n"
          "default_transaction_read_only = 'on'\n"  // repmgrd's fence (ALTER SYSTEM quotes it)
          "primary_conninfo = 'host=old'\n");
    spill(dir / "recovery.signal", "");

    configure_standby(dir.string(), "host=node2 port=5432 user=repmgr application_name=node1");
    CHECK(slurp(dir / "postgresql.auto.conf") ==
          "# Do not edit this file manually!\n"
          "cluster_name = 'node1'\n"
          "primary_conninfo = 'host=node2 port=5432 user=repmgr application_name=node1'\n");
    CHECK(fs::exists(dir / "standby.signal"));
    CHECK_FALSE(fs::exists(dir / "recovery.signal"));
    fs::remove_all(dir);
}

TEST_CASE("the WAL a copy between pg_backup_start and pg_backup_stop needs: its segments only", "[rejoin]") {
    const std::string label =
        "START WAL LOCATION: 0/5000028 (file 000000020000000000000005)\n"
        "CHECKPOINT LOCATION: 0/5000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n";
    const std::uint64_t mb16 = 16 * 1024 * 1024;
    using V = std::vector<std::string>;
    CHECK(backup_wal_segments(label, "0/5000138", mb16) == V{"000000020000000000000005"});
    CHECK(backup_wal_segments(label, "0/7000100", mb16) ==
          V{"000000020000000000000005", "000000020000000000000006", "000000020000000000000007"});
    // Across a log id: 0/FF000000 is segment FF of log 0; the next is 00 of log 1.
    const std::string late = "START WAL LOCATION: 0/FF000028 (file 0000000100000000000000FF)\n";
    CHECK(backup_wal_segments(late, "1/00000100", mb16) == V{"0000000100000000000000FF", "000000010000000100000000"});
    // 1 GB segments: four per log id.
    const std::string big = "START WAL LOCATION: 0/C0000028 (file 000000010000000000000003)\n";
    CHECK(backup_wal_segments(big, "1/40000000", 1024ULL * 1024 * 1024) ==
          V{"000000010000000000000003", "000000010000000100000000", "000000010000000100000001"});
    // Anything unreadable or implausible: empty, and the whole pg_wal is copied.
    CHECK(backup_wal_segments("", "0/5000138", mb16).empty());
    CHECK(backup_wal_segments(label, "not an lsn", mb16).empty());
    CHECK(backup_wal_segments(label, "0/4000000", mb16).empty());       // stop before start
    CHECK(backup_wal_segments(label, "FFFF/0", mb16).empty());          // a huge range
    CHECK(backup_wal_segments(label, "0/5000138", 0).empty());
    CHECK(backup_wal_segments(label, "0/5000138", 3 * 1024 * 1024).empty());  // not a power of two
}

TEST_CASE("syncfs replaces pg_rewind's own sync only where Linux reports its write-back errors", "[rejoin]") {
    CHECK(syncfs_reports_errors("6.1.0-18-amd64"));
    CHECK(syncfs_reports_errors("6.18.44-fc-v1300"));
    CHECK(syncfs_reports_errors("5.8.0"));
    CHECK(syncfs_reports_errors("5.10"));
    CHECK_FALSE(syncfs_reports_errors("5.7.19-generic"));
    CHECK_FALSE(syncfs_reports_errors("4.19.0-21-amd64"));
    CHECK_FALSE(syncfs_reports_errors(""));
    CHECK_FALSE(syncfs_reports_errors("linux"));
    CHECK_FALSE(syncfs_reports_errors("99999999999999999999.1"));
}
