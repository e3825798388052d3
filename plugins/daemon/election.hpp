#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgrm::daemon {

// What one standby learned about another registered node after the primary went silent.
struct Peer {
    int id = 0;
    int priority = 100;
    bool reachable = false;         // it answered our questions
    std::string refused;            // not reachable: its server answered but refused us (why)
    bool in_recovery = true;        // false: it accepts writes
    bool sees_primary = false;      // its WAL receiver still gets WAL from the old primary
    std::uint64_t wal_end = 0;      // furthest WAL received or replayed
};

struct Decision {
    enum class Action {
        Wait,       // do nothing now (the reason says why); look again next pass
        Promote,    // this node is the candidate
        Follow,     // another node is (or becomes) the primary: follow it
    } action = Action::Wait;
    int node_id = 0;                // Follow: whom
    std::string reason;             // for the log, always filled
};

// The election every standby runs with what it sees, so that all reach the same answer.
// self is this standby (reachable by definition); peers are all other active registered
// nodes except the lost primary; registered_active counts every active node including
// the lost primary. Rules, in order:
//  1. a peer that accepts writes is the new primary: follow it;
//  2. a peer whose server answered but refused us lives, and its role is unknown (it
//     may be a new primary, or still hear the old one): wait;
//  3. a peer, or this node itself, still streaming from the primary means the primary
//     lives (only the daemon's link to it is lost), and may count the streaming node
//     toward its majority, so it does not fence: wait;
//  4. without a majority of registered_active (self + reachable peers), wait: this node
//     may be the isolated one (a two-node cluster therefore never promotes by itself);
//  5. candidate: highest WAL end, then highest priority, then lowest id, among self and
//     reachable peers with priority > 0; wait if a priority-0 node has more WAL than it
//     (acknowledged commits would be lost); promote if it is self, else follow it
//     (saying so when self has priority 0).
Decision elect(const Peer& self, const std::vector<Peer>& peers, int registered_active);

// Fence before promote (repmgrd(8)): how this standby's checks of its primary have been
// failing, with no success since the first failure.
struct PrimaryFailing {
    std::chrono::milliseconds since{0};  // since the start of the first failed check
    // Every failed check was refused (the host answered, PostgreSQL did not listen): its
    // server is down, not behind a partition, and takes no writes.
    bool refused_only = false;
};
// How much longer a candidate must hold its promotion so that a primary lost by timeout,
// which may live behind a partition, has fenced itself: promote_after since the first
// failed check; none when every failure was refused, or nothing failed.
std::chrono::milliseconds promotion_hold(const std::optional<PrimaryFailing>& failing,
                                         std::chrono::milliseconds promote_after);
// d, or, when d promotes this node and hold is positive, a wait that says why (the same
// words every pass, so that it is one event).
Decision hold_promotion(const Decision& d, std::chrono::milliseconds hold, std::chrono::milliseconds promote_after);

// dcs = etcd with etcd_failover_on_refusal (repmgrd(8), "With etcd"): whether the
// candidate may revoke the lease under which holder keeps the leader key, instead of
// waiting for it to end. Only the lease of the primary it lost, whose every failed check
// was refused (the fast path without etcd: its host answers and nothing listens), and only
// while that node's daemon is silent in etcd (its state key gone with its lease: not
// renewed for daemon_alive), so that a daemon that runs always acts itself: it gives the
// key up when its server is gone, and fences when it cannot renew.
struct LeaseEnd {
    enum class Action {
        Wait,       // for the lease to end (reason says why, empty when the setting is off)
        Ask,        // everything else holds: ask etcd whether holder's daemon published
        Revoke,
    } action = Action::Wait;
    std::string reason;
};
// holder_published: nullopt before etcd was asked.
LeaseEnd end_lease_on_refusal(bool enabled, const std::optional<PrimaryFailing>& failing,
                              std::optional<int> lost_primary, int holder, std::optional<bool> holder_published);

}  // namespace pgrm::daemon
