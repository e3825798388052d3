#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/db.hpp"

namespace pgrm {

// One row of repl_nodes.
struct Node {
    int id = 0;
    std::string name;
    std::string conninfo;
    std::string type;                      // "primary" or "standby"
    std::optional<int> upstream_node_id;
    int priority = 100;
    bool active = true;
    std::string data_directory;
};
nlohmann::json to_json(const Node& node);  // conninfo as stored: without secrets

// This node's record as its repmgr.conf describes it; data_directory is used when the
// configuration names none.
Node node_from_config(const Config& cfg, const std::string& type, std::optional<int> upstream,
                      const std::string& data_directory = "");

// One row of repl_monitor: a standby's daemon records one per pass.
struct MonitoringRow {
    int primary_node = 0;
    int standby_node = 0;
    std::string primary_lsn;                          // pg_current_wal_lsn() on the primary
    std::optional<std::string> received, replayed;    // the standby's positions
    long long replication_lag = 0;                    // bytes, primary to received
    long long apply_lag = 0;                          // bytes, received to replayed
    std::optional<std::string> last_replayed_xact_time;
};

// An event as it happens: a row of the events table to write, and what
// event_notification_command is told about it (see core/event).
struct NodeEvent {
    int node_id = 0;
    std::string event{};                   // "standby_promote", "repmgrd_electing", ...
    bool successful = true;
    std::string details{};
    std::optional<int> related_node_id{};  // the other node it concerns, if any
    std::chrono::system_clock::time_point at = std::chrono::system_clock::now();
};

// An events row as read back.
struct Event {
    long long id = 0;
    int node_id = 0;
    std::string event;
    bool successful = false;
    std::string timestamp;
    std::string details;
    std::optional<int> related_node_id;    // schema version 5 on
};

// A planned switchover as the switchover table records it (see schema/003).
struct SwitchoverRequest {
    long long id = 0;
    int primary_node_id = 0;
    int candidate_node_id = 0;
    std::string state;       // requested, demoting, done, aborted, failed
    std::string detail;
    bool expired = false;    // its deadline has passed, by this server's clock
    bool active() const { return (state == "requested" || state == "demoting") && !expired; }
};

// Whether automatic failover is paused, as the failover_pause row says (see schema/004).
struct FailoverPause {
    bool paused = false;
    long long generation = 0;  // counts the changes
    std::optional<int> node_id;  // where the last change was made; nullopt: never changed
    std::string changed_by;      // who made it: user@host, or a repmgrd
    std::string changed_at;      // when, as the server writes it
};
nlohmann::json to_json(const FailoverPause& pause);
// "paused since 2026-05-01 10:00:00.000 UTC by postgres@db2 on node 2", "not paused
// (unpaused at ...)", or "not paused" when it never changed.
std::string describe(const FailoverPause& pause);

// The cluster's metadata in schema repmgr_<cluster>, reached through one connection
// (normally the primary's). Every SQL statement about the metadata lives here.
class Metadata {
public:
    // timeout: each statement gives up after it (the daemon's, so a hung server cannot
    // freeze it); zero waits as long as the server takes.
    Metadata(Connection& conn, const std::string& cluster,
             std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

    const std::string& schema() const { return schema_name_; }
    // From now on this session's commits (pgrm's bookkeeping: the metadata, its events)
    // do not wait for synchronous standbys (synchronous_commit = local): the primary's
    // synchronous_standby_names may name standbys not started yet, down for maintenance,
    // or that can never follow it (their WAL past its fork), and a register, a follow or a
    // pause must not hang on them. Clients' writes still wait.
    void commit_locally();
    bool installed();
    // Throws pgrm::Error(BadConfig) naming the fix when this node has no metadata yet.
    void require_installed();
    // Creates the schema or upgrades it to the newest version, and takes out the
    // secrets an older pgrm stored in conninfos (with a warning); returns that version.
    int install_or_upgrade();
    int version();
    // The schema is at the newest version this binary knows.
    bool current();

    std::vector<Node> nodes();
    std::optional<Node> node(int id);
    std::optional<Node> active_primary();
    // Inserts the node, or updates it when its id is registered (keeping a known data
    // directory when the new record has none); true when it updated. Its conninfo is
    // stored without secrets (every node replicates the metadata, and log_statement
    // would log them), with a warning naming ~/.pgpass and PGPASSFILE when it had one.
    bool save_node(const Node& node);
    // Marks every active node of type primary but keep_id as inactive.
    void deactivate_other_primaries(int keep_id);
    // The metadata side of a promotion, in one transaction, so that a failure anywhere
    // (or a crash) leaves it as it was, never with no primary or two: self is saved as
    // the primary, every other active primary marked inactive, their standbys given self
    // as upstream, and a standby_promote event recorded with details (and which nodes
    // were marked inactive, the first as its related node).
    struct Promotion {
        std::vector<int> former;  // the ids of those former primaries
        NodeEvent event;          // the event recorded, for its notification
    };
    Promotion record_promotion(const Node& self, const std::string& details);

    // Removes the node's record, only if it still has the type and active flag it was
    // judged on, and records event about it (details as given) in the same statement;
    // false when the record changed or vanished meanwhile, so nothing was done.
    bool remove_node(const Node& judged, const std::string& event, const std::string& details);

    // The row alone, at the event's time (the daemon writes its state changes once a
    // primary can be written to), its details without secrets. Commands and repmgrd call
    // pgrm::record_event (core/event), which runs the notification too.
    void record_event(const NodeEvent& event);
    // The newest events first; node_id and event (an event name) filter when given.
    std::vector<Event> events(int limit, std::optional<int> node_id,
                              const std::optional<std::string>& event = std::nullopt);

    // The daemon's records: monitoring history, pruned to the newest days, and the
    // primary's heartbeat (repl_nodes.last_seen).
    void record_monitoring(const MonitoringRow& row);
    void prune_monitoring(int standby_node, int keep_days);
    void record_last_seen(int node_id);
    // Seconds, by this server's clock, since the primary's daemon recorded its heartbeat
    // (node_id's last_seen), and since a standby's daemon last recorded its monitoring
    // row; nullopt when never.
    std::optional<double> seconds_since_seen(int node_id);
    std::optional<double> seconds_since_monitored(int standby_node);

    // Planned switchovers. A new request first ends active ones past their deadline
    // (state failed), then is inserted and announced with NOTIFY; nullopt when another
    // switchover is active.
    std::optional<SwitchoverRequest> request_switchover(int primary_node_id, int candidate_node_id,
                                                        std::chrono::seconds deadline);
    std::optional<SwitchoverRequest> switchover(long long id);
    // The newest request in an active state, expired or not (check .active()).
    std::optional<SwitchoverRequest> latest_switchover();
    // Moves request id from state `from` to `to`; false (nothing changed) when it was not
    // in `from`, so two parties never both move it on.
    // Takes a requested switchover for demotion (false when it is no longer waiting),
    // moving its deadline to at least now + demotion_bound: every standby's daemon holds
    // failover until then, and a demotion bounded by that time never outlives it.
    bool start_demotion(long long id, const std::string& detail, std::chrono::seconds demotion_bound);
    bool move_switchover(long long id, const std::string& from, const std::string& to,
                         const std::string& detail);
    // This connection receives the NOTIFY of a new request (poll its socket).
    void listen_switchover();

    // Automatic failover paused or not; nullopt before schema version 4 (never paused).
    std::optional<FailoverPause> failover_pause();
    // Pauses or resumes failover. When that changes the row, it records who (by, on
    // node_id) and when, and event daemon_pause or daemon_unpause with details, in the
    // same statement; changed is false, and nothing written, when it already was so.
    struct PauseChange {
        FailoverPause pause;  // as it is now
        bool changed = false;
    };
    PauseChange set_failover_paused(bool paused, int node_id, const std::string& by, const std::string& details);

private:
    std::string switchover_channel() const;  // quoted: "repmgr_<cluster>_switchover"
    Rows exec(std::string_view sql, const std::vector<Param>& params = {});
    void strip_stored_secrets();
    bool events_have_related_node();  // schema version 5 on
    // Runs body in one transaction: committed when it returns, rolled back when it throws.
    template <typename Body>
    auto in_transaction(Body body);
    Connection& conn_;
    std::string cluster_;
    std::string schema_name_;   // repmgr_<cluster>
    std::string schema_;        // the same, quoted for SQL
    std::chrono::milliseconds timeout_;
    std::optional<bool> related_node_;  // events_have_related_node(), once asked
};

}  // namespace pgrm
