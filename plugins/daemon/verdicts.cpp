#include "plugins/daemon/verdicts.hpp"

#include "core/timeline.hpp"

namespace pgrm::daemon {

bool loop_alive(const Snapshot& s, const Now& now) {
    auto last = std::max(s.last_pass_steady, s.started_steady);
    return (last.time_since_epoch().count() != 0 && now.steady - last <= s.liveness) || now.steady < s.busy_until;
}

// Writable and unfenced as far as this daemon can tell right now: only in state Primary,
// which it leaves for Fenced and Demoting (a switchover stops writes), and only while
//   - its loop is alive: a stuck loop knows nothing of now;
//   - the last pass found the server answering, out of recovery and not read-only (a
//     fence made by an earlier run of the daemon, or by hand, is still a fence);
//   - that pass found no writable node on a newer timeline (the pass that finds one
//     fences next);
//   - with failover = automatic, that pass counted the nodes and reached a majority, and
//     it started less than majority_trust ago: a primary cut off from its majority fences
//     when its lease runs out, fence_after after that start, so from its first pass
//     without a majority, or once its loop is too slow to tell, it is a primary about to
//     fence, not one to send writes to. With failover = manual nobody promotes and it
//     never fences.
//   - with dcs = etcd (and failover = automatic), instead of the majority: that pass held
//     the leader key, and the last renewal etcd answered started less than key_trust ago
//     (it fences etcd_fence_after after that start; a standby promotes only once the
//     lease ended). A primary that reaches etcd and none of its standbys keeps the key and
//     the writes; one that cannot renew turns 503 before it fences.
bool writable_primary(const Snapshot& s, const Now& now) {
    if (s.state != State::Primary || !loop_alive(s, now) || !s.local) return false;
    if (s.local->in_recovery || s.local->read_only || s.newer_primary) return false;
    if (s.automatic && s.leader_key)
        return s.key_renewed.time_since_epoch().count() != 0 && now.steady - s.key_renewed < s.key_trust;
    if (s.automatic && (s.nodes_active == 0 || !sees_majority(s.nodes_visible, s.nodes_active) ||
                        s.majority_seen.time_since_epoch().count() == 0 ||
                        now.steady - s.majority_seen >= s.majority_trust))
        return false;
    return true;
}

// State Standby is a standby whose primary answered its last check; its WAL receiver
// must stream too (one that does not falls behind without bound), and not from a fenced
// primary: one left on an old timeline after a failover still answers, and a standby
// streaming from it lags by nothing while its readers see stale data.
bool streaming_standby(const Snapshot& s, const Now& now) {
    return s.state == State::Standby && !s.primary_read_only && loop_alive(s, now) && s.local &&
           s.local->in_recovery &&
           s.local->receiver_status == "streaming";
}

std::optional<std::uint64_t> replay_lag_bytes(const Snapshot& s) {
    if (!s.local || !s.local->in_recovery || !s.primary_lsn) return std::nullopt;
    auto replay = parse_lsn(s.local->replay_lsn.value_or(""));
    if (!replay) return std::nullopt;
    return *s.primary_lsn > *replay ? *s.primary_lsn - *replay : 0;
}

}  // namespace pgrm::daemon
