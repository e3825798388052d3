#include "plugins/daemon/election.hpp"

#include "core/timeline.hpp"

namespace pgrm::daemon {

Decision elect(const Peer& self, const std::vector<Peer>& peers, int registered_active) {
    using A = Decision::Action;
    for (const auto& p : peers)
        if (p.reachable && !p.in_recovery)
            return {A::Follow, p.id, "node " + std::to_string(p.id) + " already accepts writes"};
    for (const auto& p : peers)
        if (!p.reachable && !p.refused.empty())
            return {A::Wait, 0, "node " + std::to_string(p.id) + " answered but refused the connection (" +
                                    p.refused + "): it lives and its role is unknown"};
    for (const auto& p : peers)
        if (p.reachable && p.sees_primary)
            return {A::Wait, 0, "node " + std::to_string(p.id) +
                                    " still streams from the primary: only this node's link is lost"};
    if (self.sees_primary)
        return {A::Wait, 0, "this node's WAL receiver still streams from the primary: only the daemon's link to it is lost"};

    int visible = 1;
    for (const auto& p : peers) visible += p.reachable ? 1 : 0;
    if (visible * 2 <= registered_active)
        return {A::Wait, 0,
                "this node sees " + std::to_string(visible) + " of " + std::to_string(registered_active) +
                    " registered nodes, not a majority: it may be the isolated one" +
                    (registered_active == 2 ? " (a two-node cluster needs a third node, e.g. a witness "
                                              "standby with priority 0, to fail over)"
                                            : "")};

    const Peer* best = nullptr;
    auto better = [](const Peer& a, const Peer& b) {
        if (a.wal_end != b.wal_end) return a.wal_end > b.wal_end;
        if (a.priority != b.priority) return a.priority > b.priority;
        return a.id < b.id;
    };
    if (self.priority > 0) best = &self;
    for (const auto& p : peers)
        if (p.reachable && p.priority > 0 && (!best || better(p, *best))) best = &p;
    if (!best) return {A::Wait, 0, "no reachable standby may be promoted (all have priority 0)"};
    // Never promote past committed WAL that a priority-0 node holds: that would lose
    // transactions the primary acknowledged.
    const Peer* furthest = &self;
    for (const auto& p : peers)
        if (p.reachable && p.wal_end > furthest->wal_end) furthest = &p;
    if (furthest->wal_end > best->wal_end)
        return {A::Wait, 0,
                "node " + std::to_string(furthest->id) + " has more WAL than any node allowed to be "
                "promoted (priority 0): promoting node " + std::to_string(best->id) +
                    " would lose committed transactions; promote by hand if that is acceptable"};
    // What it was chosen from, for whoever reads the log after the fact.
    std::string positions = "node " + std::to_string(self.id) + " at " + format_lsn(self.wal_end);
    for (const auto& p : peers)
        if (p.reachable) positions += ", node " + std::to_string(p.id) + " at " + format_lsn(p.wal_end);
    if (best->id == self.id) return {A::Promote, self.id, "this node is the candidate (" + positions + ")"};
    return {A::Follow, best->id,
            "node " + std::to_string(best->id) + " is the candidate (" + positions + ")" +
                (self.priority == 0 ? "; this node has priority 0 and is never promoted" : "")};
}

std::chrono::milliseconds promotion_hold(const std::optional<PrimaryFailing>& failing,
                                         std::chrono::milliseconds promote_after) {
    if (!failing || failing->refused_only || failing->since >= promote_after) return std::chrono::milliseconds{0};
    return promote_after - failing->since;
}

Decision hold_promotion(const Decision& d, std::chrono::milliseconds hold, std::chrono::milliseconds promote_after) {
    if (d.action != Decision::Action::Promote || hold.count() <= 0) return d;
    return {Decision::Action::Wait, 0,
            "holding the promotion until the primary has fenced itself: it was lost by timeout, not refused, so "
            "it may live behind a partition; " + d.reason + ", promoted once " + std::to_string(promote_after.count()) +
                " ms have passed since the first failed check (promote_after)"};
}

LeaseEnd end_lease_on_refusal(bool enabled, const std::optional<PrimaryFailing>& failing,
                              std::optional<int> lost_primary, int holder, std::optional<bool> holder_published) {
    using A = LeaseEnd::Action;
    if (!enabled) return {A::Wait, ""};
    const std::string node = "node " + std::to_string(holder);
    if (!lost_primary || *lost_primary != holder)
        return {A::Wait, node + " is not the primary this node lost: its lease is not ended for it"};
    if (!failing || !failing->refused_only)
        return {A::Wait, "not every check of " + node + " was refused (a timeout, or an unreachable host): it may "
                         "live behind a partition"};
    if (!holder_published) return {A::Ask, ""};
    if (*holder_published)
        return {A::Wait, "the repmgrd of " + node + " still publishes its state in etcd: it gives the key up itself"};
    return {A::Revoke, "every check of " + node + " was refused and its repmgrd is silent in etcd "
                       "(etcd_failover_on_refusal): its lease is revoked"};
}

}  // namespace pgrm::daemon
