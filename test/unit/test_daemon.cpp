#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "core/notification.hpp"
#include "plugins/daemon/child.hpp"
#include "plugins/daemon/election.hpp"
#include "plugins/daemon/leader.hpp"
#include "plugins/daemon/lease.hpp"
#include "plugins/daemon/notify.hpp"
#include "plugins/daemon/state.hpp"

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
    CHECK(d.reason == "node 3 is the candidate (node 2 at 0/64, node 3 at 0/64); "
                      "this node has priority 0 and is never promoted");
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

TEST_CASE("a candidate whose own WAL receiver still hears the primary does not promote", "[daemon]") {
    // Its daemon lost the primary, no sibling streams from it, a majority is in sight:
    // but the primary reaches this node, counts it toward its majority, and never fences.
    Peer self = standby(2, 200);
    self.sees_primary = true;
    Decision d = elect(self, {standby(3, 100)}, 3);
    CHECK(d.action == A::Wait);
    CHECK(d.reason == "this node's WAL receiver still streams from the primary: only the daemon's link to it is lost");
    // A new primary elsewhere is still followed.
    Peer promoted = standby(3, 100);
    promoted.in_recovery = false;
    CHECK(elect(self, {promoted}, 3).action == A::Follow);
}

TEST_CASE("a sibling that answered but refused us lives: wait while its role is unknown", "[daemon]") {
    Peer refusing;
    refusing.id = 3;
    refusing.refused = "password refused";
    // Even with a majority without it and more WAL here, this node may not promote.
    Decision d = elect(standby(2, 900), {refusing, standby(4, 100), standby(5, 100)}, 5);
    CHECK(d.action == A::Wait);
    CHECK(d.reason == "node 3 answered but refused the connection (password refused): it lives and its role is unknown");
    // A known new primary is still followed.
    Peer promoted = standby(4, 100);
    promoted.in_recovery = false;
    CHECK(elect(standby(2, 900), {refusing, promoted, standby(5, 100)}, 5).action == A::Follow);
    // Gone for good (nothing answered) is not alive.
    Peer gone;
    gone.id = 3;
    CHECK(elect(standby(2, 900), {gone, standby(4, 100), standby(5, 100)}, 5).action == A::Promote);
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

// --------------------------------------------------------------------------------------
// The daemon's states

namespace {

using S = State;

Observation standby_seen(bool primary_answers = true) {
    Observation o;
    o.local_up = true;
    o.in_recovery = true;
    o.automatic = true;
    o.primary_id = 1;
    o.primary_answers = primary_answers;
    return o;
}

Observation primary_seen(int visible = 3, int active = 3) {
    Observation o;
    o.local_up = true;
    o.in_recovery = false;
    o.automatic = true;
    o.nodes_active = active;
    o.nodes_visible = visible;
    o.fence_after = std::chrono::seconds(51);
    return o;
}

}  // namespace

TEST_CASE("a standby whose primary answers is following it; one that misses a check confirms at once",
          "[daemon]") {
    Transition t = next_state(S::Starting, standby_seen());
    CHECK(t.to == S::Standby);
    CHECK(t.reason == "following primary node 1");
    CHECK_FALSE(t.at_once);
    CHECK(next_state(S::Standby, standby_seen()).to == S::Standby);
    CHECK(next_state(S::Standby, standby_seen()).reason.empty());  // no change, nothing to say

    Transition miss = next_state(S::Standby, standby_seen(false));
    CHECK(miss.to == S::PrimaryLostConfirming);
    CHECK(miss.at_once);  // the reconnect attempts start now, not a pass later
}

TEST_CASE("the reconnect attempts end in a lost primary, or in the primary back", "[daemon]") {
    Observation lost = standby_seen(false);
    lost.primary_lost = true;
    lost.reconnect_attempts = 6;
    Transition t = next_state(S::PrimaryLostConfirming, lost);
    CHECK(t.to == S::Electing);
    CHECK(t.at_once);
    CHECK(t.reason == "primary node 1 is lost: no answer to 6 reconnect attempts");

    lost.automatic = false;
    t = next_state(S::PrimaryLostConfirming, lost);
    CHECK(t.to == S::PrimaryLost);
    CHECK_FALSE(t.at_once);
    CHECK(t.reason.find("failover = manual: not promoting") != std::string::npos);

    CHECK(next_state(S::PrimaryLostConfirming, standby_seen(true)).to == S::Standby);
    // A primary that answered but refused us lives: the attempts end, it is not lost.
    Observation refused = standby_seen(false);
    refused.primary_refused = "password refused";
    Transition alive = next_state(S::PrimaryLostConfirming, refused);
    CHECK(alive.to == S::Standby);
    CHECK(alive.reason == "primary node 1 lives: it answered but refused the connection (password refused)");
    CHECK(next_state(S::Standby, refused).to == S::Standby);  // no reconnect attempts for it
    CHECK(next_state(S::Electing, refused).to == S::Standby);
    CHECK(next_state(S::Starting, refused).to == S::Standby);
    // Asked to stop midway: neither.
    Observation midway = standby_seen(false);
    CHECK(next_state(S::PrimaryLostConfirming, midway).to == S::PrimaryLostConfirming);
    // With failover = manual the lost primary stays lost until one answers.
    Observation still = standby_seen(false);
    still.automatic = false;
    CHECK(next_state(S::PrimaryLost, still).to == S::PrimaryLost);
    Transition back = next_state(S::PrimaryLost, standby_seen(true));
    CHECK(back.to == S::Standby);
    CHECK(back.reason == "primary node 1 answers again");
}

TEST_CASE("the election's verdict decides between promoting, following and waiting", "[daemon]") {
    Observation o = standby_seen(false);
    o.election = Decision{Decision::Action::Promote, 2, "this node is the candidate (node 2 at 0/64)"};
    Transition t = next_state(S::Electing, o);
    CHECK(t.to == S::Promoting);
    CHECK(t.at_once);
    CHECK(t.reason == "this node is the candidate (node 2 at 0/64)");

    o.election = Decision{Decision::Action::Follow, 3, "node 3 is the candidate"};
    CHECK(next_state(S::Electing, o).to == S::FollowingNewPrimary);
    CHECK(next_state(S::Electing, o).at_once);

    o.election = Decision{Decision::Action::Wait, 0, "not a majority"};
    CHECK(next_state(S::Electing, o).to == S::Electing);

    CHECK(next_state(S::Electing, standby_seen(true)).to == S::Standby);
    // failover = manual after a reload: the election stops.
    Observation manual = standby_seen(false);
    manual.automatic = false;
    CHECK(next_state(S::Electing, manual).to == S::PrimaryLost);
}

TEST_CASE("promote and follow are judged by their command's outcome", "[daemon]") {
    Observation o = standby_seen(false);
    o.promote = ChildOutcome{true, "standby promote: node 2 promoted"};
    Transition t = next_state(S::Promoting, o);  // the server may still be leaving recovery
    CHECK(t.to == S::Primary);
    CHECK(t.reason == "standby promote: node 2 promoted");

    o.promote = ChildOutcome{false, "pg_ctl failed"};
    t = next_state(S::Promoting, o);
    CHECK(t.to == S::Electing);
    CHECK_FALSE(t.at_once);  // the next election waits for the next pass
    CHECK(t.reason == "standby promote failed: pg_ctl failed");

    Observation f = standby_seen(false);
    f.follow = ChildOutcome{true, "standby follow: node 3 now streams from node 2"};
    CHECK(next_state(S::FollowingNewPrimary, f).to == S::Standby);
    f.follow = ChildOutcome{false, "node 2 did not become the primary within 62 s"};
    t = next_state(S::FollowingNewPrimary, f);
    CHECK(t.to == S::Electing);
    CHECK(t.reason == "not following: node 2 did not become the primary within 62 s");
}

TEST_CASE("a standby promoted from outside stops a manual daemon, not an automatic one", "[daemon]") {
    Observation o = primary_seen();
    o.automatic = false;
    for (State from : {S::Standby, S::PrimaryLost, S::PrimaryLostConfirming}) {
        Transition t = next_state(from, o);
        CHECK(t.to == S::Stopped);
        CHECK(t.reason.find("promoted outside repmgrd") != std::string::npos);
    }
    // Started on a primary: no promotion seen.
    CHECK(next_state(S::Starting, o).to == S::Primary);
    o.automatic = true;
    CHECK(next_state(S::Standby, o).to == S::Primary);
}

TEST_CASE("a primary fences itself on a newer primary, or cut off from a majority for too long", "[daemon]") {
    CHECK(next_state(S::Starting, primary_seen()).to == S::Primary);
    CHECK(next_state(S::Primary, primary_seen()).to == S::Primary);

    Observation newer = primary_seen();
    newer.newer_primary = 3;
    newer.newer_timeline = 2;
    Transition t = next_state(S::Primary, newer);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason == "node 3 is the primary on newer timeline 2; this node is a former primary and must be rejoined");

    Observation cut = primary_seen(1, 3);
    cut.without_majority = std::chrono::seconds(50);
    CHECK(next_state(S::Primary, cut).to == S::Primary);  // not yet
    cut.without_majority = std::chrono::seconds(52);
    t = next_state(S::Primary, cut);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason.find("cut off from a majority") != std::string::npos);
    cut.automatic = false;  // with failover = manual no standby promotes: nothing to fence against
    CHECK(next_state(S::Primary, cut).to == S::Primary);
    // Two nodes have no majority to lose.
    Observation two = primary_seen(1, 2);
    two.without_majority = std::chrono::hours(1);
    CHECK(next_state(S::Primary, two).to == S::Primary);
    CHECK(sees_majority(2, 3));
    CHECK_FALSE(sees_majority(2, 4));
}

