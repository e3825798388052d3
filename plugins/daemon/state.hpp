#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/health.hpp"
#include "core/metadata.hpp"
#include "plugins/daemon/child.hpp"
#include "plugins/daemon/election.hpp"
#include "plugins/daemon/switchover.hpp"

// repmgrd's states and every transition between them, in one place. The monitor runs the
// step of its current state, which fills in an Observation; next_state() (pure, unit
// tested) says where that leads and why; the monitor logs the transition, records it as
// an event (repmgrd_<state>) and publishes it in a Snapshot that other threads read.
namespace pgrm::daemon {

enum class State {
    Starting,               // no pass has finished yet
    LocalServerDown,        // this node's server does not answer
    Unregistered,           // no metadata yet, or this node is not in it
    Standby,                // a standby whose primary answers: monitoring history recorded
    PrimaryLostConfirming,  // the primary missed a check: the reconnect attempts run
    PrimaryLost,            // lost with failover = manual: waits for a primary, or a person
    Paused,                 // lost while failover is paused: no election, no promotion, no
                            // following; waits for the primary, or for the unpause
    Electing,               // lost with failover = automatic: an election every pass
    Promoting,              // elected: standby promote runs
    FollowingNewPrimary,    // another node was elected: wait for it, then standby follow
    SwitchoverWait,         // the primary stopped for a planned switchover: no failover; the
                            // candidate waits to be promoted, the others follow it once it is
    NeedsRejoin,            // its primary is fenced, another node accepts writes, and this
                            // node's WAL is past that primary's fork: only a rejoin helps
    Primary,                // this node accepts writes: nodes probed, heartbeat, quorum
    Demoting,               // a switchover was requested: this primary hands over to the candidate
    Fenced,                 // a primary that fenced itself (read-only, or stopped)
    Stopped,                // the daemon exits
};

// "primary_lost_confirming": in the log, in events (repmgrd_<name>), in the snapshot.
std::string_view state_name(State state);

// What one pass found. Each state's step fills in what it asked; the rest keeps its
// default.
struct Observation {
    bool stop_requested = false;     // SIGTERM or SIGINT
    bool automatic = false;          // failover = automatic
    // Failover is paused ("repmgr service pause", as this node's metadata says), and this
    // daemon was not asked to go on despite it.
    bool paused = false;
    // The metadata says paused, but "service unpause", finding no primary to write to,
    // asked this daemon to go on: the standby it promotes lifts the pause.
    bool pause_overridden = false;
    int node_id = 0;                 // this node
    // A planned switchover, active and before its deadline, as this node's metadata says.
    std::optional<SwitchoverRequest> switchover;
    std::optional<Demotion> demotion;  // the Demoting step's outcome

    // This node's server.
    bool local_up = false;
    std::string local_error;         // why it does not answer
    bool local_gone = false;         // nothing listens at its address: its postmaster died
    bool in_recovery = true;
    std::optional<NodeSample> local; // what it said about itself at the pass's start
    std::string unregistered;        // why this node is not (yet) in the metadata; empty: it is

    // A standby's primary.
    std::optional<int> primary_id;   // as registered
    bool primary_answers = false;    // the pass's check, or a reconnect attempt, succeeded
    // It answered, read-only by its configuration: fenced, so its timeline may be an
    // old one that a newer primary left behind.
    bool primary_read_only = false;
    // Its server answered but refused this daemon (why: password refused, too many
    // clients, starting up, ...): it lives, so it is not lost.
    std::string primary_refused;
    bool primary_lost = false;       // every reconnect attempt failed
    int reconnect_attempts = 0;
    std::optional<Decision> election;
    std::optional<ChildOutcome> promote;
    std::optional<ChildOutcome> follow;
    std::optional<std::string> primary_lsn;  // the primary's WAL position, read after this
                                             // standby's (the monitoring row's)
    // The primary answered fenced (primary_read_only), or a follow failed: another node
    // that accepts writes, not fenced (its successor), and, when this node cannot follow
    // it (its WAL past that node's fork), why and what the operator must run.
    std::optional<int> successor;
    std::string needs_rejoin;

