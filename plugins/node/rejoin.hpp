#pragma once

#include <string>
#include <vector>

#include "core/metadata.hpp"
#include "core/rejoin.hpp"

namespace pgrm {

// A registered node as node rejoin found it when it asked.
struct NodeProbe {
    Node node;                    // as the metadata it was read from records it
    bool reachable = false;       // we connected and asked
    bool writable = false;        // not in recovery, nor fenced
    bool fenced = false;          // not in recovery but read-only by its configuration (repmgrd's
                                  // fence): a former primary, never the one to follow
    bool marked_primary = false;  // its own metadata records it as the active primary
    std::string why_not;          // when not reachable: the connection failure
};

// The current primary: the one node (not this one) that accepts writes and whose own
// metadata records it as the active primary; a fenced one does not count. Refuses with
// pgrm::Error(BadConfig) when there is none or more than one writable node.
const Node& choose_primary(const std::vector<NodeProbe>& probes, int self);

// True when exactly one node (not this one) accepts writes and its metadata does not name
// it the primary yet: a promotion records itself a moment after the server leaves
// recovery, so node rejoin right after a failover asks again before refusing.
bool promotion_in_progress(const std::vector<NodeProbe>& probes, int self);

// This node, as found before anything changes.
struct LocalNode {
    int id = 0;
    std::string data_directory;
    bool running = false;         // a postmaster runs on the data directory
    std::string stop_command;     // how its user stops it (pg_ctlcluster 15 main stop)
    bool standby_signal = false;  // standby.signal is there
    ControlData control;          // pg_controldata of the data directory
};

// Refuses (pgrm::Error(BadConfig)) what no primary could change: a running server (never
// rewound under its feet), a directory holding no data directory.
void check_local_node(const LocalNode& local);

// How this node becomes a standby of the primary, and why that way.
struct NodeRejoinPlan {
    RewindCheck rewind;
    std::string method;              // "pg_rewind" or "rsync"
    std::string why;                 // for --dry-run and the result
    std::vector<std::string> steps;  // numbered by --dry-run
};

// Refuses another database system (a re-clone, not a rejoin); else pg_rewind when the
// data directory allows it, an rsync delta when it does not. wait_s: the replay proof's bound.
NodeRejoinPlan plan_node_rejoin(const LocalNode& local, const Node& primary,
                                const std::string& primary_system_identifier, const RsyncSource& from,
                                int wait_s);

}  // namespace pgrm