TEST_CASE("a fenced primary stays fenced until it is a standby again", "[daemon]") {
    CHECK(next_state(S::Fenced, primary_seen()).to == S::Fenced);
    CHECK(next_state(S::Fenced, primary_seen(1, 3)).to == S::Fenced);
    Transition t = next_state(S::Fenced, standby_seen());
    CHECK(t.to == S::Standby);
    CHECK(t.reason == "this node is now a standby; following primary node 1");
}

TEST_CASE("a primary that answers fenced is lost with its fence done: its successor is followed, or elected",
          "[daemon]") {
    // Fenced in a cut that healed before a standby found it lost: it answers, read-only.
    Observation fenced = standby_seen();
    fenced.primary_read_only = true;
    Transition t = next_state(S::Standby, fenced);
    CHECK(t.to == S::Electing);
    CHECK(t.at_once);
    CHECK(t.reason == "primary node 1 is fenced (read-only) and no other node accepts writes: electing its successor");
    CHECK(next_state(S::Starting, fenced).to == S::Electing);
    // Electing, it stays lost while it answers fenced: the election decides.
    CHECK(next_state(S::Electing, fenced).to == S::Electing);
    fenced.election = Decision{Decision::Action::Promote, 2, "this node is the candidate"};
    CHECK(next_state(S::Electing, fenced).to == S::Promoting);
    fenced.election.reset();
    // Another node accepts writes: followed, at once.
    fenced.successor = 3;
    t = next_state(S::Standby, fenced);
    CHECK(t.to == S::FollowingNewPrimary);
    CHECK(t.reason == "primary node 1 is fenced (read-only) and node 3 accepts writes: following it");
    // Paused, or failover = manual: nothing changes (the primary answers).
    Observation paused = fenced;
    paused.paused = true;
    CHECK(next_state(S::Standby, paused).to == S::Standby);
    CHECK(next_state(S::Electing, paused).to == S::Standby);
    Observation manual = fenced;
    manual.automatic = false;
    CHECK(next_state(S::Standby, manual).to == S::Standby);
    // An unfenced primary is followed as before.
    CHECK(next_state(S::Electing, standby_seen()).to == S::Standby);
}