    // A primary's view of the others.
    int nodes_active = 0;            // active registered nodes, itself included
    int nodes_visible = 0;           // of those, the ones it reached, itself included
    std::chrono::milliseconds without_majority{0};  // since the last pass that saw a majority
    std::chrono::milliseconds fence_after{0};
    // dcs = etcd: the lease is the leader key's, not a majority's; another node holds it.
    bool leader_key = false;
    std::optional<int> leader_elsewhere;
    // The start of this node's last renewal of the key that etcd answered (epoch: it does
    // not hold it), and how long after it HTTP /primary may still answer 200
    // (etcd_fence_after less one health check).
    std::chrono::steady_clock::time_point key_renewed{};
    std::chrono::milliseconds key_trust{0};
    // The primary's lease ran out and fenced it (empty), or tried to (what failed).
    std::optional<std::string> lease_fenced;
    std::optional<int> newer_primary;     // a writable node on a newer timeline
    // A standby on a newer timeline (when no writable one was reached): it follows a
    // primary promoted after this one, which this node may not reach.
    std::optional<int> newer_standby;
    int newer_timeline = 0;
    std::chrono::steady_clock::time_point majority_seen{};  // the start of the last pass that saw one
};

struct Transition {
    State to = State::Starting;
    std::string reason;              // for the log and the event, always filled on a change
    bool at_once = false;            // the next step runs now, not after monitor_interval_secs
    // What a pause held back this pass (a fence), for a warning each pass; kept when the
    // state does not change.
    std::string held = {};
};

// Whether a daemon in this state checks its primary pass after pass (or promotes after
// such checks failed): a run of failed checks, which fence before promote measures from,
// lasts only through these states. One that resumes after this node was the primary, or its
// server was down, did not fail all along, and its old start would cut the hold short.
bool watches_primary(State state);

// A primary sees a majority when it reaches more than half of the active registered nodes;
// below three nodes there is no quorum to lose.
bool sees_majority(int visible, int active);

// What a primary's probe found on one other active node.
struct NodeSeen {
    int id = 0;
    bool reachable = false;          // it answered, even to refuse this daemon
    bool in_recovery = true;
    int timeline = 0;                // the timeline of its WAL (0: not read)
};
// A primary's view of the others from what its probe found, into o: the nodes it reaches
// (nodes_visible, itself included) and any node on a timeline newer than its own. A
// standby on a newer timeline follows a newer primary: it is no part of this primary's
// majority, and it proves this node a former primary as much as that primary would.
void tally_nodes(Observation& o, int timeline, const std::vector<NodeSeen>& seen);

// Where a pass that started in `from` leads. Returns {from, ""} when nothing changes.
Transition next_state(State from, const Observation& seen);

// The other node a change of state concerns, its event's related node (%p): the primary a
// standby follows or lost, the node it is to follow (candidate: the one elected), a
// switchover's candidate, the node on a newer timeline that made this primary fence
// itself, the primary a promotion replaced; nullopt when none.
std::optional<int> related_node(State from, State to, const Observation& seen, std::optional<int> candidate);

// The daemon's state as other threads see it (the HTTP endpoint, node status).
struct Snapshot {
    State state = State::Starting;
    std::chrono::system_clock::time_point since{};
    std::string reason;
    std::optional<int> upstream;     // the primary this standby follows
    bool paused = false;             // as the last pass saw it (Observation::paused)
    bool pause_overridden = false;
    std::chrono::system_clock::time_point started{};    // the daemon's start
    std::chrono::system_clock::time_point last_pass{};  // epoch: no pass finished yet
    long long passes = 0;                               // passes finished since the start
    // The last pass whose queries to this node's server all succeeded (epoch: none yet).
    std::chrono::system_clock::time_point last_check{};
    bool automatic = false;                             // failover = automatic
    std::chrono::seconds liveness{};                    // timeouts::liveness of the settings in use
    // The start and the last pass again, on the steady clock that ages are measured on (a
    // step of the wall clock makes no pass younger).
    std::chrono::steady_clock::time_point started_steady{}, last_pass_steady{};
    // A primary's: the start of the last pass that saw a majority (or, with failover =
    // manual, any pass), and how long after it /primary may still answer 200: fence_after
    // less one health check, so it turns 503 before a primary cut off from its majority
    // fences, and so before, as a rule, a standby is promoted.
    std::chrono::steady_clock::time_point majority_seen{};
    std::chrono::milliseconds majority_trust{0};
    // dcs = etcd, as the last pass left them (Observation): the lease on taking writes is
    // the leader key's, not a majority's.
    bool leader_key = false;
    std::chrono::steady_clock::time_point key_renewed{};
    std::chrono::milliseconds key_trust{0};
    // A step longer than any pass (a command it runs: standby promote, follow, a
    // switchover's demotion) may run until then: the loop is busy, not stuck.
    std::chrono::steady_clock::time_point busy_until{};
    // What the last pass found; local is unset when this node's server did not answer.
    std::optional<NodeSample> local;
    std::optional<std::uint64_t> primary_lsn;           // a standby's primary, as the last pass read it
    bool primary_read_only = false;                     // and fenced (Observation::primary_read_only)
    int nodes_active = 0;                               // a primary's count (0: not counted)
    int nodes_visible = 0;
    bool newer_primary = false;                         // a primary found a writable node on a newer timeline
    // Since the daemon started: promotions of this node by this daemon, and fences.
    long long failovers = 0;
    long long fences = 0;
};

// "2026-12-06T20:54:13Z": the snapshot's times as the daemon's answers show them.
std::string iso_utc(std::chrono::system_clock::time_point t);

// Written by the monitor's thread, read from any other: a copy under a mutex.
class StateBoard {
public:
    void enter(State state, std::string reason, std::chrono::system_clock::time_point now);
    void pass_done(const Observation& seen, std::optional<int> upstream, std::chrono::system_clock::time_point now);
    void set_bounds(std::chrono::seconds liveness, std::chrono::milliseconds majority_trust);
    // Returns the deadline it replaces, for a step inside another to give back.
    std::chrono::steady_clock::time_point set_busy_until(std::chrono::steady_clock::time_point until);
    Snapshot snapshot() const;

private:
    mutable std::mutex mutex_;
    Snapshot current_;
};

}  // namespace pgrm::daemon
