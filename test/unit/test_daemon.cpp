#include <catch2/catch.hpp>

#include "plugins/daemon/child.hpp"
#include "plugins/daemon/election.hpp"

using namespace pgrm::daemon;
using A = Decision::Action;

namespace {

Peer standby(int id, std::uint64_t wal_end, int priority = 100) {
    Peer p;
    p.id = id;
    p.priority = priority;
    p.reachable = true;
    p.wal_end = wal_end;
    return p;
}

}  // namespace

TEST_CASE("the standby with the most WAL is promoted, the others follow it", "[daemon]") {
    // Three registered nodes: the lost primary 1, standbys 2 and 3.
    Decision on2 = elect(standby(2, 100), {standby(3, 200)}, 3);
    CHECK(on2.action == A::Follow);
    CHECK(on2.node_id == 3);
    Decision on3 = elect(standby(3, 200), {standby(2, 100)}, 3);
    CHECK(on3.action == A::Promote);
    // The log names what the choice was made from.
    CHECK(on3.reason == "this node is the candidate (node 3 at 0/C8, node 2 at 0/64)");
}

TEST_CASE("ties go to the higher priority, then the lower node id", "[daemon]") {
    CHECK(elect(standby(2, 100, 50), {standby(3, 100, 90)}, 3).node_id == 3);
    CHECK(elect(standby(3, 100), {standby(2, 100)}, 3).node_id == 2);
    CHECK(elect(standby(2, 100), {standby(3, 100)}, 3).action == A::Promote);
}

TEST_CASE("priority 0 never promotes", "[daemon]") {
    Decision d = elect(standby(2, 100, 0), {standby(3, 100)}, 3);
    CHECK(d.action == A::Follow);
    CHECK(d.node_id == 3);
    CHECK(elect(standby(2, 500, 0), {standby(3, 100, 0)}, 3).action == A::Wait);
}

TEST_CASE("nobody is promoted past WAL a priority-0 node holds", "[daemon]") {
    Decision d = elect(standby(2, 500, 0), {standby(3, 100)}, 3);
    CHECK(d.action == A::Wait);
    CHECK(d.reason.find("lose committed transactions") != std::string::npos);
    CHECK(elect(standby(3, 100), {standby(2, 500, 0)}, 3).action == A::Wait);
}

TEST_CASE("without a majority nothing is promoted", "[daemon]") {
    Peer unreachable = standby(3, 0);
    unreachable.reachable = false;
    Decision d = elect(standby(2, 100), {unreachable}, 3);
    CHECK(d.action == A::Wait);
    CHECK(d.reason.find("not a majority") != std::string::npos);
    // A two-node cluster: the standby alone is half, never a majority.
    Decision two = elect(standby(2, 100), {}, 2);
    CHECK(two.action == A::Wait);
    CHECK(two.reason.find("two-node") != std::string::npos);
}

TEST_CASE("a sibling that still hears the primary means only this link is lost", "[daemon]") {
    Peer hears = standby(3, 100);
    hears.sees_primary = true;
    CHECK(elect(standby(2, 200), {hears}, 3).action == A::Wait);
}

TEST_CASE("a sibling already promoted is followed", "[daemon]") {
    Peer promoted = standby(3, 100);
    promoted.in_recovery = false;
    Decision d = elect(standby(2, 900), {promoted}, 3);
    CHECK(d.action == A::Follow);
    CHECK(d.node_id == 3);
}

TEST_CASE("a command the daemon ran is judged by its JSON document", "[daemon]") {
    pgrm::ExecResult run;
    run.exit_code = 0;
    run.out = R"({"command": "standby promote", "ok": true, "exit_code": 0, "summary": "standby promote: node 2 promoted", "data": {}, "warnings": ["w"]})";
    ChildOutcome ok = read_outcome(run);
    CHECK(ok.ok);
    CHECK(ok.message == "standby promote: node 2 promoted");

    run.exit_code = 6;
    run.out = R"({"command": "standby promote", "ok": false, "error": {"code": 6, "name": "ERR_DB_CON", "message": "could not connect to \"host=b\"", "detail": "refused"}, "warnings": []})";
    ChildOutcome failed = read_outcome(run);
    CHECK_FALSE(failed.ok);
    CHECK(failed.message == "could not connect to \"host=b\": refused (exit status 6)");

    // A deferred failure: a result, but not a success.
    run.exit_code = 5;
    run.out = R"({"command": "standby follow", "ok": false, "exit_code": 5, "summary": "standby follow: not yet"})";
    CHECK(read_outcome(run).message == "standby follow: not yet (exit status 5)");
    CHECK_FALSE(read_outcome(run).ok);
}

TEST_CASE("a command that left no JSON document has failed, whatever its exit status", "[daemon]") {
    pgrm::ExecResult run;
    run.exit_code = 0;
    run.out = "promoted\n";
    CHECK_FALSE(read_outcome(run).ok);
    CHECK(read_outcome(run).message == "exit status 0, no JSON result: promoted");
    run.exit_code = -1;
    run.term_signal = 9;
    run.out = "";
    CHECK(read_outcome(run).message == "killed by signal 9, no JSON result");
    run.timed_out = true;
    run.out = "{\"ok\": tr";
    CHECK(read_outcome(run).message.rfind("timed out and was stopped, no JSON result", 0) == 0);
}

TEST_CASE("a command's log lines keep their level in the daemon's log", "[daemon]") {
    using pgrm::log::Level;
    auto [level, text] = read_log_line("[2026-11-26 09:10:11.123] [WARNING] this standby is not streaming");
    CHECK(level == Level::Warning);
    CHECK(text == "this standby is not streaming");
    CHECK(read_log_line("[2026-11-26 09:10:11.123] [INFO] node 3 is not reachable: x").first == Level::Info);
    // Anything else (a program's own output) is kept whole.
    CHECK(read_log_line("pg_ctl: server promoted") == std::pair{Level::Notice, std::string("pg_ctl: server promoted")});
    CHECK(read_log_line("[x] [LOUD] y") == std::pair{Level::Notice, std::string("[x] [LOUD] y")});
    CHECK(read_log_line("[unterminated") == std::pair{Level::Notice, std::string("[unterminated")});
}