TEST_CASE("a standby whose WAL is past the new primary's fork says it needs a rejoin, until it is rejoined",
          "[daemon]") {
    Observation past = standby_seen();
    past.primary_read_only = true;
    past.successor = 3;
    past.needs_rejoin = "this node cannot follow node 3, the primary on timeline 2: past the fork; run rejoin";
    for (State from : {S::Standby, S::Electing, S::FollowingNewPrimary, S::Starting}) {
        Transition t = next_state(from, past);
        INFO(state_name(from));
        CHECK(t.to == S::NeedsRejoin);
        CHECK(t.reason == past.needs_rejoin);
    }
    CHECK(related_node(S::Standby, S::NeedsRejoin, past, std::nullopt) == 3);
    Transition same = next_state(S::NeedsRejoin, past);
    CHECK(same.to == S::NeedsRejoin);
    CHECK(same.reason.empty());
    // Nothing more learnt (no node answered): it still needs one.
    Observation unknown = standby_seen();
    unknown.primary_read_only = true;
    CHECK(next_state(S::NeedsRejoin, unknown).to == S::NeedsRejoin);
    // Rejoined (the server restarted), it follows an unfenced primary again.
    CHECK(next_state(S::NeedsRejoin, standby_seen()).to == S::Standby);
    CHECK(next_state(S::LocalServerDown, standby_seen()).to == S::Standby);
    // The successor's fork no longer in the way: followed.
    Observation can = unknown;
    can.successor = 3;
    CHECK(next_state(S::NeedsRejoin, can).to == S::FollowingNewPrimary);
    // Promoted from outside (by the operator) with failover = manual: the daemon stops.
    Observation promoted = primary_seen();
    promoted.automatic = false;
    CHECK(next_state(S::NeedsRejoin, promoted).to == S::Stopped);
}

TEST_CASE("a run of failed checks of the primary lasts only while the primary is watched", "[daemon]") {
    // The chaos suite's flapping-link: a former primary, rejoined, kept the start of the
    // failed checks of its last failover; its first check failed again and it promoted at
    // once, beside the primary, whose lease had not run out.
    for (State s : {S::Standby, S::PrimaryLostConfirming, S::PrimaryLost, S::Paused, S::Electing, S::Promoting,
                    S::FollowingNewPrimary, S::SwitchoverWait, S::NeedsRejoin}) {
        INFO(state_name(s));
        CHECK(watches_primary(s));
    }
    for (State s : {S::Starting, S::LocalServerDown, S::Unregistered, S::Primary, S::Demoting, S::Fenced, S::Stopped}) {
        INFO(state_name(s));
        CHECK_FALSE(watches_primary(s));
    }
}

TEST_CASE("the local server down, back, and a node without metadata", "[daemon]") {
    Observation down;
    down.local_up = false;
    down.local_error = "could not connect";
    for (State from : {S::Starting, S::Standby, S::Electing, S::Primary, S::Fenced}) {
        Transition t = next_state(from, down);
        CHECK(t.to == S::LocalServerDown);
        CHECK(t.reason == "local server: could not connect");
    }
    CHECK(next_state(S::LocalServerDown, down).to == S::LocalServerDown);
    Transition back = next_state(S::LocalServerDown, standby_seen());
    CHECK(back.to == S::Standby);
    CHECK(back.reason == "local server answers again; following primary node 1");

    Observation none = standby_seen();
    none.unregistered = "no metadata for cluster \"test\" yet: register the primary first";
    Transition t = next_state(S::Starting, none);
    CHECK(t.to == S::Unregistered);
    CHECK(t.reason == none.unregistered);
    CHECK(next_state(S::Unregistered, none).to == S::Unregistered);
    CHECK(next_state(S::Unregistered, standby_seen()).to == S::Standby);
}

TEST_CASE("a primary lost while failover is paused: no election, no promotion; waits in paused", "[daemon]") {
    Observation lost = standby_seen(false);
    lost.paused = true;
    lost.primary_lost = true;
    lost.reconnect_attempts = 2;
    Transition t = next_state(S::PrimaryLostConfirming, lost);
    CHECK(t.to == S::Paused);
    CHECK_FALSE(t.at_once);
    CHECK(t.reason == "primary node 1 is lost: no answer to 2 reconnect attempts; failover is paused: not promoting, "
                      "not following (\"repmgr service unpause\" resumes it)");
    // Paused midway through an election, or once failover is automatic again: no verdict
    // counts, however the election went.
    Observation electing = standby_seen(false);
    electing.paused = true;
    electing.election = Decision{Decision::Action::Promote, 2, "this node is the candidate"};
    t = next_state(S::Electing, electing);
    CHECK(t.to == S::Paused);
    CHECK(t.reason == "primary node 1 is lost and failover is paused: not promoting, not following "
                      "(\"repmgr service unpause\" resumes it)");
    CHECK(next_state(S::PrimaryLost, electing).to == S::Paused);
    // Paused it stays, monitoring, while the primary is silent and the pause holds.
    CHECK(next_state(S::Paused, electing).to == S::Paused);
    CHECK(next_state(S::Paused, electing).reason.empty());
    // With failover = manual nothing would be promoted anyway: primary_lost, as before.
    Observation manual = lost;
    manual.automatic = false;
    CHECK(next_state(S::PrimaryLostConfirming, manual).to == S::PrimaryLost);
    CHECK(next_state(S::PrimaryLost, manual).to == S::PrimaryLost);
    t = next_state(S::Paused, manual);
    CHECK(t.to == S::PrimaryLost);
    CHECK(t.reason == "primary node 1 is lost and failover is now manual: not promoting");
    // A pause changes nothing while the primary answers.
    Observation fine = standby_seen(true);
    fine.paused = true;
    CHECK(next_state(S::Starting, fine).to == S::Standby);
    CHECK(next_state(S::Standby, fine).to == S::Standby);
}

