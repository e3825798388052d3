#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "plugins/standby/clone.hpp"
#include "plugins/standby/standby.hpp"

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
