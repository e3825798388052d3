#pragma once

// cluster show: the pure part, what a node's probe means, apart from probing; and the
// whole command as one function, which repmgrd's HTTP endpoint (/cluster) runs too.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/db.hpp"
#include "core/metadata.hpp"
#include "core/result.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"

namespace pgrm::cluster {

// What one node's server said about itself, or why it could not be asked.
struct Probe {
    bool reachable = false;
    std::string error;                          // why not, when unreachable
    std::optional<ConnectFailure> failure;      // its class, when connecting failed
    bool in_recovery = false;
    bool read_only = false;                     // default_transaction_read_only: a fenced primary
    std::optional<std::string> current_lsn;     // a primary's pg_current_wal_lsn()
    std::optional<std::string> receive_lsn;     // a standby's pg_last_wal_receive_lsn()
    std::optional<std::string> replay_lsn;      // a standby's pg_last_wal_replay_lsn()
    std::optional<std::string> receiver_status; // pg_stat_wal_receiver, absent when none
    std::optional<std::string> sender_host;
    std::optional<int> sender_port;
};

// A node as cluster show presents it.
struct NodeView {
    std::string role;            // as configured: "primary", "inactive standby", ...
    std::string role_found;      // "primary", "standby", "unknown" (it runs but refused us) or "unreachable"
    char mark = ' ';             // repmgr 5's status mark: '*', ' ', '!', '?', '-'
    std::string status;          // "running", "running as standby", "running, read-only",
                                 // "running, password refused", "unreachable", "inactive"
    std::string upstream_name;   // empty without an upstream
    std::optional<bool> streaming;       // standbys only
    std::optional<long long> lag_bytes;  // standbys only, when both LSNs are known

    std::string status_text() const { return std::string(1, mark) + " " + status; }
};

// Asks one node's server what it is, each connection and query within limits; never
// throws (an unreachable node is a Probe that says why). probe_all asks every node at
// once: probes[i] belongs to nodes[i]. Also service status's.
Probe probe(const std::string& conninfo, timeouts::Probe limits);
std::vector<Probe> probe_all(const std::vector<Node>& nodes, timeouts::Probe limits);

// The primary LSN a standby's lag is measured against: its upstream's when that is
// a primary, else the one writable (not read-only) primary's; nullopt when there is
// none or several (split brain). probes[i] belongs to nodes[i].
std::optional<std::uint64_t> primary_lsn_for(const Node& node, const std::vector<Node>& nodes,
                                             const std::vector<Probe>& probes);

// The view of node from its probe; nodes names the upstream.
NodeView derive_view(const Node& node, const Probe& probe, const std::vector<Node>& nodes,
                     std::optional<std::uint64_t> primary_lsn);

// The command's result: the registered nodes from cfg's node, every node probed at once,
// each connection and query within limits. Throws when cfg's node cannot be read.
// ask_etcd: with dcs = etcd, a node out of reach is shown as its repmgrd last published
// it to etcd (at most timeouts::etcd_call more).
Result show_cluster(const Config& cfg, timeouts::Probe limits, bool ask_etcd = false);

}  // namespace pgrm::cluster