TEST_CASE("paused ends with the primary back, or with the unpause, which fails over then", "[daemon]") {
    Transition t = next_state(S::Paused, standby_seen(true));
    CHECK(t.to == S::Standby);
    CHECK(t.reason == "primary node 1 answers again");
    Observation refused = standby_seen(false);
    refused.paused = true;
    refused.primary_refused = "too many clients";
    CHECK(next_state(S::Paused, refused).to == S::Standby);

    // Unpaused (or told to go on despite the pause) with the primary still silent: the
    // election runs at once, the primary having been checked by this pass.
    Observation resumed = standby_seen(false);
    t = next_state(S::Paused, resumed);
    CHECK(t.to == S::Electing);
    CHECK(t.at_once);
    CHECK(t.reason == "failover resumed and primary node 1 is still lost");
    resumed.pause_overridden = true;
    CHECK(next_state(S::Paused, resumed).to == S::Electing);
    // And the election's verdict counts again.
    resumed.election = Decision{Decision::Action::Promote, 2, "this node is the candidate"};
    CHECK(next_state(S::Electing, resumed).to == S::Promoting);
}

TEST_CASE("a paused standby promoted from outside: stops a manual daemon, is the primary of an automatic one",
          "[daemon]") {
    Observation o = primary_seen();
    o.paused = true;
    CHECK(next_state(S::Paused, o).to == S::Primary);
    o.automatic = false;
    CHECK(next_state(S::Paused, o).to == S::Stopped);
}

TEST_CASE("a paused primary cut off from a majority is not fenced, and says so each pass", "[daemon]") {
    Observation cut = primary_seen(1, 3);
    cut.paused = true;
    cut.without_majority = std::chrono::seconds(52);
    for (State from : {S::Starting, S::Primary}) {
        Transition t = next_state(from, cut);
        CHECK(t.to == S::Primary);
        CHECK(t.held == "failover is paused: not fencing this primary, cut off from a majority of the cluster (it "
                        "sees 1 of 3 nodes) for more than 51 s (\"repmgr service unpause\" fences it, if it still is)");
    }
    CHECK(next_state(S::Primary, cut).reason.empty());  // no change of state: the held fence alone
    // Nothing is held back while the majority is in sight, or before fence_after.
    Observation fine = primary_seen();
    fine.paused = true;
    CHECK(next_state(S::Primary, fine).held.empty());
    Observation early = cut;
    early.without_majority = std::chrono::seconds(50);
    CHECK(next_state(S::Primary, early).held.empty());
}

TEST_CASE("unpaused with the cut still on, the primary fences at once; told to go on, as unpaused", "[daemon]") {
    Observation cut = primary_seen(1, 3);
    cut.without_majority = std::chrono::seconds(300);  // counted through the pause
    Transition t = next_state(S::Primary, cut);
    CHECK(t.to == S::Fenced);
    CHECK(t.held.empty());
    CHECK(t.reason == "cut off from a majority of the cluster (it sees 1 of 3 nodes) for more than 51 s");
    // Told to go on despite the pause, the metadata still saying paused: as unpaused.
    cut.pause_overridden = true;
    CHECK(next_state(S::Primary, cut).to == S::Fenced);
}

TEST_CASE("a paused primary still fences itself beside a newer primary", "[daemon]") {
    Observation newer = primary_seen(1, 3);
    newer.paused = true;
    newer.without_majority = std::chrono::seconds(52);
    newer.newer_primary = 2;
    newer.newer_timeline = 3;
    Transition t = next_state(S::Primary, newer);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason == "node 2 is the primary on newer timeline 3; this node is a former primary and must be rejoined");
}

TEST_CASE("asked to stop, every state stops", "[daemon]") {
    Observation stop;
    stop.stop_requested = true;
    for (State from : {S::Starting, S::LocalServerDown, S::Standby, S::PrimaryLostConfirming, S::Paused, S::Electing,
                       S::Promoting, S::FollowingNewPrimary, S::SwitchoverWait, S::NeedsRejoin, S::Primary, S::Demoting,
                       S::Fenced}) {
        Transition t = next_state(from, stop);
        CHECK(t.to == S::Stopped);
        CHECK(t.reason == "asked to stop");
    }
    CHECK(next_state(S::Stopped, standby_seen()).to == S::Stopped);
}

namespace {

// Node 1, the primary, switching over to node 2 (request 7).
pgrm::SwitchoverRequest planned(const std::string& state = "demoting") {
    pgrm::SwitchoverRequest r;
    r.id = 7;
    r.primary_node_id = 1;
    r.candidate_node_id = 2;
    r.state = state;
    return r;
}

}  // namespace

TEST_CASE("an active switchover request suppresses failover on every standby", "[daemon]") {
    Observation o = standby_seen(false);
    o.node_id = 3;
    o.switchover = planned();
    // From every state on the way to a failover, straight to waiting, at once.
    for (State from : {S::Standby, S::PrimaryLostConfirming, S::PrimaryLost, S::Electing}) {
        Transition t = next_state(from, o);
        CHECK(t.to == S::SwitchoverWait);
        CHECK(t.reason == "primary node 1 is stopping for a planned switchover to node 2: no failover");
    }
    // Even with every reconnect attempt failed, and with the election's verdict in.
    o.primary_lost = true;
    o.election = Decision{Decision::Action::Promote, 3, "this node is the candidate"};
    CHECK(next_state(S::PrimaryLostConfirming, o).to == S::SwitchoverWait);
    CHECK(next_state(S::Electing, o).to == S::SwitchoverWait);
    // A request about another primary (the metadata moved on) suppresses nothing.
    o.switchover->primary_node_id = 4;
    CHECK(next_state(S::PrimaryLostConfirming, o).to == S::Electing);
    // No request (ended, or past its deadline: planned_switchover() leaves those out).
    o.switchover.reset();
    CHECK(next_state(S::PrimaryLostConfirming, o).to == S::Electing);
    // A request the primary's daemon has not taken yet: a primary that dies then is lost
    // like any other, not waited for until the request's deadline.
    o.switchover = planned("requested");
    CHECK(next_state(S::PrimaryLostConfirming, o).to == S::Electing);
    CHECK(next_state(S::Standby, o).to != S::SwitchoverWait);
}

