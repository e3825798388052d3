#include "plugins/daemon/state.hpp"

#include <ctime>
#include <utility>

#include "core/timeline.hpp"
#include "core/timeouts.hpp"

namespace pgrm::daemon {

namespace {

constexpr const char* kPausedWhy =
    "failover is paused: not promoting, not following (\"repmgr service unpause\" resumes it)";

std::string node_name(std::optional<int> id) {
    return id ? "primary node " + std::to_string(*id) : std::string("the primary (none registered as active)");
}

bool is_standby_side(State s) {
    return s == State::Standby || s == State::PrimaryLostConfirming || s == State::PrimaryLost ||
           s == State::Paused || s == State::Electing || s == State::FollowingNewPrimary || s == State::SwitchoverWait ||
           s == State::NeedsRejoin;
}

// The primary this standby follows is stopping for a planned switchover: its silence is
// no failure. Only once its daemon took the request (demoting, committed before the
// shutdown, so replayed here before the primary stops): a primary that dies with a request
// still waiting is lost like any other.
bool planned_stop(const Observation& o) {
    return o.switchover && o.switchover->state == "demoting" && o.primary_id &&
           o.switchover->primary_node_id == *o.primary_id;
}

bool switching_to_me(const Observation& o) {
    return o.switchover && o.switchover->candidate_node_id == o.node_id;
}

std::string planned_reason(const Observation& o) {
    return "primary node " + std::to_string(o.switchover->primary_node_id) +
           " is stopping for a planned switchover to node " + std::to_string(o.switchover->candidate_node_id) +
           ": no failover";
}

// Where the Demoting step's outcome leads.
Transition after_demotion(const Observation& o) {
    const Demotion& d = *o.demotion;
    switch (d.end) {
    case Demotion::End::Demoted: return {State::Standby, "switchover done: " + d.message, true};
    case Demotion::End::Aborted: return {State::Primary, "switchover aborted: " + d.message};
    case Demotion::End::Failed: break;
    }
    std::string why = "switchover failed: " + d.message;
    if (!o.local_up) return {State::LocalServerDown, why};
    return {o.in_recovery ? State::Standby : State::Primary, why, true};
}

// This node accepts writes.
Transition as_primary(State from, const Observation& o) {
    // From any standby-side state: a quick switchover can end between two passes.
    if (is_standby_side(from) && switching_to_me(o))
        return {State::Primary, "promoted by the switchover from primary node " +
                                    std::to_string(o.switchover->primary_node_id)};
    if (is_standby_side(from) && !o.automatic)
        return {State::Stopped, "this standby was promoted outside repmgrd and failover = manual; "
                                "exiting as repmgr 1.0 did (ERR_PROMOTED)"};
    if (from == State::Fenced) return {from, ""};
    if (!o.unregistered.empty()) return {State::Unregistered, o.unregistered};
    if (o.newer_primary)
        return {State::Fenced, "node " + std::to_string(*o.newer_primary) + " is the primary on newer timeline " +
                                   std::to_string(o.newer_timeline) +
                                   "; this node is a former primary and must be rejoined"};
    if (o.newer_standby)
        return {State::Fenced, "node " + std::to_string(*o.newer_standby) + " is a standby on newer timeline " +
                                   std::to_string(o.newer_timeline) +
                                   ", following a newer primary; this node is a former primary and must be rejoined"};
    // Its lease ran out (FenceLease): what the standbys count on is done, whatever this
    // pass sees.
    if (o.leader_elsewhere)
        return {State::Fenced, "node " + std::to_string(*o.leader_elsewhere) +
                                   " holds the leader key in etcd; this node is a former primary and must be rejoined"};
    if (o.lease_fenced)
        return {State::Fenced, (o.leader_key ? "could not renew its leader key in etcd for " +
                                                   timeouts::format(o.fence_after) + " (etcd_fence_after)"
                                             : "cut off from a majority of the cluster: no probe round reached one for " +
                                                   timeouts::format(o.fence_after) + " (fence_after)") +
                                   "; its lease ran out" +
                                   (o.lease_fenced->empty() ? "" : " and its fence failed (" + *o.lease_fenced + ")")};
    // Cut off from a majority for too long, a primary fences itself, unless failover is
    // paused: the pause holds the daemons still (a planned network outage must not cost
    // the writes), so it stays the primary and says each pass what it holds back. The
    // time without a majority keeps counting, so an unpause while the cut holds fences at
    // the end of the next probe round (Monitor::probe_nodes). A daemon told to go on
    // despite the pause (pause_overridden) is not paused here: it fences as unpaused. That request ("service unpause" finding no primary to
    // write to) goes to the standbys' daemons, which then promote one of them; a primary
    // cut off from them cannot learn of it, so if it still runs there are two writable
    // primaries until the cut heals and it finds the newer primary, or a standby of it,
    // above: a fence no pause holds (two writable primaries are never what a pause asked
    // for). service unpause says so: the primary must be down, not merely out of reach.
    std::string held;
    // With the leader key, etcd's lease alone decides (a primary that reaches etcd but not
    // the standbys keeps the key, and no standby can promote).
    if (o.automatic && !o.leader_key && !sees_majority(o.nodes_visible, o.nodes_active) &&
        o.without_majority > o.fence_after) {
        std::string cut = "cut off from a majority of the cluster (it sees " + std::to_string(o.nodes_visible) +
                          " of " + std::to_string(o.nodes_active) + " nodes) for more than " +
                          timeouts::format(o.fence_after);
        if (!o.paused) return {State::Fenced, cut};
        held = "failover is paused: not fencing this primary, " + cut +
               " (\"repmgr service unpause\" fences it, if it still is)";
    }
    if (from == State::Primary && o.switchover && o.switchover->primary_node_id == o.node_id &&
        o.switchover->state == "requested")
        return {State::Demoting, "switchover to node " + std::to_string(o.switchover->candidate_node_id) + " requested",
                true};
    return {State::Primary, "this node is the primary; watching liveness and quorum", false, held};
}

// This node is a standby.
Transition as_standby(State from, const Observation& o) {
    if (!o.unregistered.empty()) return {State::Unregistered, o.unregistered};
    std::string primary = node_name(o.primary_id);
    bool alive = o.primary_answers || !o.primary_refused.empty();
    std::string refused = primary + " lives: it answered but refused the connection (" + o.primary_refused + ")";
    std::string back = o.primary_answers ? primary + " answers again" : refused;
    // It answered read-only by its configuration: fenced. It takes no writes, and never
    // will again by itself (a fence is undone by a rejoin only), so it is lost as much as
    // one that does not answer, with its fence done: no hold for it.
    bool fenced = o.primary_answers && o.primary_read_only;
    if (!o.needs_rejoin.empty() && o.successor)
        return {State::NeedsRejoin, o.needs_rejoin};
    auto lost = [&] {
        std::string why = primary + " is lost: no answer to " + std::to_string(o.reconnect_attempts) +
                          " reconnect attempts";
        if (o.automatic && o.paused) return Transition{State::Paused, why + "; " + kPausedWhy};
        if (o.automatic) return Transition{State::Electing, why, true};
        return Transition{State::PrimaryLost, why + "; failover = manual: not promoting; run \"repmgr standby "
                                                    "promote\" on the chosen standby"};
    };
    // A planned stop of the primary is no failure, whatever this daemon thought so far.
    bool failing_over = from == State::PrimaryLostConfirming || from == State::PrimaryLost ||
                        from == State::Electing || from == State::Standby;
    if (failing_over && !o.primary_answers && planned_stop(o))
        return {State::SwitchoverWait, planned_reason(o), true};
    switch (from) {
    case State::SwitchoverWait:
        if (o.primary_answers) return {State::Standby, primary + " answers again"};
        if (o.follow && o.follow->ok) return {State::Standby, "switchover: " + o.follow->message};
        if (!planned_stop(o))
            return {State::PrimaryLostConfirming, "the switchover ended and " + primary + " does not answer", true};
        return {from, ""};
    case State::NeedsRejoin:
        if (alive && !fenced) return {State::Standby, back};
        if (o.successor) return {State::FollowingNewPrimary, "node " + std::to_string(*o.successor) +
                                                                 " accepts writes and this node can follow it now", true};
        return {from, ""};
    case State::PrimaryLostConfirming:
        if (alive) return {State::Standby, back};
        if (o.primary_lost) return lost();
        return {from, ""};  // stopped midway
    case State::PrimaryLost:
    case State::Paused:
    case State::Electing:
        if (alive && !(from == State::Electing && fenced && o.automatic && !o.paused)) return {State::Standby, back};
        if (from != State::PrimaryLost && !o.automatic)
            return {State::PrimaryLost, primary + " is lost and failover is now manual: not promoting"};
        if (from != State::Paused && o.automatic && o.paused)
            return {State::Paused, primary + " is lost and " + kPausedWhy};
        if (from == State::Paused && o.automatic && !o.paused)
            return {State::Electing, "failover resumed and " + primary + " is still lost", true};
        if (from == State::PrimaryLost && o.automatic)
            return {State::Electing, primary + " is lost and failover is now automatic", true};
        if (from == State::Electing && o.election) {
            if (o.election->action == Decision::Action::Promote) return {State::Promoting, o.election->reason, true};
            if (o.election->action == Decision::Action::Follow)
                return {State::FollowingNewPrimary, o.election->reason, true};
        }
        return {from, ""};
    case State::Promoting:
        return {State::Electing, "standby promote failed: " + (o.promote ? o.promote->message : std::string("not run"))};
    case State::FollowingNewPrimary:
        if (o.follow && o.follow->ok) return {State::Standby, o.follow->message};
        return {State::Electing, "not following: " + (o.follow ? o.follow->message : std::string("not run"))};
    default:
        break;
    }
    // Starting, LocalServerDown, Unregistered, Standby, and a former primary.
    bool was_primary = from == State::Primary || from == State::Fenced;
    // Fenced in a cut that healed before any standby found it lost (a flapping link): its
    // standbys follow a primary that takes no writes. Another node that does is followed;
    // with none, its successor is elected.
    if (fenced && o.automatic && !o.paused) {
        if (o.successor)
            return {State::FollowingNewPrimary, primary + " is fenced (read-only) and node " +
                                                    std::to_string(*o.successor) + " accepts writes: following it",
                    true};
        return {State::Electing, primary + " is fenced (read-only) and no other node accepts writes: electing its successor",
                true};
    }
    if (alive)
        return {State::Standby, (was_primary ? "this node is now a standby; " : "") +
                                    (o.primary_answers ? "following " + primary : refused)};
    return {State::PrimaryLostConfirming, primary + " did not answer", true};
}

}  // namespace

std::string_view state_name(State state) {
    switch (state) {
    case State::Starting: return "starting";
    case State::LocalServerDown: return "local_server_down";
    case State::Unregistered: return "unregistered";
    case State::Standby: return "standby";
    case State::PrimaryLostConfirming: return "primary_lost_confirming";
    case State::PrimaryLost: return "primary_lost";
    case State::Paused: return "paused";
    case State::Electing: return "electing";
    case State::Promoting: return "promoting";
    case State::FollowingNewPrimary: return "following_new_primary";
    case State::NeedsRejoin: return "needs_rejoin";
    case State::SwitchoverWait: return "switchover_wait";
    case State::Primary: return "primary";
    case State::Demoting: return "demoting";
    case State::Fenced: return "fenced";
    case State::Stopped: return "stopped";
    }
    return "unknown";
}

bool watches_primary(State state) { return is_standby_side(state) || state == State::Promoting; }

bool sees_majority(int visible, int active) { return active < 3 || visible * 2 > active; }

void tally_nodes(Observation& o, int timeline, const std::vector<NodeSeen>& seen) {
    o.nodes_visible = 1;
    for (const NodeSeen& n : seen) {
        if (!n.reachable) continue;
        if (n.timeline <= timeline) {
            ++o.nodes_visible;
        } else if (!n.in_recovery && !o.newer_primary) {
            o.newer_primary = n.id;
            o.newer_timeline = n.timeline;
        } else if (n.in_recovery && !o.newer_standby && !o.newer_primary) {
            o.newer_standby = n.id;
            o.newer_timeline = n.timeline;
        }
    }
    if (o.newer_primary) o.newer_standby.reset();
}

Transition next_state(State from, const Observation& o) {
    if (from == State::Stopped) return {from, ""};
    if (o.stop_requested) return {State::Stopped, "asked to stop"};
    if (from == State::Demoting && o.demotion) return after_demotion(o);
    if (!o.local_up) {
        if (from == State::LocalServerDown) return {from, ""};
        return {State::LocalServerDown, "local server: " + o.local_error};
    }
    // A promotion is judged by its outcome: the server may not have left recovery yet.
    if (from == State::Promoting && o.promote && o.promote->ok) return {State::Primary, o.promote->message};
    Transition t = o.in_recovery ? as_standby(from, o) : as_primary(from, o);
    if (t.to == from) return {from, "", false, t.held};
    if (from == State::LocalServerDown) t.reason = "local server answers again; " + t.reason;
    return t;
}

std::optional<int> related_node(State from, State to, const Observation& o, std::optional<int> candidate) {
    std::optional<int> switchover_candidate =
        o.switchover ? std::optional<int>(o.switchover->candidate_node_id) : std::nullopt;
    switch (to) {
    case State::Standby:
        if (from == State::FollowingNewPrimary || (from == State::SwitchoverWait && o.follow)) return candidate;
        return o.primary_id;
    case State::PrimaryLostConfirming:
    case State::PrimaryLost:
    case State::Paused:
    case State::Electing:
    case State::Promoting: return o.primary_id;
    case State::FollowingNewPrimary: return candidate;
    case State::NeedsRejoin: return o.successor;
    case State::SwitchoverWait:
    case State::Demoting: return switchover_candidate;
    case State::Primary:
        if (from == State::Promoting) return o.primary_id;
        if (from == State::SwitchoverWait && o.switchover) return o.switchover->primary_node_id;
        return std::nullopt;
    case State::Fenced: return o.newer_primary ? o.newer_primary : o.newer_standby;
    default: return std::nullopt;
    }
}

void StateBoard::enter(State state, std::string reason, std::chrono::system_clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (current_.state == State::Promoting && state == State::Primary) ++current_.failovers;
    if (state == State::Fenced) ++current_.fences;
    if (current_.started.time_since_epoch().count() == 0) {
        current_.started = now;
        current_.started_steady = std::chrono::steady_clock::now();
    }
    current_.state = state;
    current_.since = now;
    current_.reason = std::move(reason);
}

std::string iso_utc(std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

void StateBoard::pass_done(const Observation& seen, std::optional<int> upstream,
                           std::chrono::system_clock::time_point now) {
    std::lock_guard lock(mutex_);
    current_.upstream = upstream;
    current_.paused = seen.paused;
    current_.pause_overridden = seen.pause_overridden;
    current_.last_pass = now;
    ++current_.passes;
    current_.last_pass_steady = std::chrono::steady_clock::now();
    current_.majority_seen = seen.majority_seen;
    current_.leader_key = seen.leader_key;
    current_.key_renewed = seen.key_renewed;
    current_.key_trust = seen.key_trust;
    current_.automatic = seen.automatic;
    // A pass cut short by a failure keeps only what it found before: its local sample
    // when the server answered that far, nothing about the primary or the other nodes.
    current_.local = seen.local_up ? seen.local : std::nullopt;
    if (seen.local_up) current_.last_check = now;
    current_.primary_lsn = seen.primary_lsn ? parse_lsn(*seen.primary_lsn) : std::nullopt;
    current_.primary_read_only = seen.primary_read_only;
    current_.nodes_active = seen.nodes_active;
    current_.nodes_visible = seen.nodes_visible;
    current_.newer_primary = seen.newer_primary || seen.newer_standby;
}

void StateBoard::set_bounds(std::chrono::seconds liveness, std::chrono::milliseconds majority_trust) {
    std::lock_guard lock(mutex_);
    current_.liveness = liveness;
    current_.majority_trust = majority_trust;
}

std::chrono::steady_clock::time_point StateBoard::set_busy_until(std::chrono::steady_clock::time_point until) {
    std::lock_guard lock(mutex_);
    return std::exchange(current_.busy_until, until);
}

Snapshot StateBoard::snapshot() const {
    std::lock_guard lock(mutex_);
    return current_;
}

}  // namespace pgrm::daemon
