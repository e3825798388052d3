#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/db.hpp"
#include "core/metadata.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

// The cluster's primary as a node's metadata names it, connected.
struct PrimaryLink {
    Node node;
    Connection conn;
};

// The active primary that the metadata reached through local names, connected and
// checked to accept writes. Throws Error(BadConfig) naming the fix when the metadata is
// missing, names no active primary, or names one in recovery; ConnectionError when it
// cannot be reached.
PrimaryLink connect_primary(Connection& local, const std::string& cluster,
                            const ConnectOptions& options = {});

// A connection to a registered node, to ask it something; nullopt when no server
// answers there (nothing listens, no answer in time). A server that answers but will
// not let us in (our password refused, no connection slot left, starting up:
// ConnectionError::server_alive) runs and may accept writes, so nothing safe can be
// decided without it: that throws its ConnectionError, naming the node and the class,
// with hint (what the user can do).
std::optional<Connection> connect_node(const Node& node, const std::string& hint,
                                       const ConnectOptions& options = {.connect_timeout = timeouts::kProbeConnect});

// Whether the registered node accepts writes now: not in recovery, and not made
// read-only by its own configuration (repmgrd's fence). nullopt when no server answers
// there or it cannot be asked within the probe timeouts (timeouts::kProbeConnect,
// kProbeQuery); throws as connect_node when it answers but will not let us in.
std::optional<bool> accepts_writes(const Node& node, const std::string& hint);

// Whether each node is in recovery, out[i] for nodes[i]: nullopt where no server answers
// (connect_node), within the probe timeouts. Every node is asked at once, so silent ones
// cost one connect timeout together, not one each. A node that answers but will not let
// us in, or fails the question, throws as connect_node does: the first such in nodes'
// order, once all have answered.
std::vector<std::optional<bool>> in_recovery_each(const std::vector<Node>& nodes, const std::string& hint);

}  // namespace pgrm