TEST_CASE("waiting on a switchover ends in following the candidate, the old primary back, or failover",
          "[daemon]") {
    Observation o = standby_seen(false);
    o.node_id = 3;
    o.switchover = planned();
    CHECK(next_state(S::SwitchoverWait, o).to == S::SwitchoverWait);
    CHECK(next_state(S::SwitchoverWait, o).reason.empty());
    o.follow = ChildOutcome{true, "node 3 now follows node 2"};
    Transition t = next_state(S::SwitchoverWait, o);
    CHECK(t.to == S::Standby);
    CHECK(t.reason == "switchover: node 3 now follows node 2");
    o.follow = ChildOutcome{false, "could not follow"};
    CHECK(next_state(S::SwitchoverWait, o).to == S::SwitchoverWait);  // tries again next pass
    // Aborted: the old primary answers again.
    Observation back = standby_seen(true);
    back.switchover = planned();
    CHECK(next_state(S::SwitchoverWait, back).to == S::Standby);
    // The request ended (or expired) and the primary is still silent: the usual way.
    Observation ended = standby_seen(false);
    t = next_state(S::SwitchoverWait, ended);
    CHECK(t.to == S::PrimaryLostConfirming);
    CHECK(t.at_once);
}

TEST_CASE("the candidate, promoted by the switchover, is the primary even with failover = manual", "[daemon]") {
    Observation o = primary_seen();
    o.automatic = false;
    o.node_id = 2;
    o.switchover = planned();
    Transition t = next_state(S::SwitchoverWait, o);
    CHECK(t.to == S::Primary);
    CHECK(t.reason == "promoted by the switchover from primary node 1");
    // A switchover quicker than one monitoring interval: this daemon never saw the old
    // primary stop, and finds itself promoted while it thought all was well.
    CHECK(next_state(S::Standby, o).to == S::Primary);
    // Another standby promoted from outside still stops a manual daemon.
    o.node_id = 3;
    CHECK(next_state(S::SwitchoverWait, o).to == S::Stopped);
    CHECK(next_state(S::Standby, o).to == S::Stopped);
}

TEST_CASE("a primary demotes itself on a request naming it, and the outcome decides what it is then",
          "[daemon]") {
    Observation o = primary_seen();
    o.node_id = 1;
    o.switchover = planned("requested");
    Transition t = next_state(S::Primary, o);
    CHECK(t.to == S::Demoting);
    CHECK(t.reason == "switchover to node 2 requested");
    CHECK(t.at_once);
    // Already demoting (its own earlier pass), or about another node: nothing new.
    o.switchover = planned("demoting");
    CHECK(next_state(S::Primary, o).to == S::Primary);
    o.switchover = planned("requested");
    o.switchover->primary_node_id = 3;
    CHECK(next_state(S::Primary, o).to == S::Primary);
    // A fenced primary hands over nothing.
    o.switchover = planned("requested");
    CHECK(next_state(S::Fenced, o).to == S::Fenced);

    Observation done = standby_seen(false);
    done.demotion = Demotion{Demotion::End::Demoted, "node 1 is a standby of node 2"};
    t = next_state(S::Demoting, done);
    CHECK(t.to == S::Standby);
    CHECK(t.reason == "switchover done: node 1 is a standby of node 2");
    Observation aborted = primary_seen();
    aborted.demotion = Demotion{Demotion::End::Aborted, "node 2 did not replay the shutdown checkpoint"};
    t = next_state(S::Demoting, aborted);
    CHECK(t.to == S::Primary);
    CHECK(t.reason == "switchover aborted: node 2 did not replay the shutdown checkpoint");
    Observation failed;
    failed.local_up = false;
    failed.demotion = Demotion{Demotion::End::Failed, "node 1 did not start again"};
    t = next_state(S::Demoting, failed);
    CHECK(t.to == S::LocalServerDown);
    CHECK(t.reason == "switchover failed: node 1 did not start again");
}

TEST_CASE("a state change's event names the other node it concerns", "[daemon]") {
    Observation o;
    o.primary_id = 1;
    // A standby: the primary it follows, or lost; the node elected to follow.
    CHECK(related_node(S::Starting, S::Standby, o, std::nullopt) == 1);
    CHECK(related_node(S::Standby, S::PrimaryLostConfirming, o, std::nullopt) == 1);
    CHECK(related_node(S::PrimaryLostConfirming, S::Electing, o, std::nullopt) == 1);
    CHECK(related_node(S::Electing, S::Paused, o, std::nullopt) == 1);
    CHECK(related_node(S::Electing, S::Promoting, o, std::nullopt) == 1);
    CHECK(related_node(S::Electing, S::FollowingNewPrimary, o, 3) == 3);
    // Followed: the new primary, though the lost one is still the registered one here.
    CHECK(related_node(S::FollowingNewPrimary, S::Standby, o, 3) == 3);
    // Promoted: the primary it replaced; a primary from the start: none.
    CHECK(related_node(S::Promoting, S::Primary, o, std::nullopt) == 1);
    CHECK(related_node(S::Starting, S::Primary, o, std::nullopt) == std::nullopt);
    // A switchover's candidate, and on the candidate the old primary.
    pgrm::SwitchoverRequest req;
    req.primary_node_id = 1;
    req.candidate_node_id = 2;
    req.state = "demoting";
    o.switchover = req;
    CHECK(related_node(S::Standby, S::SwitchoverWait, o, std::nullopt) == 2);
    CHECK(related_node(S::Primary, S::Demoting, o, std::nullopt) == 2);
    CHECK(related_node(S::SwitchoverWait, S::Primary, o, std::nullopt) == 1);
    // Fenced: the node on a newer timeline, a primary or a standby of one; else none.
    Observation p;
    CHECK(related_node(S::Primary, S::Fenced, p, std::nullopt) == std::nullopt);
    p.newer_standby = 3;
    CHECK(related_node(S::Primary, S::Fenced, p, std::nullopt) == 3);
    p.newer_primary = 2;
    CHECK(related_node(S::Primary, S::Fenced, p, std::nullopt) == 2);
    CHECK(related_node(S::Standby, S::LocalServerDown, o, std::nullopt) == std::nullopt);
}

