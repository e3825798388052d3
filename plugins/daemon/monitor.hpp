#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/db.hpp"
#include "core/exit_code.hpp"
#include "core/metadata.hpp"
#include "core/timeouts.hpp"
#include "plugins/daemon/child.hpp"
#include "plugins/daemon/election.hpp"
#include "plugins/daemon/leader.hpp"
#include "plugins/daemon/lease.hpp"
#include "plugins/daemon/notify.hpp"
#include "plugins/daemon/state.hpp"

namespace pgrm::daemon {

// Set from signal handlers only; the loop acts on them.
struct Signals {
    std::atomic<bool> stop{false};
    std::atomic<bool> reload{false};
};

// repmgrd's loop: each pass runs the steps of its current state (see state.hpp), then
// moves to the state next_state() gives. On a standby: registration, the primary's
// health check and the monitoring history; when the primary is lost, the reconnect
// attempts, the election, promote or follow. On the primary: the other nodes probed,
// fencing, and the heartbeat.
class Monitor {
public:
    // verbose: --verbose was given, which a reload must not forget.
    Monitor(Config config, std::string self_exe, Signals& signals, bool verbose);
    // Runs until asked to stop; the exit code is ERR_PROMOTED when this standby was
    // promoted from outside with failover = manual, as repmgr 1.0's daemon exited.
    ExitCode run();
    // The current state, from any thread.
    Snapshot snapshot() const { return board_.snapshot(); }
    // From any thread ("service unpause" through the socket, when no primary could take
    // the unpause): go on with failover despite the pause of this generation, until the
    // primary answers again or the pause changes. Wakes the loop between passes.
    void resume_failover(long long generation);

private:
    // One pass: what the current state's steps found.
    Observation observe();
    void enter(const Transition& t, const Observation& seen);
    void reload_config();
    void log_timing() const;  // fence before promote, as these settings time it

    // Steps.
    void probe_local(Observation& o);
    std::string check_registration(bool in_recovery);
    void check_primary(Observation& o, std::chrono::milliseconds timeout);
    void confirm_primary_lost(Observation& o);
    void record_monitoring(Observation& o);
    Decision hold_election(bool primary_fenced);
    void find_successor(Observation& o);
    void judge_follow(Observation& o, const Node& n, Connection* open = nullptr);
    ChildOutcome promote();
    ChildOutcome follow_candidate();
    void await_switchover(Observation& o);
    void read_pause(Observation& o);
    void lift_pause();
    std::optional<SwitchoverRequest> planned_switchover();
    void listen_for_switchover();
    void probe_nodes(Observation& o);
    void record_heartbeat();
    void hold_leader_key(Observation& o);      // dcs = etcd
    Decision take_leader_key(Decision d);
    void release_leader_key();
    std::string fence(const std::string& why);  // what failed; empty: fenced
    // The fence itself, with these settings, over conn or (null) a connection of its own;
    // from the loop or from the lease's thread.
    std::string fence_server(const Config& cfg, Connection* conn, bool on_loop);
    FenceLease::Fence lease_fence();
    std::optional<PrimaryFailing> primary_failing() const;
    bool fence_stops() const;                   // fence = shutdown, and it can

    // State changes (repmgrd_<state>) and what the daemon decides and does are events.
    // Their notification runs at once (on the notifications' thread, core/event); their
    // rows go into the metadata, which only a primary takes: they wait here, a bounded
    // number, until one can be written to.
    void queue_event(const NodeEvent& event);
    void keep_event(const NodeEvent& event);  // the row only: already notified
    void flush_events(Connection& primary, std::chrono::milliseconds timeout);

    // on_loop: the loop runs it (it may be busy that long); false from the lease's thread.
    ChildOutcome run_self(const std::vector<std::string>& args, const std::string& override_command,
                          bool on_loop = true);
    // Sleeps up to duration, waking at once on SIGTERM/SIGINT or when the primary's
    // connection closes (a killed primary's backends hang up right away); between passes
    // also on resume_failover().
    void wait(std::chrono::milliseconds duration, bool between_passes = false);
    ConnectOptions quick_connect() const;
    std::chrono::milliseconds remote_timeout() const;

    Config cfg_;
    std::string self_exe_;
    Signals& signals_;
    bool verbose_;

    State state_ = State::Starting;
    StateBoard board_;
    ServiceNotifier notifier_;           // systemd's READY=1, STATUS= and WATCHDOG=1
    bool arrived_at_once_ = false;       // the last transition ran this step without a wait
    bool promoted_outside_ = false;      // why the daemon stopped
    // resume_failover()'s generation (-1: none), and whether the loop should wake for it.
    std::atomic<long long> resume_generation_{-1};
    std::atomic<bool> woken_{false};
    // Promoted despite the pause of this generation: lift it from the metadata.
    std::optional<long long> lift_pause_;
    // Failover paused, and the pause overridden, as the last pass that read this node's
    // metadata found them (a pass whose server is down reads none); a pass whose read
    // failed goes by them.
    bool paused_ = false;
    bool pause_overridden_ = false;

    std::optional<Connection> local_;
    std::string local_error_;            // the last failure to reach the local server, logged once
    bool registered_ = false;            // seen in the metadata once: no need to ask again
    bool listening_ = false;             // local_ LISTENs for switchover requests

    // A standby's primary, and the node elected to replace it.
    std::optional<Connection> primary_;
    std::optional<int> primary_id_;
    std::string refusal_;                // the primary's last refusal, logged once
    // The start of the first failed check of the primary since it last answered, and
    // whether every failure since was a refused connection (fence before promote).
    std::optional<std::chrono::steady_clock::time_point> failing_since_;
    bool refused_only_ = false;
    std::optional<Node> candidate_;
    std::chrono::steady_clock::time_point last_prune_{};

    // A primary's links to the other nodes, kept between passes.
    struct NodeLink {
        std::string conninfo;
        std::optional<Connection> conn;
    };
    std::map<int, NodeLink> node_links_;
    // When this primary last saw a majority (the start of that probe round; epoch: it
    // has not counted since it became the primary), and its lease on taking writes.
    std::chrono::steady_clock::time_point last_majority_{};
    FenceLease lease_{timeouts::kFenceConnect};
    // dcs = etcd: the leader key, and the start of its last renewal that etcd answered (or
    // of the pass this node became the primary in, or of its claim before promoting):
    // the lease fences etcd_fence_after later.
    std::unique_ptr<LeaderKey> leader_;
    std::unique_ptr<StatePublisher> publisher_;  // dcs = etcd: <prefix>nodes/<id>
    std::chrono::steady_clock::time_point key_renewed_{};
    std::chrono::milliseconds key_fence_after_{0};
    // The start of the last renewal etcd answered while this node holds the key (epoch:
    // none since it became the primary), for HTTP /primary.
    std::chrono::steady_clock::time_point key_answered_{};
    std::string leader_error_;           // the last failure to reach etcd, logged once
    bool schema_current_ = false;

    std::deque<NodeEvent> events_;
    // The election's last decision in this failover: a decision to wait is an event once,
    // not at every pass.
    std::optional<Decision> last_decision_;
    bool fenced_ = false;                // fenced since the daemon started, not yet back
    std::string fence_again_;            // why, while the fence failed: tried again each pass
};

}  // namespace pgrm::daemon
