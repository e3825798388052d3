#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/config.hpp"

// Every wait pgrm does, named once. The fixed ones are documented in repmgr.conf(5)
// ("TIMEOUTS"); the daemon's follow from its settings, so a user tunes one knob.
namespace pgrm::timeouts {

using namespace std::chrono_literals;

// Commands (repmgr ...)
// libpq's connect_timeout, added only when a conninfo has none of its own.
inline constexpr std::chrono::seconds kConnect = 10s;
// A command asking other registered nodes whether they are alive (promote, follow,
// cluster show): short, since a dead node must not stall the command for long.
inline constexpr std::chrono::seconds kProbeConnect = 3s;
inline constexpr std::chrono::milliseconds kProbeQuery = 5000ms;
// pg_ctl start/stop/restart/promote, and the default --wait of promote and follow.
inline constexpr std::chrono::seconds kServerControl = 60s;
// How long follow waits for replay to settle before judging by received WAL.
inline constexpr std::chrono::seconds kReplaySettle = 3s;
// How long standby register waits for its standby to replay what its upstream has
// (the metadata "master register" has just written there).
inline constexpr std::chrono::seconds kRegisterReplay = 30s;
// How long node rejoin waits for the one node that accepts writes to be recorded as the
// primary in its own metadata (a promotion finishing) before refusing.
inline constexpr std::chrono::seconds kPromotionRecorded = 10s;
// How long node status and node check wait for repmgrd's answer on its socket.
inline constexpr std::chrono::milliseconds kDaemonAnswer = 1000ms;
// standby switchover: the default --wait (the whole switchover, and its request's
// deadline), and how long the old primary's daemon waits for the candidate to replay
// the old primary's shutdown checkpoint before it aborts.
inline constexpr std::chrono::seconds kSwitchover = 120s;
inline constexpr std::chrono::seconds kSwitchoverCatchUp = 10s;
// service pause and unpause: how long they wait for each standby to have the change
// (replayed it, or, with no primary to write to, this node's repmgrd taking it).
inline constexpr std::chrono::seconds kPauseTakesEffect = 10s;
// Short helper programs (pg_controldata, chown).
inline constexpr std::chrono::seconds kHelperProgram = 30s;
// event_notification_command: each run, then its process group is stopped. Commands wait
// for it; repmgrd runs it on a thread of its own (core/event).
inline constexpr std::chrono::seconds kEventNotification = 10s;

// repmgrd
// Its own server: connecting and each query.
inline constexpr std::chrono::seconds kDaemonLocalConnect = 2s;
inline constexpr std::chrono::milliseconds kDaemonLocalQuery = 5000ms;
// A command repmgrd runs (promote, follow, fence_command).
inline constexpr std::chrono::minutes kDaemonChild = 5min;
// How often old repl_monitor rows are pruned.
inline constexpr std::chrono::hours kMonitoringPrune = 1h;
// Its HTTP endpoint (http_listen): a client's request line and headers must arrive whole
// within kHttpHead of its connection, or it is closed; writing an answer gives up after
// kHttpIo. /cluster and /node query the nodes with kHttpConnect and kHttpQuery (the
// libpq minimum: the worker computing them must be free again soon), and an answer is
// reused for kHttpReuse.
inline constexpr std::chrono::seconds kHttpHead = 2s;
inline constexpr std::chrono::seconds kHttpIo = 2s;
inline constexpr std::chrono::seconds kHttpConnect = 2s;
inline constexpr std::chrono::milliseconds kHttpQuery = 2000ms;
inline constexpr std::chrono::seconds kHttpReuse = 1s;

// What cluster show and node status wait for, connecting to a node (their own
// included) and for each query: the commands' probe timeouts, or the HTTP endpoint's.
struct Probe {
    std::chrono::seconds connect;
    std::chrono::milliseconds query;
};
inline constexpr Probe kCommandProbe{kProbeConnect, kProbeQuery};
inline constexpr Probe kHttpProbe{kHttpConnect, kHttpQuery};

// Derived from the settings.
// The least a pass's first health check waits.
inline constexpr std::chrono::milliseconds kHealthCheckMin = 250ms;
// Connecting to another node: one reconnect interval, at most kDaemonLocalConnect, so a
// frozen server costs no more than the interval it is checked at.
std::chrono::milliseconds remote_connect(const Config& cfg);
// A query to another node: one reconnect interval, at most kDaemonLocalQuery.
std::chrono::milliseconds remote_query(const Config& cfg);
// A pass's first health check only raises suspicion: half a remote query, at least
// kHealthCheckMin.
std::chrono::milliseconds health_check(const Config& cfg);
// From the first failed check until every standby has declared a primary lost and
// its siblings stopped hearing it.
std::chrono::seconds failover_window(const Config& cfg);

// Fence before promote (repmgrd(8), FENCE BEFORE PROMOTE). A primary holds a lease on
// taking writes, on its own monotonic clock: each round of its probes that reaches a
// majority renews it until the round's start plus fence_after, and when it runs out a
// thread of its own fences the server, whatever the daemon's loop is waiting on. A
// standby that lost its primary by timeout (no refused connection: it may live behind a
// partition) promotes no sooner than promote_after since the start of its first failed
// check, on its own monotonic clock. With the cut at real time T, the round's start is
// before T and the first failed check started after T - check_bound, so, each clock
// running within d = clock_drift of real time (an interval measured as x lasts at most
// x / (1 - d), at least x / (1 + d)),
//   fence done          <= T + (fence_after + fence_action) / (1 - d)
//   promotion           >= T - check_bound / (1 - d) + promote_after / (1 + d)
// and promote_after makes the second exceed the first by fence_margin.
// A fence's connection to its own server, and each of its statements.
inline constexpr std::chrono::milliseconds kFenceConnect = 1000ms;
inline constexpr std::chrono::milliseconds kFenceQuery = 1000ms;
// What the fence must precede the earliest promotion by, after every bound above.
inline constexpr std::chrono::milliseconds kFenceMargin = 1000ms;
// How far a monotonic clock's rate may stray from real time (NTP slews at most 500 ppm).
inline constexpr int kClockDriftPpm = 1000;
// One node probed by the primary: connecting, then two queries.
std::chrono::milliseconds probe_round(const Config& cfg);
// The primary's lease: from the start of its last round that reached a majority until it
// fences: (reconnect_attempts - 1, at least 1) reconnect intervals, so that a healthy
// primary renews it with time to spare, plus one pass and one probe round (a round waits
// for its slowest node before the next starts).
std::chrono::milliseconds fence_after(const Config& cfg);
// The fence itself: connecting to its own server and three statements (read-only), or
// as long to signal the server to stop (shutdown).
std::chrono::milliseconds fence_action();
// The longest a standby's check of its primary takes: connecting and one query. A check
// that started before the cut, and failed for it, started at most this before it.
std::chrono::milliseconds check_bound(const Config& cfg);
// How long after the start of its first failed check a standby may promote, when the
// primary was lost by timeout.
std::chrono::milliseconds promote_after(const Config& cfg);
// The longest a pass can take without running a command (the reconnect attempts, then
// its own server's connect and query timing out): a last pass older than this means a
// stuck loop (HTTP /liveness answers 503, /primary too).
std::chrono::seconds liveness(const Config& cfg);
// Another node's repmgrd counts as running while its last record in the metadata (a
// primary's heartbeat, a standby's monitoring row) is younger than this: two passes that
// each retried their primary once (standby switchover, service status).
std::chrono::seconds daemon_alive(const Config& cfg);

// dcs = etcd (repmgrd(8), FENCE BEFORE PROMOTE, "With etcd"). One request to one etcd
// endpoint: connecting, then sending and reading the answer.
inline constexpr std::chrono::milliseconds kEtcdConnect = 1000ms;
inline constexpr std::chrono::milliseconds kEtcdRequest = 1000ms;
// One call, which tries each endpoint in turn: its longest.
std::chrono::milliseconds etcd_call(const Config& cfg);
// The leader key's lease: the etcd_lease_ttl setting, or one long enough that the primary
// fences no sooner than with a majority's lease: (fence_after + fence_action +
// fence_margin) * (1 + d) / (1 - d), in whole seconds rounded up.
std::chrono::seconds etcd_lease_ttl(const Config& cfg);
// The holder fences this long after the start of its last renewal that etcd answered.
// etcd ends the lease no sooner than ttl / (1 + d) after that start (it received the
// renewal after it was sent), and the fence is done by (fence_at + fence_action) / (1 - d):
// fence_at = ttl * (1 - d) / (1 + d) - fence_action - fence_margin, in whole milliseconds
// rounded down. A standby promotes only after it created the key, so after the lease ended.
std::chrono::milliseconds etcd_fence_after(std::chrono::seconds ttl);
std::chrono::milliseconds etcd_fence_after(const Config& cfg);
// repmgrd's start with dcs = etcd: a lease too short for its holder to renew it (a pass
// and one request to a live endpoint before etcd_fence_after) is Error(BadConfig).
// (Endpoints that time out delay a renewal by up to etcd_call: the fence may come then,
// on the safe side.) A derived one always passes.
void check_etcd_lease(const Config& cfg);

// Each of the above as repmgr.conf(5) lists it under TIMEOUTS, by the name it has there
// (kProbeConnect is "probe_connect"): the fixed ones with their value ("3 s"), the derived
// ones with how they follow from the settings. A unit test checks the page against this
// list, both ways, so the two cannot drift apart.
struct Documented {
    std::string name;
    std::string value;
};
const std::vector<Documented>& documented();

// "250 ms", "120 s", "5 min", "1 h": whole hours, whole minutes from 5 minutes on
// (below that, the seconds the --wait options take), else seconds or milliseconds.
std::string format(std::chrono::milliseconds duration);

}  // namespace pgrm::timeouts