TEST_CASE("every state has its own name, the suffix of its event", "[daemon]") {
    std::set<std::string> names;
    for (int i = 0; i <= static_cast<int>(S::Stopped); ++i) names.insert(std::string(state_name(static_cast<State>(i))));
    CHECK(names.size() == static_cast<size_t>(S::Stopped) + 1);
    CHECK(names.count("primary_lost_confirming") == 1);
    CHECK(names.count("following_new_primary") == 1);
    CHECK(names.count("paused") == 1);
    CHECK(names.count("unknown") == 0);
}

TEST_CASE("the events list names every state's event, and only those start with repmgrd_", "[daemon]") {
    std::vector<std::string> states, listed;
    for (int i = 0; i <= static_cast<int>(S::Stopped); ++i)
        states.push_back("repmgrd_" + std::string(state_name(static_cast<State>(i))));
    for (const auto& name : pgrm::event_names())
        if (name.starts_with("repmgrd_")) listed.push_back(name);
    CHECK(listed == states);  // in the states' order
}

TEST_CASE("the state is read whole from another thread while the monitor changes it", "[daemon]") {
    StateBoard board;
    std::atomic<bool> done{false};
    std::atomic<int> reads{0};
    std::thread writer([&] {
        while (reads == 0) std::this_thread::yield();  // overlap reads with the writes, however loaded the machine
        for (int i = 0; i < 20000; ++i) {
            bool lost = i % 2;
            board.enter(lost ? S::PrimaryLost : S::Standby, lost ? "lost" : "following",
                        std::chrono::system_clock::time_point(std::chrono::seconds(i)));
            Observation seen;
            seen.paused = lost;
            board.pass_done(seen, lost ? std::nullopt : std::optional<int>(1), std::chrono::system_clock::now());
        }
        done = true;
    });
    int torn = 0;
    while (!done) {
        Snapshot s = board.snapshot();
        ++reads;
        if ((s.state == S::PrimaryLost) != (s.reason == "lost") && s.state != S::Starting) ++torn;
    }
    writer.join();
    CHECK(torn == 0);
    Snapshot last = board.snapshot();
    CHECK(last.state == S::PrimaryLost);
    CHECK(last.since == std::chrono::system_clock::time_point(std::chrono::seconds(19999)));
    CHECK_FALSE(last.upstream);
    CHECK(last.paused);
    CHECK(last.passes == 20000);  // pgrm_passes_total: every pass counted once
}

TEST_CASE("systemd's status line names the state, the primary and the last check", "[daemon]") {
    Snapshot snap;
    CHECK(status_line(snap) == "starting; primary: unknown; last check: none yet");
    snap.state = State::Standby;
    snap.upstream = 1;
    snap.last_pass = std::chrono::system_clock::from_time_t(1796610060);
    CHECK(status_line(snap) == "standby; primary: node 1; last check: 2026-12-07T02:21:00Z");
    snap.state = State::Primary;
    snap.upstream.reset();
    CHECK(status_line(snap) == "primary; primary: this node; last check: 2026-12-07T02:21:00Z");
    snap.state = State::Fenced;
    CHECK(status_line(snap) == "fenced; primary: unknown; last check: 2026-12-07T02:21:00Z");
}

TEST_CASE("a standby that follows a newer primary is no part of a primary's majority, and fences it", "[daemon]") {
    // Node 2 was promoted to timeline 2 behind a partition; this old primary (timeline 1)
    // reaches only node 3, which follows node 2.
    Observation o = primary_seen(0, 3);
    tally_nodes(o, 1, {{2, false, true, 0}, {3, true, true, 2}});
    CHECK(o.nodes_visible == 1);
    CHECK_FALSE(o.newer_primary);
    CHECK(o.newer_standby == 3);
    CHECK(o.newer_timeline == 2);
    Transition t = next_state(S::Primary, o);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason == "node 3 is a standby on newer timeline 2, following a newer primary; this node is a former "
                      "primary and must be rejoined");

    // Its own standbys count; a node that refused the connection (timeline unread) too.
    Observation mine = primary_seen(0, 3);
    tally_nodes(mine, 2, {{2, true, true, 2}, {3, true, true, 0}});
    CHECK(mine.nodes_visible == 3);
    CHECK_FALSE(mine.newer_primary);
    CHECK_FALSE(mine.newer_standby);
    CHECK(next_state(S::Primary, mine).to == S::Primary);

    // The newer primary itself is named when reached, whatever the order.
    Observation both = primary_seen(0, 3);
    tally_nodes(both, 1, {{3, true, true, 2}, {2, true, false, 2}});
    CHECK(both.newer_primary == 2);
    CHECK_FALSE(both.newer_standby);
    CHECK(next_state(S::Primary, both).reason.find("node 2 is the primary on newer timeline 2") == 0);
}

// --------------------------------------------------------------------------------------
// Fence before promote (repmgrd(8)): the candidate's hold, the primary's lease

