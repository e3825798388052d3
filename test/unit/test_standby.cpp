#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "plugins/standby/clone.hpp"
#include "plugins/standby/standby.hpp"
#include "plugins/standby/switchover.hpp"

using namespace pgrm;

namespace {

CloneSituation empty_target() {
    CloneSituation s;
    s.target = "/data/standby";
    s.method = "pg_basebackup";
    s.source.host = "node1";
    return s;
}

ExitCode refusal(const CloneSituation& s) {
    try {
        plan_clone(s);
    } catch (const Error& e) {
        return e.code();
    }
    return ExitCode::Success;
}

}  // namespace

TEST_CASE("an empty or missing target is cloned with pg_basebackup", "[standby]") {
    auto s = empty_target();
    ClonePlan p = plan_clone(s);
    CHECK(p.method == "pg_basebackup");
    CHECK_FALSE(p.delta);
    CHECK(p.steps.front().find("create directory") != std::string::npos);

    s.target_exists = true;
    p = plan_clone(s);
    CHECK(p.steps.front().find("pg_basebackup") != std::string::npos);
}

TEST_CASE("a non-empty target needs --force and then gets an rsync delta", "[standby]") {
    auto s = empty_target();
    s.target_exists = true;
    s.target_empty = false;
    CHECK(refusal(s) == ExitCode::BadConfig);
    s.force = true;
    ClonePlan p = plan_clone(s);
    CHECK(p.method == "rsync");
    CHECK(p.delta);
}

TEST_CASE("a running target is refused even with --force", "[standby]") {
    auto s = empty_target();
    s.target_exists = true;
    s.target_empty = false;
    s.target_running = true;
    s.force = true;
    CHECK(refusal(s) == ExitCode::BadConfig);
}

TEST_CASE("the rsync method names where it copies from", "[standby]") {
    auto s = empty_target();
    s.method = "rsync";
    s.source.remote_user = "postgres";
    ClonePlan p = plan_clone(s);
    bool names_remote = false;
    for (const auto& step : p.steps) names_remote |= step.find("postgres@node1 over ssh") != std::string::npos;
    CHECK(names_remote);
    s.source.local = true;
    p = plan_clone(s);
    bool names_local = false;
    for (const auto& step : p.steps) names_local |= step.find("local source directory") != std::string::npos;
    CHECK(names_local);
}

TEST_CASE("a rewindable target with data gets pg_rewind, else rsync says why", "[standby]") {
    auto s = empty_target();
    s.target_exists = true;
    s.target_empty = false;
    s.force = true;
    s.rewind.possible = true;
    ClonePlan p = plan_clone(s);
    CHECK(p.method == "pg_rewind");
    CHECK(p.delta);
    CHECK(p.steps.back() == "write standby.signal and primary_conninfo in postgresql.auto.conf");
    s.rewind = {false, "the target has neither wal_log_hints nor data checksums"};
    p = plan_clone(s);
    CHECK(p.method == "rsync");
    CHECK(p.steps.front() == "no pg_rewind: the target has neither wal_log_hints nor data checksums");
}

TEST_CASE("--method is ignored over existing files: a rejoin picks its own", "[standby]") {
    auto s = empty_target();
    s.target_exists = true;
    s.target_empty = false;
    s.force = true;
    s.method = "pg_basebackup";
    s.rewind = {false, "the target holds no readable PostgreSQL data directory"};
    CHECK(plan_clone(s).method == "rsync");
    s.method = "rsync";
    s.rewind.possible = true;
    CHECK(plan_clone(s).method == "pg_rewind");
}

namespace {

// A standby (node 2) of node 1 that every check passes.
pgrm::SwitchoverFacts ready() {
    pgrm::SwitchoverFacts f;
    f.candidate = 2;
    f.candidate_in_recovery = true;
    f.primary = 1;
    f.primary_writable = true;
    f.schema_version = 3;
    f.upstream = 1;
    f.lag = 8192;
    f.max_lag = 16 * 1024 * 1024;
    f.primary_daemon_age = 0.5;
    f.candidate_daemon_age = 1.2;
    f.daemon_fresh = 4;
    return f;
}

std::vector<std::string> failed(const pgrm::SwitchoverFacts& f) {
    std::vector<std::string> out;
    for (const auto& c : pgrm::judge_switchover(f))
        if (!c.ok) out.push_back(c.name + ": " + c.detail);
    return out;
}

}  // namespace

TEST_CASE("standby switchover goes ahead only when every check holds", "[standby]") {
    auto all = pgrm::judge_switchover(ready());
    CHECK(all.size() == 9);
    CHECK(failed(ready()).empty());

    auto f = ready();
    f.candidate_in_recovery = false;
    CHECK(failed(f) == std::vector<std::string>{"this node is a standby: node 2 already accepts writes"});
    f = ready();
    f.upstream = 3;  // a cascaded standby
    CHECK(failed(f) == std::vector<std::string>{"this node streams from the primary: from node 3"});
    f.upstream.reset();
    CHECK(failed(f) == std::vector<std::string>{"this node streams from the primary: not streaming"});
    f = ready();
    f.lag = f.max_lag + 1;
    CHECK(failed(f) == std::vector<std::string>{"replication lag is small: 16777217 bytes (at most 16777216)"});
    f.lag.reset();
    CHECK(failed(f) == std::vector<std::string>{"replication lag is small: unknown"});
    f = ready();
    f.primary_daemon_age = 4.0;  // as old as "fresh" allows: stopped
    CHECK(failed(f) == std::vector<std::string>{"the primary's repmgrd runs: heartbeat 4.0 s ago (alive: under 4.0 s)"});
    f = ready();
    f.candidate_daemon_age.reset();
    CHECK(failed(f) == std::vector<std::string>{"this node's repmgrd runs: never monitoring row"});
    f = ready();
    f.schema_version = 2;
    CHECK(failed(f) == std::vector<std::string>{
                           "the metadata knows switchovers: schema version 2; the primary's repmgrd brings it up to date"});
    f = ready();
    pgrm::SwitchoverRequest other;
    other.id = 4;
    other.primary_node_id = 1;
    other.candidate_node_id = 3;
    other.state = "demoting";
    f.active = other;
    CHECK(failed(f) == std::vector<std::string>{"no other switchover is under way: request 4: node 1 to node 3, demoting"});
    f = ready();
    f.pause.paused = true;
    f.pause.changed_at = "2026-05-01 10:00:00.000 UTC";
    f.pause.changed_by = "postgres@db2";
    CHECK(failed(f) == std::vector<std::string>{"failover is not paused: paused since 2026-05-01 10:00:00.000 UTC by "
                                                "postgres@db2; \"repmgr service unpause\" resumes it"});
    f = ready();
    f.primary_writable = false;
    f.primary_error = "connection refused";
    CHECK(failed(f).front() == "the primary accepts writes: node 1: connection refused");
    f.primary.reset();
    CHECK(failed(f).front() == "the primary accepts writes: no active primary in the metadata");
}