TEST_CASE("a candidate that lost its primary by timeout holds its promotion for the fence", "[daemon]") {
    using namespace std::chrono_literals;
    const auto promote_after = 12024ms;
    Decision promote = elect(standby(3, 200), {standby(2, 100)}, 3);
    REQUIRE(promote.action == A::Promote);

    // Failing by timeout for less than promote_after: held, for the rest of it.
    auto hold = promotion_hold(PrimaryFailing{3000ms, false}, promote_after);
    CHECK(hold == 9024ms);
    Decision held = hold_promotion(promote, hold, promote_after);
    CHECK(held.action == A::Wait);
    CHECK(held.reason ==
          "holding the promotion until the primary has fenced itself: it was lost by timeout, not refused, so it may "
          "live behind a partition; this node is the candidate (node 3 at 0/C8, node 2 at 0/64), promoted once "
          "12024 ms have passed since the first failed check (promote_after)");
    // The same words each pass (one event), however long is left.
    CHECK(hold_promotion(promote, promotion_hold(PrimaryFailing{9000ms, false}, promote_after), promote_after).reason ==
          held.reason);
    // Once promote_after has passed: promoted.
    CHECK(promotion_hold(PrimaryFailing{12024ms, false}, promote_after) == 0ms);
    CHECK(hold_promotion(promote, 0ms, promote_after).action == A::Promote);

    // Every failure refused: the host answered, PostgreSQL is down: no hold (the fast path).
    CHECK(promotion_hold(PrimaryFailing{10ms, true}, promote_after) == 0ms);
    // Nothing failed (no primary registered to check): nothing to fence.
    CHECK(promotion_hold(std::nullopt, promote_after) == 0ms);

    // Only a promotion of this node is held: following, or waiting, goes on as decided.
    Decision follow = elect(standby(2, 100), {standby(3, 200)}, 3);
    CHECK(hold_promotion(follow, hold, promote_after).action == A::Follow);
    Decision wait = elect(standby(2, 100), {}, 3);
    CHECK(hold_promotion(wait, hold, promote_after).reason == wait.reason);
}

TEST_CASE("a primary whose lease ran out is fenced, whatever the pass sees", "[daemon]") {
    Observation ran = primary_seen(3, 3);  // the majority is back in sight
    ran.fence_after = std::chrono::milliseconds(5000);
    ran.lease_fenced = "";
    Transition t = next_state(S::Primary, ran);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason == "cut off from a majority of the cluster: no probe round reached one for 5 s (fence_after); its "
                      "lease ran out");
    // Back from its own server down, too; and a pause cannot undo it.
    ran.paused = true;
    CHECK(next_state(S::LocalServerDown, ran).to == S::Fenced);
    ran.lease_fenced = "canceling statement due to statement timeout";
    CHECK(next_state(S::Primary, ran).reason ==
          "cut off from a majority of the cluster: no probe round reached one for 5 s (fence_after); its lease ran "
          "out and its fence failed (canceling statement due to statement timeout)");
}

TEST_CASE("the lease fences when it runs out, not while renewed, and only once", "[daemon]") {
    using namespace std::chrono_literals;
    using Clock = std::chrono::steady_clock;
    std::atomic<int> fences{0};
    FenceLease lease(20ms);
    auto fence = [&] {
        ++fences;
        return std::string();
    };
    auto wait_for = [](auto done) {
        for (auto until = Clock::now() + 10s; !done() && Clock::now() < until;) std::this_thread::sleep_for(5ms);
        return done();
    };

    // Renewed before it runs out, it never fences.
    // (Deadlines far from the renewals: a loaded machine may hold this thread back.)
    for (int i = 0; i < 10; ++i) {
        lease.renew(Clock::now() + 2s, fence);
        std::this_thread::sleep_for(20ms);
    }
    CHECK(fences == 0);
    CHECK_FALSE(lease.ran());
    CHECK(lease.armed());

    // Left alone, it fences at its deadline, not before.
    auto until = Clock::now() + 100ms;
    lease.renew(until, fence);
    REQUIRE(wait_for([&] { return lease.ran().has_value(); }));
    CHECK(lease.ran()->at >= until);
    CHECK(lease.ran()->failed.empty());
    CHECK(fences == 1);
    CHECK_FALSE(lease.armed());
    // Spent: a later renewal does not undo it, and it does not fence again.
    lease.renew(Clock::now() + 10ms, fence);
    std::this_thread::sleep_for(50ms);
    CHECK(fences == 1);
    CHECK(lease.ran().has_value());

    // Cancelled: forgotten, and nothing fences.
    lease.cancel();
    CHECK_FALSE(lease.ran());
    lease.renew(Clock::now() + 500ms, fence);
    lease.cancel();
    CHECK_FALSE(lease.armed());
    std::this_thread::sleep_for(600ms);
    CHECK(fences == 1);
}

TEST_CASE("a lease taken again after a pause waits for the probe round; an armed one is never put off", "[daemon]") {
    using namespace std::chrono_literals;
    const std::chrono::steady_clock::time_point majority{100s};
    // Renewed within fence_after of the last majority: that deadline, armed or not.
    CHECK(lease_until(majority, 5s, majority + 4s, 3s, true) == majority + 5s);
    CHECK(lease_until(majority, 5s, majority + 4s, 3s, false) == majority + 5s);
    // Past it, armed (no pause since): it has run out as it was, and fences at once.
    CHECK(lease_until(majority, 5s, majority + 7s, 3s, true) == majority + 5s);
    CHECK(lease_until(majority, 5s, majority + 5s, 3s, true) == majority + 5s);
    // Past it, taken again after a pause (a restart: no round since the stop): this round
    // decides, fencing at its bound unless a majority answers first.
    CHECK(lease_until(majority, 5s, majority + 7s, 3s, false) == majority + 10s);
    CHECK(lease_until(majority, 5s, majority + 5s, 3s, false) == majority + 8s);
}

TEST_CASE("a fence that fails is tried again until one succeeds", "[daemon]") {
    using namespace std::chrono_literals;
    using Clock = std::chrono::steady_clock;
    std::atomic<int> tries{0};
    FenceLease lease(10ms);
    lease.renew(Clock::now(), [&] { return ++tries < 3 ? std::string("server frozen") : std::string(); });
    for (auto until = Clock::now() + 10s; !(lease.ran() && lease.ran()->failed.empty()) && Clock::now() < until;)
        std::this_thread::sleep_for(5ms);
    REQUIRE(lease.ran());
    CHECK(lease.ran()->failed.empty());
    CHECK(tries == 3);
}

TEST_CASE("with the leader key, etcd's lease decides: not the majority, and another holder fences", "[daemon]") {
    // Cut off from its standbys for an hour, a primary that renews the key stays.
    Observation cut = primary_seen(1, 3);
    cut.leader_key = true;
    cut.without_majority = std::chrono::hours(1);
    CHECK(next_state(S::Primary, cut).to == S::Primary);
    // Its lease ran out.
    Observation ran = primary_seen(3, 3);
    ran.leader_key = true;
    ran.fence_after = std::chrono::milliseconds(5978);
    ran.lease_fenced = "";
    Transition t = next_state(S::Primary, ran);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason == "could not renew its leader key in etcd for 5978 ms (etcd_fence_after); its lease ran out");
    // Another node holds the key: a former primary.
    Observation elsewhere = primary_seen(3, 3);
    elsewhere.leader_key = true;
    elsewhere.leader_elsewhere = 2;
    t = next_state(S::Primary, elsewhere);
    CHECK(t.to == S::Fenced);
    CHECK(t.reason == "node 2 holds the leader key in etcd; this node is a former primary and must be rejoined");
}

TEST_CASE("etcd_failover_on_refusal revokes a lost primary's lease only on refusal and its daemon's silence",
          "[daemon]") {
    using namespace std::chrono_literals;
    using L = LeaseEnd::Action;
    const PrimaryFailing refused{2000ms, true};
    const PrimaryFailing timed_out{2000ms, false};
    // Off (the default): the lease ends by itself, and nothing is said about it.
    LeaseEnd e = end_lease_on_refusal(false, refused, 1, 1, false);
    CHECK(e.action == L::Wait);
    CHECK(e.reason.empty());
    // On, every check of the primary refused: etcd is asked about its daemon, then the
    // lease is revoked only when that daemon is silent there.
    CHECK(end_lease_on_refusal(true, refused, 1, 1, std::nullopt).action == L::Ask);
    e = end_lease_on_refusal(true, refused, 1, 1, false);
    CHECK(e.action == L::Revoke);
    CHECK(e.reason == "every check of node 1 was refused and its repmgrd is silent in etcd "
                      "(etcd_failover_on_refusal): its lease is revoked");
    // A daemon that runs acts itself: it gives the key up, or fences.
    e = end_lease_on_refusal(true, refused, 1, 1, true);
    CHECK(e.action == L::Wait);
    CHECK(e.reason == "the repmgrd of node 1 still publishes its state in etcd: it gives the key up itself");
    // A check that timed out (or an unreachable host) may be a partition: the lease it is.
    e = end_lease_on_refusal(true, timed_out, 1, 1, false);
    CHECK(e.action == L::Wait);
    CHECK(e.reason == "not every check of node 1 was refused (a timeout, or an unreachable host): it may live "
                      "behind a partition");
    CHECK(end_lease_on_refusal(true, std::nullopt, 1, 1, false).action == L::Wait);
    // Only the lease of the primary this node lost.
    e = end_lease_on_refusal(true, refused, 1, 3, false);
    CHECK(e.action == L::Wait);
    CHECK(e.reason == "node 3 is not the primary this node lost: its lease is not ended for it");
    CHECK(end_lease_on_refusal(true, refused, std::nullopt, 1, false).action == L::Wait);
}

TEST_CASE("a claim on the leader key: created, this node's own, another's, or unreadable", "[daemon]") {
    pgrm::etcd::Created created{true, std::nullopt};
    Claim c = read_claim(created, 1, 42);
    CHECK(c.held);
    CHECK(c.lease == 42);
    // This node's own key from before (a restarted daemon): held under the lease it has.
    pgrm::etcd::Created mine{false, pgrm::etcd::KeyValue{"/pgrm/t/leader", "1", 5, 5, 7}};
    c = read_claim(mine, 1, 42);
    CHECK(c.held);
    CHECK(c.lease == 7);
    pgrm::etcd::Created theirs{false, pgrm::etcd::KeyValue{"/pgrm/t/leader", "2", 5, 5, 7}};
    c = read_claim(theirs, 1, 42);
    CHECK_FALSE(c.held);
    CHECK(c.holder == 2);
    CHECK(c.holder_lease == 7);  // what etcd_failover_on_refusal would revoke
    // Written by hand without a lease, it names this node but cannot be renewed: neither
    // held nor another's (no fence for it).
    pgrm::etcd::Created no_lease{false, pgrm::etcd::KeyValue{"/pgrm/t/leader", "1", 5, 5, 0}};
    c = read_claim(no_lease, 1, 42);
    CHECK_FALSE(c.held);
    CHECK_FALSE(c.holder);
    CHECK(c.holder_value == "1");
    for (const char* odd : {"", "x", "-1", "0", "1 ", "99999999999"}) {
        INFO(odd);
        c = read_claim({false, pgrm::etcd::KeyValue{"k", odd, 1, 1, 7}}, 1, 42);
        CHECK_FALSE(c.held);
        CHECK_FALSE(c.holder);
        CHECK(c.holder_value == odd);
    }
    c = read_claim({false, std::nullopt}, 1, 42);  // gone meanwhile
    CHECK_FALSE(c.held);
    CHECK_FALSE(c.holder);
}
